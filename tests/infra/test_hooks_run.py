"""The preprovision and predown hooks, run for real by sh against a stand-in `az`.

Azure is not reachable here, so `az` is a small program on PATH that records every call and answers
like the Azure CLI: `--query` is evaluated with JMESPath (the library the CLI uses) on ARM-shaped JSON.
What is checked is the hooks' own logic: which calls they make, in which order, and how they fail.
predown must also read exactly the names main.bicep creates: the role's GUID and its definition id.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from . import bicep

HOOKS = bicep.INFRA / "hooks"
MAIN = bicep.INFRA / "main.bicep"
ARM = "https://management.azure.com"
SUB_A = "11111111-1111-1111-1111-111111111111"
SUB_B = "22222222-2222-2222-2222-222222222222"
ROLE_GUID = "0f9a1c2e-3b4d-5e6f-8a9b-0c1d2e3f4a5b"
OTHER_ROLE = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
ROLE_ID = f"/subscriptions/{SUB_A}/providers/Microsoft.Authorization/roleDefinitions/{ROLE_GUID}"
RG_WEB = f"/subscriptions/{SUB_A}/resourceGroups/rg-web"

STUB = """#!{python}
import json, os, sys
import jmespath

args = sys.argv[1:]
with open(os.environ["AZ_STUB_LOG"], "a") as log:
    log.write(json.dumps(args) + "\\n")
state = json.load(open(os.environ["AZ_STUB_STATE"]))

def option(name):
    return args[args.index(name) + 1] if name in args else None

def emit(result):
    if option("--output") == "tsv":
        print("\\n".join(result) if isinstance(result, list) else result)
    elif option("--output") != "none":
        print(json.dumps(result))

if args[:2] == ["account", "show"]:
    if not state["signed_in"] or option("--subscription") not in (None, *state["subscriptions"]):
        sys.exit(1)
    emit(jmespath.search(option("--query"), {{"tenantId": state["tenant"]}}) if option("--query") else {{}})
elif args[:2] == ["cloud", "show"]:
    endpoints = {{"resourceManager": "{arm}/", "microsoftGraphResourceId": "https://graph.microsoft.com/"}}
    emit(jmespath.search(option("--query"), {{"endpoints": endpoints}}))
elif args[0] == "rest" and option("--method") == "get":
    url = option("--url")
    scope = url[len("{arm}"):].split("/providers/Microsoft.Authorization/roleAssignments?")[0]
    body = {{"value": state["assignments"].get(scope.lower(), [])}}
    emit(jmespath.search(option("--query"), body) if option("--query") else body)
elif args[0] == "rest" and option("--method") == "delete":
    pass
else:
    sys.exit(3)
