"""Who may call the operator API: App Service authentication's principal and app roles, never a header a
client makes up, never a function key."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from autoremediation import jobs
from autoremediation.blueprints.auth import DEVELOPMENT_ACTOR, caller_of
from autoremediation.services import set_services
from autoremediation.settings import Settings
from tests.functions.conftest import (
    OLGA,
    OLGA_OID,
    OMAR,
    OMAR_OID,
    OPERATOR,
    READER,
    RITA,
    Engine,
    call,
    http,
    json_of,
    make_engine,
    principal,
    sample,
    signed_in,
    vm_id,
)

PRINCIPAL = "X-MS-CLIENT-PRINCIPAL"
NOBODY: dict[str, str] = {}
MALLORY = signed_in(oid="0d0d0d0d-4444-4444-8444-000000000004", name="mallory@contoso.com")


def create(headers: dict[str, str], request_id: str = "ops-auth-1", **changes: Any) -> Any:
    body = {**sample("manual-request.json"), "requestId": request_id, **changes}
    return call("remediations_create", http("POST", "remediations", body, headers=headers))


def approvable(engine: Engine, headers: dict[str, str] = OLGA, request_id: str = "ops-auth-approve") -> str:
    """A job awaiting approval, requested by ``headers``'s caller."""
    response = create(headers, request_id=request_id, remediation="restore-management-access", parameters={})
    assert response.status_code == 202, response.get_body()
    job_id: str = json_of(response)["jobIds"][0]
    engine.queued()
    engine.deliver(job_id)
    assert engine.store.get(job_id).status == jobs.AWAITING_APPROVAL
    return job_id


def by_id(name: str, job_id: str, headers: dict[str, str], body: Any = None, method: str = "POST") -> Any:
    return call(name, http(method, "x", body, headers=headers, route_params={"id": job_id}))


def approve(job_id: str, headers: dict[str, str], reason: str = "change CHG-7") -> Any:
    return by_id("remediations_approve", job_id, headers, {"reason": reason})


def use(tmp_path: Path, **settings: Any) -> Engine:
    made = make_engine(tmp_path, Settings(sqlite_path=str(tmp_path / "auth.db"), **settings))
    set_services(made.services)
    return made


# -- the abuse cases: each of these passed before the app knew whether the platform authenticates ----


def test_with_authentication_off_a_forged_principal_header_raises_nobody(tmp_path: Path) -> None:
    made = use(tmp_path, platform_auth=False)
    forged_requester = signed_in(OPERATOR, oid=OLGA_OID, name="forged-requester@evil.example")

    responses = [
        create(forged_requester),
        call("remediations_list", http("GET", "remediations", headers=forged_requester)),
        call("catalog", http("GET", "catalog", headers=forged_requester)),
    ]

    for response in responses:
        assert response.status_code == 403
        assert "App Service authentication is off" in json_of(response)["error"]
    assert made.store.list() == []


def test_with_authentication_off_and_development_access_the_header_is_still_ignored(tmp_path: Path) -> None:
    """A made-up two-person approval: the forged names never reach the record."""
    made = use(tmp_path, platform_auth=False, allow_unauthenticated_operators=True)
    job_id = approvable(made, signed_in(OPERATOR, oid=OLGA_OID, name="forged-requester@evil.example"))
    forged_approver = signed_in(OPERATOR, oid=OMAR_OID, name="forged-approver@evil.example")

    response = approve(job_id, forged_approver)

    job = made.store.get(job_id)
    assert job.requested_by == DEVELOPMENT_ACTOR
    assert "evil.example" not in json.dumps(job.to_dict())
    assert response.status_code == 409  # one development identity: it cannot approve its own request
    assert "separation of duties" in json_of(response)["error"]
    assert job.approved_by is None


def test_with_authentication_on_a_missing_principal_is_401_on_every_operator_route(engine: Engine) -> None:
    job_id = approvable(engine)

    responses = {
        "create": create(NOBODY, request_id="ops-auth-2"),
        "get": by_id("remediations_get", job_id, NOBODY, method="GET"),
        "list": call("remediations_list", http("GET", "remediations", headers=NOBODY)),
        "catalog": call("catalog", http("GET", "catalog", headers=NOBODY)),
        "approve": approve(job_id, NOBODY),
        "reject": by_id("remediations_reject", job_id, NOBODY, {"reason": "no"}),
        "campaign": call("campaigns_create", http("POST", "campaigns", {}, headers=NOBODY)),
        "campaign-get": by_id("campaigns_get", "c-1", NOBODY, method="GET"),
    }

    for what, response in responses.items():
        assert response.status_code == 401, what
        assert "Entra identity" in json_of(response)["error"], what
    job = engine.store.get(job_id)
    assert (job.status, job.approved_by, len(engine.store.list())) == (jobs.AWAITING_APPROVAL, None, 1)


