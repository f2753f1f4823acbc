"""Least privilege: the custom role grants exactly what the code calls, and nothing broad is assigned."""

from __future__ import annotations

import re

from autoremediation.azure.permissions import CLASSIC_ACTIONS, REQUIRED_ACTIONS

from . import bicep

GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)

# The only built-in roles the templates may assign, each with the reason it is needed.
ALLOWED_BUILT_IN_ROLES = {
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner: host state, deployment package",
    "ba92f5b4-2d11-453d-a403-e96b0029c9fe": "Storage Blob Data Contributor: dead-letters, diagnostics",
    "db58b8e5-c6ad-4a2a-8342-4190687cbf4a": "Storage Blob Delegator: the user delegation key for upload SAS",
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88": "Storage Queue Data Contributor: the job queue",
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": "Storage Table Data Contributor: the job store",
    "3913510d-42f4-4e42-8a64-420c390055eb": "Monitoring Metrics Publisher: telemetry with Entra auth",
    "76199698-9eea-4c19-bc75-cec21354c6b6": "Storage Table Data Reader: the deployer reads job records",
    "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1": "Storage Blob Data Reader: the deployer reads dead-letters",
}
# The deployer (azd's AZURE_PRINCIPAL_ID) may be a user or a service principal: its assignments leave
# principalType out and let ARM look the principal up (it exists long before the deployment).
DEPLOYER_ROLES = "deployer-roles.bicep"

FORBIDDEN_ROLES = {
    "8e3af657-a8ff-443c-a75c-2fe8c4bcb635": "Owner",
    "b24988ac-6180-42a0-ab88-20f7382dd24c": "Contributor",
    "9980e02c-c2be-4d73-94e8-173b1dc7cf3c": "Virtual Machine Contributor",
    "18d7d88d-a35e-4fb5-a5c3-7773c20a72d9": "User Access Administrator",
    "4d97b98b-1d4f-4787-a291-c67834d212e7": "Network Contributor",
    "17d1049b-9a84-46fb-8f53-869881c3d3ab": "Storage Account Contributor",
}

OPERATOR_ROLE = bicep.INFRA / "modules" / "operator-role.bicep"


def _role_permissions() -> dict[str, list[str | None]]:
    tree = bicep.parse(OPERATOR_ROLE)
    (permissions,) = list(bicep.object_properties(tree, "permissions"))
    (entry,) = [child for child in permissions.children if child.type == "object"]
    found = {}
    for key, value in bicep.properties(entry).items():
        if key == "actions":
            # concat([...always...], classicActions): the literal array is what every mode gets.
            arrays = [node for node in bicep.walk(value) if node.type == "array"]
            assert bicep.text(value).startswith("concat(") and bicep.text(value).rstrip().endswith(
                ", classicActions)"
            ), bicep.text(value)
            found[key] = bicep.array_literals(arrays[0])
        else:
            found[key] = bicep.array_literals(value)
    return found


def test_run_command_action_is_granted_only_when_the_classic_mode_is_deployed() -> None:
    tree = bicep.parse(OPERATOR_ROLE)
    classic = bicep.declaration(tree, "var", "classicActions").value
    condition, _, branches = bicep.text(classic).partition("?")
    assert condition.strip() == "runCommandMode == 'action'"
    _, _, otherwise = branches.partition(":")
    assert bicep.array_literals(next(n for n in bicep.walk(classic) if n.type == "array")) == list(
        CLASSIC_ACTIONS
    )
    assert otherwise.strip() == "[]"
    assert "runCommand/action" not in " ".join(str(a) for a in _role_permissions()["actions"])
    # main.bicep passes the deployed mode through, so a managed deployment never gets the action.
    main = bicep.parse(bicep.INFRA / "main.bicep")
    params = bicep.properties(
        bicep.properties(bicep.declaration(main, "module", "operatorRole").value)["params"]
    )
    assert bicep.text(params["runCommandMode"]) == "runCommandMode"


def test_custom_role_grants_exactly_the_actions_the_code_calls() -> None:
    actions = _role_permissions()["actions"]
    assert None not in actions, "every action is a literal string"
    assert len(actions) == len(set(actions)), "no action listed twice"
    # Microsoft.Resources/subscriptions/resourceGroups/read is not added: the adapters never list or
    # read resource groups, they address VMs and NSGs by id.
    assert set(actions) == set(REQUIRED_ACTIONS)


