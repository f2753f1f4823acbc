"""POST /api/alerts behind App Service authentication: only the Action Group's Entra token gets in."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from autoremediation.blueprints import runtime
from autoremediation.blueprints.webhook_auth import ACTION_GROUPS_APP_ID, SECURE_WEBHOOK_ROLE
from autoremediation.services import set_services
from autoremediation.settings import Settings
from tests.functions.conftest import RG, Engine, call, http, json_of, make_engine, sample

OTHER_APP = "0a1b2c3d-0000-4000-8000-000000000000"


def token_principal(claims: list[tuple[str, str]], role_typ: str = "roles") -> str:
    """The header App Service authentication makes from a client-credentials token's claims."""
    data = {
        "auth_typ": "aad",
        "claims": [{"typ": t, "val": v} for t, v in claims],
        "name_typ": "name",
        "role_typ": role_typ,
    }
    return base64.b64encode(json.dumps(data).encode()).decode()


TENANT = "72f988bf-0000-4000-8000-000000000001"
ACTION_GROUP = [("appid", ACTION_GROUPS_APP_ID), ("roles", SECURE_WEBHOOK_ROLE), ("tid", TENANT)]


@pytest.fixture
def fronted(tmp_path: Path) -> Iterator[Engine]:
    """The engine with App Service authentication on (WEBSITE_AUTH_ENABLED=True on the site)."""
    settings = Settings.from_env(
        {
            "WEBSITE_AUTH_ENABLED": "True",
            "AZURE_TENANT_ID": TENANT,
            "REMEDIATION_SQLITE_PATH": str(tmp_path / "j"),
            "REMEDIATION_TRUSTED_ALERT_RULES": f"{RG}/providers/Microsoft.Insights/*",
        }
    )
    made = make_engine(tmp_path, settings)
    set_services(made.services)
    runtime.reset_telemetry_flag()
    yield made
    set_services(None)
    made.store.close()


def post(headers: dict[str, str] | None = None) -> Any:
    return call("alerts", http("POST", "alerts", sample("disk-full-alert.json"), headers=headers))


def test_the_action_group_s_token_gets_in(fronted: Engine) -> None:
    response = post({"X-MS-CLIENT-PRINCIPAL": token_principal(ACTION_GROUP)})
    assert response.status_code == 202
    assert len(json_of(response)["jobIds"]) == 1


def test_a_v2_token_names_the_application_in_azp(fronted: Engine) -> None:
    claims = [
        ("azp", ACTION_GROUPS_APP_ID.upper()),
        ("http://schemas.microsoft.com/ws/2008/06/identity/claims/role", SECURE_WEBHOOK_ROLE),
        ("http://schemas.microsoft.com/identity/claims/tenantid", TENANT.upper()),
    ]
    response = post({"X-MS-CLIENT-PRINCIPAL": token_principal(claims)})
    assert response.status_code == 202


def test_the_function_key_alone_is_refused_when_the_platform_authenticates(fronted: Engine) -> None:
    response = post({})
    assert response.status_code == 401
    assert "useAadAuth" in json_of(response)["error"]
    assert fronted.store.list() == []


@pytest.mark.parametrize(
    ("claims", "why"),
    [
        ([("appid", OTHER_APP), ("roles", SECURE_WEBHOOK_ROLE)], "only the Action Group service"),
        ([("roles", SECURE_WEBHOOK_ROLE)], "the token's application is none"),
        ([("appid", ACTION_GROUPS_APP_ID)], f"lacks the app role {SECURE_WEBHOOK_ROLE}"),
        ([("appid", ACTION_GROUPS_APP_ID), ("roles", "Remediation.Operator")], "lacks the app role"),
        (
            [("appid", ACTION_GROUPS_APP_ID), ("azp", OTHER_APP), ("roles", SECURE_WEBHOOK_ROLE)],
            "only the Action",
        ),
    ],
)
def test_any_other_identity_is_refused(fronted: Engine, claims: list[tuple[str, str]], why: str) -> None:
    response = post({"X-MS-CLIENT-PRINCIPAL": token_principal(claims)})
    assert response.status_code == 403
    assert why in json_of(response)["error"]
    assert fronted.store.list() == []


@pytest.mark.parametrize(
    ("tenant_claims", "why"),
    [
        (
            [("tid", "0a0a0a0a-0000-4000-8000-00000000beef")],
            "issued in tenant 0a0a0a0a-0000-4000-8000-00000000beef",
        ),
        ([], "issued in tenant none"),
        (
            [("tid", TENANT), ("tid", "0a0a0a0a-0000-4000-8000-00000000beef")],
            "not in this deployment's tenant",
        ),
    ],
)
def test_an_action_group_token_from_another_tenant_is_refused(
    fronted: Engine, tenant_claims: list[tuple[str, str]], why: str
) -> None:
    claims = [("appid", ACTION_GROUPS_APP_ID), ("roles", SECURE_WEBHOOK_ROLE), *tenant_claims]
    response = post({"X-MS-CLIENT-PRINCIPAL": token_principal(claims)})
    assert response.status_code == 403
    assert why in json_of(response)["error"]
    assert fronted.store.list() == []


def test_an_app_that_does_not_know_its_tenant_admits_no_token(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {"WEBSITE_AUTH_ENABLED": "True", "REMEDIATION_SQLITE_PATH": str(tmp_path / "j")}
    )
    made = make_engine(tmp_path, settings)
    set_services(made.services)
    try:
        response = post({"X-MS-CLIENT-PRINCIPAL": token_principal(ACTION_GROUP)})
        assert response.status_code == 403 and "AZURE_TENANT_ID" in json_of(response)["error"]
        assert made.store.list() == []
    finally:
        set_services(None)
        made.store.close()


def test_an_unreadable_principal_is_refused(fronted: Engine) -> None:
    response = post({"X-MS-CLIENT-PRINCIPAL": "not base64 json"})
    assert response.status_code == 401


def test_without_the_platform_the_key_is_the_fallback_and_a_forged_principal_changes_nothing(
    tmp_path: Path,
) -> None:
    """With App Service authentication off nothing strips client headers: a principal proves nothing,
    and none is needed (the function key, checked by the host, admitted the call)."""
    made = make_engine(tmp_path, Settings(sqlite_path=str(tmp_path / "off.db")))
    set_services(made.services)
    forged = token_principal([("appid", OTHER_APP)])
    assert post({"X-MS-CLIENT-PRINCIPAL": forged}).status_code == 202
    assert post({}).status_code == 202