def test_a_shared_identity_may_not_approve_its_own_request(tmp_path: Path) -> None:
    """The development identity (the stand-in for a shared secret) is held to separation of duties."""
    made = use(tmp_path, platform_auth=False, allow_unauthenticated_operators=True)
    job_id = approvable(made, NOBODY)

    response = approve(job_id, NOBODY)

    assert response.status_code == 409
    assert made.store.get(job_id).approved_by is None


# -- the role matrix --------------------------------------------------------------------------------

ROUTES: dict[str, tuple[str, Callable[[str, dict[str, str]], Any]]] = {
    "remediations_create": (
        "operate",
        lambda job_id, h: create(h, request_id="ops-matrix", targets=[vm_id("vm-linux-locked")]),
    ),
    "remediations_list": ("read", lambda job_id, h: call("remediations_list", http("GET", "r", headers=h))),
    "remediations_get": ("read", lambda job_id, h: by_id("remediations_get", job_id, h, method="GET")),
    "remediations_approve": ("operate", lambda job_id, h: approve(job_id, h)),
    "remediations_reject": (
        "operate",
        lambda job_id, h: by_id("remediations_reject", job_id, h, {"reason": "not now"}),
    ),
    "catalog": ("read", lambda job_id, h: call("catalog", http("GET", "catalog", headers=h))),
    "plan": (
        "read",
        lambda job_id, h: call("plan", http("POST", "plan", sample("disk-full-alert.json"), headers=h)),
    ),
    "campaigns_create": (
        "operate",
        lambda job_id, h: call(
            "campaigns_create",
            http(
                "POST",
                "campaigns",
                {
                    "id": "c-matrix",
                    "remediation": "free-disk-space",
                    "targets": {"vmIds": [vm_id("vm-linux-disk")]},
                    "maxConcurrency": 1,
                    "maxErrors": 0,
                },
                headers=h,
            ),
        ),
    ),
    "campaigns_get": ("read", lambda job_id, h: by_id("campaigns_get", "c-none", h, method="GET")),
}
CALLERS = {"none": MALLORY, "reader": RITA, "operator": OMAR}


@pytest.mark.parametrize("route", sorted(ROUTES))
@pytest.mark.parametrize("who", sorted(CALLERS))
def test_the_role_matrix(engine: Engine, route: str, who: str) -> None:
    need, send = ROUTES[route]
    job_id = approvable(engine)
    before = {j.id: (j.status, j.version) for j in engine.store.list()}

    response = send(job_id, CALLERS[who])

    allowed = who == "operator" or (who == "reader" and need == "read")
    if allowed:
        assert response.status_code in (200, 202, 404), (route, who, response.get_body())
    else:
        assert response.status_code == 403, (route, who)
        wanted = OPERATOR if need == "operate" else f"{OPERATOR} or {READER}"
        name = CALLERS[who]["X-MS-CLIENT-PRINCIPAL-NAME"]
        assert json_of(response)["error"] == f"{name} needs the app role {wanted} for this call"
        assert {j.id: (j.status, j.version) for j in engine.store.list()} == before
        assert engine.store.get(job_id).review == {}


def test_the_existing_routes_are_all_in_the_matrix() -> None:
    from tests.functions.test_openapi import http_functions

    operator_routes = {name for name, (_p, _m, _a) in http_functions().items()} - {
        "health",
        "openapi",
        "alerts",
    }
    assert operator_routes == set(ROUTES)


# -- separation of duties by object id ------------------------------------------------------------


def test_the_requester_cannot_approve_under_another_name(engine: Engine) -> None:
    job_id = approvable(engine, OLGA)
    renamed = signed_in(OPERATOR, oid=OLGA_OID.upper(), name="Olga (admin account)")

    response = approve(job_id, renamed)

    assert response.status_code == 409
    assert "separation of duties" in json_of(response)["error"]
    assert engine.store.get(job_id).approved_by is None


def test_two_people_with_the_same_display_name_are_two_identities(engine: Engine) -> None:
    job_id = approvable(engine, signed_in(OPERATOR, oid=OLGA_OID, name="Sam Smith"))

    response = approve(job_id, signed_in(OPERATOR, oid=OMAR_OID, name="Sam Smith"))

    assert response.status_code == 200
    job = engine.store.get(job_id)
    assert (job.requested_by, job.approved_by) == (OLGA_OID, OMAR_OID)
    assert job.review["name"] == "Sam Smith"


def test_an_approval_names_two_real_identities_with_when_and_why(engine: Engine) -> None:
    job_id = approvable(engine, OLGA)

    response = approve(job_id, OMAR, reason="CHG-42: ssh locked out on web tier")

    assert response.status_code == 200
    job = engine.store.get(job_id)
    assert job.requested_by == OLGA_OID and job.requested_by_name == "olga@contoso.com"
    assert job.review == {
        "decision": "approved",
        "by": OMAR_OID,
        "name": "omar@contoso.com",
        "at": engine.clock.now().isoformat(),
        "reason": "CHG-42: ssh locked out on web tier",
    }


