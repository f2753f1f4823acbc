"""Who may call the operator API: the function key alone, or App Service authentication's app roles."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from autoremediation import jobs
from autoremediation.blueprints.auth import caller_of
from autoremediation.services import set_services
from autoremediation.settings import Settings
from tests.functions.conftest import (
    OPERATOR,
    READER,
    Engine,
    call,
    http,
    json_of,
    make_engine,
    principal,
    sample,
)

PRINCIPAL = "X-MS-CLIENT-PRINCIPAL"


def as_caller(header: str | None) -> dict[str, str]:
    return {} if header is None else {PRINCIPAL: header}


def create(headers: dict[str, str], request_id: str = "ops-auth-1", **changes: Any) -> Any:
    body = {**sample("manual-request.json"), "requestId": request_id, **changes}
    return call("remediations_create", http("POST", "remediations", body, headers=headers))


def approvable(engine: Engine) -> str:
    response = create(
        as_caller(principal(OPERATOR, name="olga@contoso.com")),
        request_id="ops-auth-approve",
        remediation="restore-management-access",
        parameters={},
    )
    job_id: str = json_of(response)["jobIds"][0]
    engine.queued()
    engine.deliver(job_id)
    assert engine.store.get(job_id).status == jobs.AWAITING_APPROVAL
    return job_id


def read(job_id: str, headers: dict[str, str]) -> Any:
    return call("remediations_get", http("GET", "x", headers=headers, route_params={"id": job_id}))


def approve(job_id: str, headers: dict[str, str]) -> Any:
    return call("remediations_approve", http("POST", "x", headers=headers, route_params={"id": job_id}))


def test_without_the_principal_header_the_function_key_alone_authorises(engine: Engine) -> None:
    response = create(as_caller(None))

    assert response.status_code == 202
    job = engine.store.get(json_of(response)["jobIds"][0])
    assert job.requested_by == "function-key"
    assert job.history[0].actor == "function-key"


def test_a_principal_without_a_role_may_do_nothing(engine: Engine) -> None:
    job_id = approvable(engine)
    nobody = as_caller(principal(name="mallory@contoso.com"))

    responses = {
        "create": create(nobody, request_id="ops-auth-2"),
        "read": read(job_id, nobody),
        "list": call("remediations_list", http("GET", "remediations", headers=nobody)),
        "catalog": call("catalog", http("GET", "catalog", headers=nobody)),
        "approve": approve(job_id, nobody),
    }

    for what, response in responses.items():
        assert response.status_code == 403, what
        assert "mallory@contoso.com needs the app role" in json_of(response)["error"]
    assert engine.store.get(job_id).approved_by is None


def test_a_reader_can_read_but_not_request_or_approve(engine: Engine) -> None:
    job_id = approvable(engine)
    reader = as_caller(principal(READER, name="rita@contoso.com"))

    assert read(job_id, reader).status_code == 200
    assert call("remediations_list", http("GET", "remediations", headers=reader)).status_code == 200
    assert call("catalog", http("GET", "catalog", headers=reader)).status_code == 200
    refused = approve(job_id, reader)
    assert refused.status_code == 403
    assert OPERATOR in json_of(refused)["error"]
    assert create(reader, request_id="ops-auth-3").status_code == 403
    assert engine.store.get(job_id).approved_by is None


def test_an_operator_can_approve_and_is_the_actor_on_record(engine: Engine) -> None:
    job_id = approvable(engine)

    response = approve(job_id, as_caller(principal(OPERATOR, name="omar@contoso.com")))

    assert response.status_code == 200
    assert engine.store.get(job_id).approved_by == "omar@contoso.com"
    assert engine.store.get(job_id).requested_by == "olga@contoso.com"


def test_the_requester_cannot_approve_their_own_request(engine: Engine) -> None:
    job_id = approvable(engine)

    response = approve(job_id, as_caller(principal(OPERATOR, name="olga@contoso.com")))

    assert response.status_code == 409
    assert "separation of duties" in json_of(response)["error"]
    assert engine.store.get(job_id).approved_by is None


def test_a_malformed_principal_header_is_401(engine: Engine) -> None:
    for header in ("not base64 at all!", base64.b64encode(b"[1, 2]").decode()):
        response = create(as_caller(header))
        assert response.status_code == 401
        assert PRINCIPAL in json_of(response)["error"]
    assert engine.store.list() == []


def test_role_names_come_from_the_settings(tmp_path: Path) -> None:
    made = make_engine(
        tmp_path, Settings(sqlite_path=str(tmp_path / "j.db"), operator_role="Ops", reader_role="Audit")
    )
    set_services(made.services)

    assert create(as_caller(principal(OPERATOR))).status_code == 403
    assert create(as_caller(principal("Ops"))).status_code == 202
    assert call("catalog", http("GET", "catalog", headers=as_caller(principal("Audit")))).status_code == 200


def encoded(data: dict[str, Any]) -> str:
    return base64.b64encode(json.dumps(data).encode()).decode()


@pytest.mark.parametrize(
    ("data", "headers", "name", "roles"),
    [
        (
            {
                "claims": [
                    {"typ": "preferred_username", "val": "bob@contoso.com"},
                    {"typ": "roles", "val": "R"},
                ]
            },
            {},
            "bob@contoso.com",
            {"R"},
        ),
        (
            {
                "claims": [
                    {"typ": "http://schemas.microsoft.com/ws/2008/06/identity/claims/role", "val": "R1"},
                    {"typ": "custom-role", "val": "R2"},
                ],
                "role_typ": "custom-role",
            },
            {"X-MS-CLIENT-PRINCIPAL-NAME": "carol@contoso.com"},
            "carol@contoso.com",
            {"R1", "R2"},
        ),
        ({"claims": [{"typ": "roles", "val": 5}, "junk"]}, {}, "unnamed-principal", set()),
        ({"claims": [{"typ": "name", "val": "eve\u0000\nadmin"}]}, {}, "eveadmin", set()),
    ],
)
def test_the_principal_is_read_defensively(
    data: dict[str, Any], headers: dict[str, str], name: str, roles: set[str]
) -> None:
    request = http("GET", "x", headers={PRINCIPAL: encoded(data), **headers})

    caller = caller_of(request.headers)

    assert caller.authenticated
    assert caller.name == name
    assert caller.roles == roles


def test_header_names_are_case_insensitive() -> None:
    request = http("GET", "x", headers={PRINCIPAL.lower(): principal(READER, name="dan")})

    assert caller_of(request.headers).name == "dan"