"""


def _assignment(scope: str, name: str, role_guid: str, role_subscription: str) -> dict:
    role = f"/subscriptions/{role_subscription}/providers/Microsoft.Authorization/roleDefinitions/{role_guid}"
    return {
        "id": f"{scope}/providers/Microsoft.Authorization/roleAssignments/{name}",
        "properties": {"roleDefinitionId": role, "scope": scope},
    }


@pytest.fixture
def az(tmp_path: Path):
    pytest.importorskip("jmespath")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stub = bin_dir / "az"
    stub.write_text(STUB.format(python=sys.executable, arm=ARM))
    stub.chmod(0o755)
    log = tmp_path / "az.log"
    state_file = tmp_path / "state.json"
    state = {"signed_in": True, "tenant": "tenant-1", "subscriptions": [SUB_A, SUB_B], "assignments": {}}

    def run(hook: str, env: dict[str, str], **changes) -> tuple[subprocess.CompletedProcess, list[list[str]]]:
        state_file.write_text(json.dumps({**state, **changes}))
        log.write_text("")
        path = f"{bin_dir}:{os.environ['PATH']}" if changes.get("installed", True) else "/usr/bin:/bin"
        done = subprocess.run(
            ["sh", str(HOOKS / hook)],
            env={"PATH": path, "AZ_STUB_LOG": str(log), "AZ_STUB_STATE": str(state_file), **env},
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        calls = [json.loads(line) for line in log.read_text().splitlines()]
        return done, calls

    if shutil.which("az", path="/usr/bin:/bin"):
        pytest.skip("a real az on /usr/bin would shadow the 'not installed' case")
    return run


def _deletes(calls: list[list[str]]) -> list[str]:
    return [call[call.index("--url") + 1] for call in calls if call[:3] == ["rest", "--method", "delete"]]


# ---- predown ------------------------------------------------------------------------------------------


def test_predown_removes_every_assignment_of_the_role_then_the_role(az) -> None:
    sub_b = f"/subscriptions/{SUB_B}"
    inherited = _assignment(sub_b, "a-sub", ROLE_GUID, SUB_B)
    assignments = {
        RG_WEB.lower(): [
            _assignment(RG_WEB, "a-web", ROLE_GUID, SUB_A),
            _assignment(RG_WEB, "someone-else", OTHER_ROLE, SUB_A),  # not ours: stays
        ],
        sub_b: [inherited],
        # An assignment at the subscription is listed again for a resource group under it (atScope()).
        f"{sub_b}/resourcegroups/rg-batch": [inherited],
    }
    env = {
        "OPERATOR_ROLE_DEFINITION_ID": ROLE_ID,
        "REMEDIATION_TARGET_SCOPES": f"{RG_WEB}, {sub_b},{sub_b}/resourceGroups/rg-batch/",
    }
    done, calls = az("predown.sh", env, assignments=assignments)
    assert done.returncode == 0, done.stderr
    deletes = _deletes(calls)
    assert deletes == [
        f"{ARM}{RG_WEB}/providers/Microsoft.Authorization/roleAssignments/a-web?api-version=2022-04-01",
        f"{ARM}{sub_b}/providers/Microsoft.Authorization/roleAssignments/a-sub?api-version=2022-04-01",
        f"{ARM}{ROLE_ID}?api-version=2022-04-01",
    ]
    gets = [call[call.index("--url") + 1] for call in calls if call[:3] == ["rest", "--method", "get"]]
    assert len(gets) == 3 and all("$filter=atScope()" in url for url in gets)
    assert gets[2].startswith(f"{ARM}{sub_b}/resourceGroups/rg-batch/providers/")  # trailing slash dropped


def test_predown_deletes_and_purges_the_app_registration_only_when_the_deployment_created_it(az) -> None:
    env = {"OPERATOR_ROLE_DEFINITION_ID": ROLE_ID, "REMEDIATION_TARGET_SCOPES": RG_WEB}
    app = "5b1c0e53-7f5a-4a9e-9f43-0f4a0f6c2d11"

    created, created_calls = az("predown.sh", {**env, "OPERATOR_API_APP_OBJECT_ID_CREATED": app})
    brought, brought_calls = az("predown.sh", env)  # an app registration the deployer brought stays

    assert created.returncode == 0 and brought.returncode == 0, created.stderr + brought.stderr
    assert _deletes(created_calls)[-2:] == [
        f"https://graph.microsoft.com/v1.0/applications/{app}",
        f"https://graph.microsoft.com/v1.0/directory/deletedItems/{app}",
    ]
    assert not any("graph.microsoft.com" in url for url in _deletes(brought_calls))


def test_predown_with_nothing_assigned_still_removes_the_role(az) -> None:
    env = {"OPERATOR_ROLE_DEFINITION_ID": ROLE_ID, "REMEDIATION_TARGET_SCOPES": RG_WEB}
    done, calls = az("predown.sh", env)
    assert done.returncode == 0, done.stderr
    assert _deletes(calls) == [f"{ARM}{ROLE_ID}?api-version=2022-04-01"]


def test_predown_of_an_environment_never_provisioned_does_nothing(az) -> None:
    done, calls = az("predown.sh", {})
    assert done.returncode == 0 and "nothing to remove" in done.stdout
    assert calls == []


def test_predown_signed_out_stops_azd_down_before_anything_is_deleted(az) -> None:
    env = {"OPERATOR_ROLE_DEFINITION_ID": ROLE_ID, "REMEDIATION_TARGET_SCOPES": RG_WEB}
    done, calls = az("predown.sh", env, signed_in=False)
    assert done.returncode == 2
    assert done.stderr.startswith("predown: ") and done.stderr.count("\n") == 1 and "az login" in done.stderr
    assert _deletes(calls) == []


def test_predown_without_the_cli_says_so(az) -> None:
    env = {"OPERATOR_ROLE_DEFINITION_ID": ROLE_ID, "REMEDIATION_TARGET_SCOPES": RG_WEB}
    done, _ = az("predown.sh", env, installed=False)
    assert done.returncode == 2 and "Azure CLI (az) is not installed" in done.stderr


# ---- preprovision -------------------------------------------------------------------------------------


def test_preprovision_accepts_good_scopes_and_an_empty_list(az) -> None:
    scopes = f"/subscriptions/{SUB_A}, {RG_WEB}/"
    done, _ = az("preprovision.sh", {"AZURE_SUBSCRIPTION_ID": SUB_A, "REMEDIATION_TARGET_SCOPES": scopes})
    assert done.returncode == 0, done.stderr
    assert "2 target scope(s)" in done.stdout
    done, _ = az("preprovision.sh", {"AZURE_SUBSCRIPTION_ID": SUB_A})
    assert done.returncode == 0, done.stderr
    assert "its own resource group" in done.stdout


@pytest.mark.parametrize(
    "scopes",
    [
        "/subscriptions/not-a-guid",
        f"{RG_WEB}/providers/Microsoft.Compute/virtualMachines/vm1",
        f"subscriptions/{SUB_A}",
        f"{RG_WEB},,/subscriptions/{SUB_B}",
        f"{RG_WEB},",
    ],
)
def test_preprovision_rejects_a_malformed_scope_before_azd_creates_anything(az, scopes: str) -> None:
    done, _ = az("preprovision.sh", {"AZURE_SUBSCRIPTION_ID": SUB_A, "REMEDIATION_TARGET_SCOPES": scopes})
    assert done.returncode == 2
    assert done.stderr.startswith("preprovision: REMEDIATION_TARGET_SCOPES") and done.stderr.count("\n") == 1


def test_preprovision_stops_when_the_cli_cannot_reach_the_subscription(az) -> None:
    done, _ = az("preprovision.sh", {"AZURE_SUBSCRIPTION_ID": "33333333-3333-3333-3333-333333333333"})
    assert done.returncode == 2 and "az login" in done.stderr
    done, _ = az("preprovision.sh", {"AZURE_SUBSCRIPTION_ID": SUB_A}, signed_in=False)
    assert done.returncode == 2 and "az login" in done.stderr
    done, _ = az("preprovision.sh", {"AZURE_SUBSCRIPTION_ID": SUB_A, "AZURE_TENANT_ID": "tenant-2"})
    assert done.returncode == 2 and "az login --tenant tenant-2" in done.stderr
    done, _ = az("preprovision.sh", {"AZURE_SUBSCRIPTION_ID": SUB_A}, installed=False)
    assert done.returncode == 2 and "Azure CLI (az) is not installed" in done.stderr


# ---- predown reads what main.bicep creates ----------------------------------------------------------------


def _hook_variables(name: str) -> tuple[set[str], set[str]]:
    sh = set(re.findall(r"\$\{([A-Z][A-Z0-9_]+)", (HOOKS / f"{name}.sh").read_text()))
    ps = set(re.findall(r"\$env:([A-Z][A-Z0-9_]+)", (HOOKS / f"{name}.ps1").read_text()))
    return sh, ps


def test_predown_reads_only_what_main_bicep_outputs() -> None:
    outputs = {item.name for item in bicep.declarations(bicep.parse(MAIN), "output")}
    sh, ps = _hook_variables("predown")
    assert (
        sh
        == ps
        == {
            "OPERATOR_ROLE_DEFINITION_ID",
            "REMEDIATION_TARGET_SCOPES",
            "OPERATOR_API_APP_OBJECT_ID_CREATED",
        }
    )
    assert sh <= outputs


def test_the_role_predown_deletes_is_the_role_main_bicep_creates_and_assigns() -> None:
    main = bicep.parse(MAIN)
    output = bicep.text(bicep.declaration(main, "output", "OPERATOR_ROLE_DEFINITION_ID").value)
    assert output == (
        "subscriptionResourceId(operatorRoleSubscriptionId, 'Microsoft.Authorization/roleDefinitions', "
        "operatorRoleGuid)"
    )
    role_call = bicep.properties(bicep.declaration(main, "module", "operatorRole").value)
    assert bicep.text(role_call["scope"]) == "subscription(operatorRoleSubscriptionId)"
    assert bicep.text(bicep.properties(role_call["params"])["roleDefinitionGuid"]) == "operatorRoleGuid"
    role_module = bicep.parse(bicep.INFRA / "modules" / "operator-role.bicep")
    definition = bicep.declaration(role_module, "resource", "operatorRole")
    assert bicep.text(bicep.properties(definition.value)["name"]) == "roleDefinitionGuid"
    # Each assignment names the role by the same GUID, in its own subscription: predown matches the GUID.
    for call_name, path in (
        ("operatorOnResourceGroups", "operator-assignment-rg.bicep"),
        ("operatorOnSubscriptions", "operator-assignment-sub.bicep"),
    ):
        loop = bicep.text(bicep.declaration(main, "module", call_name).value)
        assert "roleDefinitionGuid: operatorRoleGuid" in loop
        module = bicep.parse(bicep.INFRA / "modules" / path)
        role_id = bicep.text(bicep.declaration(module, "var", "roleDefinitionId").value)
        expected = "subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleDefinitionGuid)"
        assert role_id == expected
    # The REST filter and the sh/pwsh split agree on the form of the GUID's suffix.
    assert "ends_with(properties.roleDefinitionId, '/$guid')" in (HOOKS / "predown.sh").read_text()
    assert "ends_with(properties.roleDefinitionId, '/$guid')" in (HOOKS / "predown.ps1").read_text()


def test_the_role_name_is_unique_per_deployment_and_role_subscription() -> None:
    main = bicep.parse(MAIN)
    guid = bicep.text(bicep.declaration(main, "var", "operatorRoleGuid").value)
    for part in ("subscription().id", "environmentName", "location", "operatorRoleSubscriptionId"):
        assert part in guid
    name = bicep.text(bicep.declaration(main, "var", "operatorRoleName").value)
    assert "${environmentName}" in name and "${take(operatorRoleGuid, 8)}" in name
