"""App Service authentication and the operator API's app registration agree with the app and each other.

No Bicep compiler here: these read the templates' syntax trees (tree-sitter) and check what a reviewer
would check by hand against the documented schemas of ``Microsoft.Web/sites/config`` ``authsettingsV2``
and the Microsoft Graph Bicep types.
"""

from __future__ import annotations

import json

import pytest
from tree_sitter import Node

from autoremediation.settings import Settings

from . import bicep

AUTHENTICATION = bicep.INFRA / "modules" / "authentication.bicep"
REGISTRATION = bicep.INFRA / "modules" / "operator-api-registration.bicep"
MAIN = bicep.INFRA / "main.bicep"
FUNCTION_APP = bicep.INFRA / "modules" / "functionapp.bicep"


def body(declaration: bicep.Declaration) -> dict[str, Node]:
    """The properties of a resource or module body, conditional (``= if (...) {...}``) or not."""
    value = declaration.value
    if value.type != "object":
        value = next(node for node in bicep.walk(value) if node.type == "object")
    return bicep.properties(value)


def nested(props: dict[str, Node], *path: str) -> Node:
    node = props[path[0]]
    for key in path[1:]:
        node = bicep.properties(node)[key]
    return node


def registered_http_routes() -> dict[str, tuple[str, str]]:
    """function name -> (/api/route, auth level) of every HTTP function the app registers."""
    from tests.functions.conftest import registered

    found = {}
    for name, function in registered().items():
        trigger = json.loads(function.get_function_json())["bindings"][0]
        if trigger["type"] == "httpTrigger":
            found[name] = ("/api/" + trigger["route"], trigger["authLevel"])
    return found


@pytest.fixture(scope="module")
def auth() -> dict[str, Node]:
    tree = bicep.parse(AUTHENTICATION)
    resource = bicep.declaration(tree, "resource", "authentication")
    assert resource.type_string.startswith("Microsoft.Web/sites/config@")
    props = body(resource)
    assert bicep.literal(props["name"]) == "authsettingsV2"
    return bicep.properties(props["properties"])


def excluded_paths() -> list[str | None]:
    tree = bicep.parse(AUTHENTICATION)
    return bicep.array_literals(bicep.declaration(tree, "var", "excludedPaths").value)


def test_authentication_is_on_and_required(auth: dict[str, Node]) -> None:
    assert bicep.text(nested(auth, "platform", "enabled")) == "true"
    assert bicep.text(nested(auth, "globalValidation", "requireAuthentication")) == "true"
    # Browsers (the operator console) are sent to sign in with Entra ID; nobody is let in without a caller.
    assert (
        bicep.literal(nested(auth, "globalValidation", "unauthenticatedClientAction"))
        == "RedirectToLoginPage"
    )
    assert bicep.literal(nested(auth, "globalValidation", "redirectToProvider")) == "azureactivedirectory"
    assert bicep.text(nested(auth, "globalValidation", "excludedPaths")) == "excludedPaths"
    assert bicep.text(nested(auth, "httpSettings", "requireHttps")) == "true"
    assert bicep.text(nested(auth, "login", "tokenStore", "enabled")) == "false"


def test_only_the_public_paths_and_the_event_grid_webhook_are_excluded() -> None:
    routes = registered_http_routes()
    excluded = excluded_paths()
    assert None not in excluded
    by_path = {path: (name, level) for name, (path, level) in routes.items()}
    # health and the document are anonymous.
    assert {by_path[p][0]: by_path[p][1] for p in excluded if p in by_path} == {
        "health": "ANONYMOUS",
        "openapi": "ANONYMOUS",
    }
    # Event Grid delivers to the host's webhook with the system key, never with an Entra token.
    assert "/runtime/webhooks/eventgrid" in excluded
    # The operator API, the console and the alert webhook (the Action Group's own token) stay behind it.
    behind = {path for name, (path, _level) in routes.items() if name not in ("health", "openapi")}
    assert "/api/alerts" in behind
    assert not any(p.startswith(tuple(str(e) for e in excluded)) for p in behind)


def test_tokens_are_validated_for_the_operator_api_registration(auth: dict[str, Node]) -> None:
    aad = bicep.properties(nested(auth, "identityProviders", "azureActiveDirectory"))
    assert bicep.text(aad["enabled"]) == "true"
    registration = bicep.properties(aad["registration"])
    assert bicep.text(registration["clientId"]) == "clientId"
    issuer = bicep.text(registration["openIdIssuer"])
    # v2 tokens (the registration asks for them), from the cloud's own login endpoint.
    assert "environment().authentication.loginEndpoint" in issuer and "tenant().tenantId" in issuer
    assert issuer.endswith("/v2.0'")
    assert "clientSecretSettingName" not in registration  # bearer tokens only: no secret anywhere
    audiences = [bicep.text(n) for n in bicep.properties(aad["validation"])["allowedAudiences"].children]
    assert {"clientId", "identifierUri"} <= set(audiences)