# -- the principal ----------------------------------------------------------------------------------


def test_a_malformed_principal_header_is_401(engine: Engine) -> None:
    for header in ("not base64 at all!", base64.b64encode(b"[1, 2]").decode()):
        response = create({PRINCIPAL: header})
        assert response.status_code == 401
        assert PRINCIPAL in json_of(response)["error"]
    assert engine.store.list() == []


def test_a_principal_without_an_object_id_is_401(engine: Engine) -> None:
    response = create({PRINCIPAL: principal(OPERATOR, oid=None)})

    assert response.status_code == 401
    assert "object id" in json_of(response)["error"]


def test_an_object_id_claim_that_disagrees_with_the_id_header_is_401(engine: Engine) -> None:
    response = create({**OLGA, "X-MS-CLIENT-PRINCIPAL-ID": OMAR_OID})

    assert response.status_code == 401
    assert engine.store.list() == []


def test_the_id_header_serves_when_the_claims_lack_the_object_id(engine: Engine) -> None:
    headers = {PRINCIPAL: principal(OPERATOR, oid=None, name="svc"), "X-MS-CLIENT-PRINCIPAL-ID": OMAR_OID}

    response = create(headers)

    assert response.status_code == 202
    assert engine.store.get(json_of(response)["jobIds"][0]).requested_by == OMAR_OID


def test_role_names_come_from_the_settings(tmp_path: Path) -> None:
    use(tmp_path, platform_auth=True, operator_role="Ops", reader_role="Audit")

    assert create(signed_in(OPERATOR, oid=OLGA_OID, name="o")).status_code == 403
    assert create(signed_in("Ops", oid=OLGA_OID, name="o")).status_code == 202
    audit = signed_in("Audit", oid=OMAR_OID, name="a")
    assert call("catalog", http("GET", "catalog", headers=audit)).status_code == 200


def encoded(data: dict[str, Any]) -> str:
    return base64.b64encode(json.dumps(data).encode()).decode()


OID = "http://schemas.microsoft.com/identity/claims/objectidentifier"


@pytest.mark.parametrize(
    ("data", "headers", "name", "roles"),
    [
        (
            {
                "claims": [
                    {"typ": "preferred_username", "val": "bob@contoso.com"},
                    {"typ": "roles", "val": "R"},
                    {"typ": OID, "val": "B0B"},
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
                    {"typ": "oid", "val": "b0b"},
                ],
                "role_typ": "custom-role",
            },
            {"X-MS-CLIENT-PRINCIPAL-NAME": "carol@contoso.com"},
            "carol@contoso.com",
            {"R1", "R2"},
        ),
        ({"claims": [{"typ": "roles", "val": 5}, "junk", {"typ": "oid", "val": "b0b"}]}, {}, "b0b", set()),
        (
            {"claims": [{"typ": "name", "val": "eve\u0000\nadmin"}, {"typ": "oid", "val": "b0b"}]},
            {},
            "eveadmin",
            set(),
        ),
    ],
)
def test_the_principal_is_read_defensively(
    data: dict[str, Any], headers: dict[str, str], name: str, roles: set[str]
) -> None:
    request = http("GET", "x", headers={PRINCIPAL: encoded(data), **headers})

    caller = caller_of(request.headers)

    assert caller is not None and caller.authenticated
    assert caller.object_id == "b0b"
    assert caller.name == name
    assert caller.roles == roles


def test_header_names_are_case_insensitive() -> None:
    request = http("GET", "x", headers={PRINCIPAL.lower(): principal(READER, name="dan")})

    caller = caller_of(request.headers)

    assert caller is not None and caller.name == "dan"


# -- health tells how operators are authenticated ----------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "mode", "warned"),
    [
        ({"platform_auth": True}, "app-service", False),
        ({"platform_auth": False}, "off", False),
        (
            {"platform_auth": False, "allow_unauthenticated_operators": True},
            "development-unauthenticated",
            True,
        ),
    ],
)
def test_health_says_how_operators_are_authenticated(
    tmp_path: Path, settings: dict[str, bool], mode: str, warned: bool
) -> None:
    use(tmp_path, **settings)

    body = json_of(call("health", http("GET", "health", headers=NOBODY)))

    assert body["operatorAuthentication"] == mode
    assert ("REMEDIATION_ALLOW_UNAUTHENTICATED_OPERATORS" in body.get("warning", "")) == warned


def test_development_access_is_off_unless_set() -> None:
    assert Settings.from_env({}).allow_unauthenticated_operators is False
    assert Settings.from_env({"WEBSITE_AUTH_ENABLED": "True"}).platform_auth is True
    assert Settings.from_env({}).platform_auth is False
