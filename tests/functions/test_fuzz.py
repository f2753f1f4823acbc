"""Whatever arrives at the webhook or the request API, the answer is 202, 400 or 413: never a 500."""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.functions.conftest import Engine, call, http, json_of, sample

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, child in value.items():
            found += paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += paths(child, (*prefix, index))
    return found


def mutated(name: str) -> st.SearchStrategy[Any]:
    """The sample with one value replaced, or one key removed."""
    original = sample(name)

    def apply(path: tuple[Any, ...], value: Any, remove: bool) -> Any:
        data = copy.deepcopy(original)
        parent = data
        for step in path[:-1]:
            parent = parent[step]
        if remove and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = value
        return data

    return st.builds(apply, st.sampled_from(paths(original)), JSON, st.booleans())


def bodies(name: str) -> st.SearchStrategy[bytes]:
    as_json = (mutated(name) | JSON).map(lambda v: json.dumps(v).encode())
    return as_json | st.binary(max_size=64)


FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(body=bodies("disk-full-alert.json"))
def test_the_alert_webhook_never_answers_500(engine: Engine, body: bytes) -> None:
    response = call("alerts", http("POST", "alerts", body))
    event(f"HTTP {response.status_code}")

    assert response.status_code in (202, 400, 413), json_of(response)
    assert ("error" in json_of(response)) == (response.status_code != 202)


@FUZZ
@given(body=bodies("manual-request.json"))
def test_the_request_api_never_answers_500(engine: Engine, body: bytes) -> None:
    response = call("remediations_create", http("POST", "remediations", body))
    event(f"HTTP {response.status_code}")

    assert response.status_code in (202, 400, 413), json_of(response)
    if response.status_code == 202:
        for job_id in json_of(response)["jobIds"]:
            # Whatever was accepted passed the catalog's checks: nothing unvalidated reaches a script.
            job = engine.store.get(job_id)
            assert job.remediation in engine.services.catalog.remediations
            engine.services.catalog.get(job.remediation).resolve_parameters(job.parameters)