@pytest.fixture(scope="module")
def registration() -> bicep.Tree:
    return bicep.parse(REGISTRATION)


def test_the_registration_uses_the_graph_v1_extension(registration: bicep.Tree) -> None:
    [reference] = bicep.extensions(REGISTRATION.read_text())
    assert reference.startswith("br:mcr.microsoft.com/bicep/extensions/microsoftgraph/v1.0:")
    types = {d.name: d.type_string for d in bicep.declarations(registration, "resource")}
    assert types == {
        "application": "Microsoft.Graph/applications@v1.0",
        "servicePrincipal": "Microsoft.Graph/servicePrincipals@v1.0",
        "deployerIsOperator": "Microsoft.Graph/appRoleAssignedTo@v1.0",
        "actionGroupsServicePrincipal": "Microsoft.Graph/servicePrincipals@v1.0",
        "actionGroupsMayPostAlerts": "Microsoft.Graph/appRoleAssignedTo@v1.0",
    }


def test_the_app_roles_are_the_ones_the_app_checks(registration: bicep.Tree) -> None:
    app = body(bicep.declaration(registration, "resource", "application"))
    roles = [bicep.properties(n) for n in app["appRoles"].children if n.type == "object"]
    assert {bicep.text(r["value"]) for r in roles} == {"operatorRole", "readerRole", "webhookRole"}
    assert {bicep.text(r["id"]) for r in roles} == {"operatorRoleId", "readerRoleId", "webhookRoleId"}
    for role in roles:
        assert bicep.text(role["isEnabled"]) == "true"
        members = set(bicep.array_literals(role["allowedMemberTypes"]))
        # People hold the operator roles; only an application (the Action Groups service) the webhook one.
        assert members == (
            {"Application"} if bicep.text(role["value"]) == "webhookRole" else {"User", "Application"}
        )
    # main.bicep passes the names the app reads by default from REMEDIATION_OPERATOR_ROLE / _READER_ROLE.
    main = bicep.parse(MAIN)
    names = bicep.properties(bicep.declaration(main, "var", "appRoleNames").value)
    settings = Settings()
    assert bicep.literal(names["operator"]) == settings.operator_role == "Remediation.Operator"
    assert bicep.literal(names["reader"]) == settings.reader_role == "Remediation.Reader"
    module = body(bicep.declaration(main, "module", "operatorApiRegistration"))
    params = bicep.properties(module["params"])
    assert bicep.text(params["operatorRole"]) == "appRoleNames.operator"
    assert bicep.text(params["readerRole"]) == "appRoleNames.reader"
    assert bicep.text(params["operatorPrincipalId"]) == "principalId"


def test_the_registration_issues_v2_tokens_with_a_stable_identifier_uri(registration: bicep.Tree) -> None:
    app = body(bicep.declaration(registration, "resource", "application"))
    api = bicep.properties(app["api"])
    assert bicep.text(api["requestedAccessTokenVersion"]) == "2"
    assert bicep.literal(app["signInAudience"]) == "AzureADMyOrg"
    assert bicep.text(bicep.declaration(registration, "param", "identifierUri").node)
    main = bicep.parse(MAIN)
    uri = bicep.text(bicep.declaration(main, "var", "createdIdentifierUri").value)
    assert uri == "'api://${tenant().tenantId}/${names.operatorApi}'"
    params = bicep.properties(body(bicep.declaration(main, "module", "operatorApiRegistration"))["params"])
    assert bicep.text(params["identifierUri"]) == "createdIdentifierUri"
    for name in ("operatorRoleId", "readerRoleId", "userScopeId"):
        assert bicep.text(bicep.declaration(registration, "var", name).value).startswith(
            "guid(tenant().tenantId"
        )