def test_custom_role_has_no_wildcards_and_no_data_actions() -> None:
    permissions = _role_permissions()
    assert not [action for action in permissions["actions"] if action and "*" in action]
    assert permissions["notActions"] == []
    assert permissions["dataActions"] == [] and permissions["notDataActions"] == []


def test_custom_role_is_assignable_only_at_the_target_scopes() -> None:
    main = bicep.parse(bicep.INFRA / "main.bicep")
    module = bicep.declaration(main, "module", "operatorRole")
    params = bicep.properties(bicep.properties(module.value)["params"])
    assert bicep.text(params["assignableScopes"]) == "scopeList"
    scope_list = bicep.text(bicep.declaration(main, "var", "scopeList").value)
    assert "targetScopes" in scope_list


def test_operator_role_is_assigned_at_each_target_scope() -> None:
    main = bicep.parse(bicep.INFRA / "main.bicep")
    modules = {item.type_string: item for item in bicep.declarations(main, "module")}
    for path, kind, scope_call in (
        ("modules/operator-assignment-rg.bicep", "resourceGroup", "resourceGroup(target.subscriptionId"),
        ("modules/operator-assignment-sub.bicep", "subscription", "subscription(target.subscriptionId"),
    ):
        loop = bicep.text(modules[path].value)
        assert loop.lstrip("[ \n").startswith("for (target, i) in scopes"), path
        assert f"if (target.kind == '{kind}')" in loop
        assert f"scope: {scope_call}" in loop


def test_no_broad_built_in_role_anywhere() -> None:
    for path in bicep.bicep_files():
        source = path.read_text().lower()
        for role_id, role_name in FORBIDDEN_ROLES.items():
            assert role_id not in source, f"{path.name} refers to {role_name}"
        for name in ("'owner'", "'contributor'", "'virtual machine contributor'"):
            assert name not in source, f"{path.name} names {name}"


# First-party applications the operator API's registration names (pre-authorized clients, the Action
# Groups service): application ids, not roles.
PUBLIC_CLIENTS = {
    "04b07795-8ddb-461a-bbee-02f9e1bf7b46": "Azure CLI",
    "1950a258-227b-4e31-a9cf-717495945fc2": "Azure PowerShell",
    "461e8683-5575-4561-ac7f-899cc907d62a": "Azure Monitor Action Groups (secure webhook)",
}
REGISTRATION = "operator-api-registration.bicep"


def test_only_allowed_built_in_roles_are_referenced() -> None:
    referenced = {
        value.lower()
        for path in bicep.bicep_files()
        for value in bicep.string_contents(bicep.parse(path))
        if GUID.match(value) and not (path.name == REGISTRATION and value in PUBLIC_CLIENTS)
    }
    assert referenced, "the templates assign built-in roles by GUID"
    assert referenced <= set(ALLOWED_BUILT_IN_ROLES), sorted(referenced - set(ALLOWED_BUILT_IN_ROLES))


def test_role_assignments_name_their_principal_type() -> None:
    """principalType avoids the replication race right after an identity is created."""
    assignments = bicep.resources("Microsoft.Authorization/roleAssignments")
    assert len(assignments) >= 4
    for path, item in assignments:
        properties = bicep.text(item.value)
        if path.name == DEPLOYER_ROLES:
            assert "principalType" not in properties, f"{path.name}: {item.name}"
        else:
            assert "principalType: 'ServicePrincipal'" in properties, f"{path.name}: {item.name}"


def test_event_grid_writes_only_to_the_dead_letter_container() -> None:
    storage = bicep.parse(bicep.INFRA / "modules" / "storage.bicep")
    writer = bicep.declaration(storage, "resource", "deadLetterWriter")
    assert bicep.text(bicep.properties(writer.value)["scope"]) == "deadLetterContainer"


def test_the_app_writes_diagnostics_only_to_its_container_and_may_sign_a_delegation_sas() -> None:
    storage = bicep.parse(bicep.INFRA / "modules" / "storage.bicep")
    writer = bicep.text(bicep.declaration(storage, "resource", "diagnosticsWriter").value)
    assert "scope: diagnosticsContainer\n" in writer and "blobDataContributorRoleId)" in writer
    delegator = bicep.text(bicep.declaration(storage, "resource", "diagnosticsDelegator").value)
    assert "scope: account\n" in delegator and "blobDelegatorRoleId)" in delegator
    role = bicep.text(bicep.declaration(storage, "var", "blobDelegatorRoleId").value)
    assert role == "'db58b8e5-c6ad-4a2a-8342-4190687cbf4a'"
