"""Job.to_dict is what every store write encodes: the same as dataclasses.asdict, and a real copy."""

from __future__ import annotations

from dataclasses import asdict, replace
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from autoremediation.jobs import Job, Transition

json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=12,
)


def _job(**changes: Any) -> Job:
    job = Job(
        id="job-1",
        idempotency_key="alert|x|fired",
        remediation="free-disk-space",
        condition="disk-full",
        target="/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/virtualMachines/vm",
        parameters={"mountPoint": "/var"},
        created_at="2026-11-25T10:00:00+00:00",
        notes=("one", "two"),
        history=(Transition("2026-11-25T10:00:00+00:00", None, "planned", "system", "made"),),
    )
    return replace(job, **changes)


def _as_asdict_renders(job: Job) -> dict[str, Any]:
    data = asdict(job)
    data["notes"] = list(job.notes)
    data["history"] = [asdict(t) for t in job.history]
    return data


@settings(max_examples=200, deadline=None)
@given(json_like, json_like, st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3))
def test_to_dict_is_what_asdict_gives_in_the_same_order(evidence: Any, run: Any, parameters: Any) -> None:
    job = _job(evidence={"seen": evidence}, run={"r": run}, parameters=parameters)
    assert job.to_dict() == _as_asdict_renders(job)
    assert list(job.to_dict()) == list(_as_asdict_renders(job))


def test_to_dict_copies_nested_values() -> None:
    job = _job(evidence={"rule": {"ports": [22, 3389]}})
    data = job.to_dict()
    data["evidence"]["rule"]["ports"].append(80)
    data["parameters"]["mountPoint"] = "/"
    assert job.evidence == {"rule": {"ports": [22, 3389]}}
    assert job.parameters == {"mountPoint": "/var"}


def test_a_value_that_is_not_plain_json_is_still_copied_as_asdict_copies_it() -> None:
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    job = _job(outcome={"at": moment, "items": {1, 2}})
    assert job.to_dict() == _as_asdict_renders(job)
    assert job.to_dict()["outcome"]["items"] is not job.outcome["items"]