def test_the_action_group_may_post_alerts_with_its_own_token(registration: bicep.Tree) -> None:
    """What the alert webhook checks (webhook_auth.py) is what the registration grants, and to whom."""
    from autoremediation.blueprints.webhook_auth import ACTION_GROUPS_APP_ID, SECURE_WEBHOOK_ROLE

    assert bicep.literal(bicep.declaration(registration, "var", "webhookRole").value) == SECURE_WEBHOOK_ROLE
    app_id = bicep.declaration(registration, "param", "actionGroupsAppId")
    assert bicep.literal(app_id.value) == ACTION_GROUPS_APP_ID
    sp = body(bicep.declaration(registration, "resource", "actionGroupsServicePrincipal"))
    assert bicep.text(sp["appId"]) == "actionGroupsAppId"
    grant = body(bicep.declaration(registration, "resource", "actionGroupsMayPostAlerts"))
    assert bicep.text(grant["appRoleId"]) == "webhookRoleId"
    assert bicep.text(grant["principalId"]) == "actionGroupsServicePrincipal.id"
    assert bicep.text(grant["resourceId"]) == "servicePrincipal.id"
    # The postdeploy hook hands these azd outputs to wiring.bicep's secure webhook.
    outputs = {d.name: bicep.text(d.value) for d in bicep.declarations(bicep.parse(MAIN), "output")}
    assert "operatorApiRegistration.outputs.applicationObjectId" in outputs["ALERT_WEBHOOK_APP_OBJECT_ID"]
    assert outputs["ALERT_WEBHOOK_APP_ID_URI"] == "authenticationOn ? operatorApi.identifierUri : ''"
    hook = (bicep.INFRA / "hooks" / "postdeploy.sh").read_text()
    assert "ALERT_WEBHOOK_APP_OBJECT_ID" in hook and "ALERT_WEBHOOK_APP_ID_URI" in hook


def test_the_console_signs_people_in_without_a_secret(registration: bicep.Tree) -> None:
    """App Service authentication's callback, and ID tokens by the implicit flow: no client secret."""
    app = body(bicep.declaration(registration, "resource", "application"))
    web = bicep.properties(app["web"])
    [redirect] = [bicep.text(n) for n in web["redirectUris"].children if n.type == "string"]
    assert redirect == "'https://${appHostName}/.auth/login/aad/callback'"
    grants = bicep.properties(web["implicitGrantSettings"])
    assert bicep.text(grants["enableIdTokenIssuance"]) == "true"
    assert bicep.text(grants["enableAccessTokenIssuance"]) == "false"
    main = bicep.parse(MAIN)
    params = bicep.properties(body(bicep.declaration(main, "module", "operatorApiRegistration"))["params"])
    assert bicep.text(params["appHostName"]) == "functionApp.outputs.defaultHostName"
    assert "passwordCredentials" not in bicep.text(
        bicep.declaration(registration, "resource", "application").node
    )


def test_the_deploying_user_is_made_operator(registration: bicep.Tree) -> None:
    assignment = bicep.declaration(registration, "resource", "deployerIsOperator")
    assert "if (!empty(operatorPrincipalId))" in bicep.text(assignment.node)
    props = body(assignment)
    assert bicep.text(props["appRoleId"]) == "operatorRoleId"
    assert bicep.text(props["principalId"]) == "operatorPrincipalId"
    assert bicep.text(props["resourceId"]) == "servicePrincipal.id"
    sp = body(bicep.declaration(registration, "resource", "servicePrincipal"))
    assert bicep.text(sp["appId"]) == "application.appId"
    assert bicep.text(sp["appRoleAssignmentRequired"]) == "true"
    parameters = json.loads((bicep.INFRA / "main.parameters.json").read_text())["parameters"]
    assert parameters["principalId"]["value"] == "${AZURE_PRINCIPAL_ID=}"


def test_main_falls_back_to_an_existing_registration() -> None:
    main = bicep.parse(MAIN)
    registration = bicep.declaration(main, "module", "operatorApiRegistration")
    assert "if (createRegistration)" in bicep.text(registration.node)
    authentication = bicep.declaration(main, "module", "authentication")
    assert "if (authenticationOn)" in bicep.text(authentication.node)
    on = bicep.text(bicep.declaration(main, "var", "authenticationOn").value)
    assert on == "createRegistration || !empty(operatorApiClientId)"
    api = bicep.properties(bicep.declaration(main, "var", "operatorApi").value)
    assert "operatorApiClientId" in bicep.text(api["clientId"])
    assert "'api://${operatorApiClientId}'" in bicep.text(api["identifierUri"])
    parameters = json.loads((bicep.INFRA / "main.parameters.json").read_text())["parameters"]
    assert (
        parameters["createOperatorApiRegistration"]["value"] == "${REMEDIATION_CREATE_APP_REGISTRATION=true}"
    )
    assert parameters["operatorApiClientId"]["value"] == "${REMEDIATION_OPERATOR_API_CLIENT_ID=}"


def test_the_app_publishes_the_scope_the_front_end_accepts() -> None:
    main = bicep.parse(MAIN)
    params = bicep.properties(body(bicep.declaration(main, "module", "functionApp"))["params"])
    assert (
        bicep.text(params["operatorApiScope"])
        == "authenticationOn ? '${operatorApi.identifierUri}/.default' : ''"
    )
    settings = bicep.properties(bicep.declaration(bicep.parse(FUNCTION_APP), "var", "appSettings").value)
    assert bicep.text(settings["REMEDIATION_APP_SCOPE"]) == "operatorApiScope"
    assert "WEBSITE_AUTH_ENABLED" not in settings  # the platform sets it when authentication is on
