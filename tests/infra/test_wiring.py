"""Alerts and events reach the functions that handle them, shaped the way routing expects."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
import yaml

from tests.helpers.fakes import TrustingGate

from . import bicep

WIRING = bicep.INFRA / "wiring.bicep"
REMEDIATIONS = bicep.REPO_ROOT / "remediations"


@pytest.fixture(scope="module")
def wiring() -> bicep.Tree:
    return bicep.parse(WIRING)


def _resource_body(tree: bicep.Tree, name: str) -> bicep.Node:
    body = bicep.declaration(tree, "resource", name).value
    if body.type in ("if_statement", "for_statement"):  # `= if (c) { ... }`, `= [for x in y: { ... }]`
        body = next(child for child in body.children if child.type == "object")
    return body


def _get(node: bicep.Node, *path: str) -> bicep.Node:
    for key in path:
        node = bicep.properties(node)[key]
    return node


def _routes() -> dict[str, dict]:
    data = yaml.safe_load((REMEDIATIONS / "routes.yaml").read_text())
    return {route["name"]: route for route in data["routes"]}


def _function_references(tree: bicep.Tree) -> set[str]:
    names = {
        bicep.literal(item.value)
        for item in bicep.declarations(tree, "var")
        if item.name.endswith("FunctionName")
    }
    names |= {bicep.literal(node) for node in bicep.object_properties(tree, "functionName")}
    names |= {
        match
        for piece in bicep.string_contents(tree)
        for match in re.findall(r"/functions/([A-Za-z0-9_]+)", piece)
    }
    names.discard(None)
    return {name for name in names if name}


def _var_object(tree: bicep.Tree, name: str) -> dict[str, bicep.Node]:
    return bicep.properties(bicep.declaration(tree, "var", name).value)


def test_action_group_authenticates_with_entra_when_the_app_has_a_registration(wiring: bicep.Tree) -> None:
    """The default wherever App Service authentication fronts the app: a secure webhook (useAadAuth)."""
    fields = _var_object(wiring, "entraWebhookReceiver")
    assert bicep.text(fields["useAadAuth"]) == "true"
    assert bicep.text(fields["useCommonAlertSchema"]) == "true"
    assert bicep.text(fields["objectId"]) == "alertWebhookAppObjectId"
    assert bicep.text(fields["identifierUri"]) == "alertWebhookIdentifierUri"
    assert bicep.text(fields["tenantId"]) == "alertWebhookTenantId"
    assert bicep.text(fields["serviceUri"]) == "alertsUrl"
    assert bicep.text(bicep.declaration(wiring, "param", "alertWebhookTenantId").value) == "tenant().tenantId"
    # Entra is used exactly when a registration is named; the function receiver is then left out.
    assert (
        bicep.text(bicep.declaration(wiring, "var", "useEntraWebhook").value)
        == "!empty(alertWebhookAppObjectId)"
    )
    receivers = bicep.properties(_get(_resource_body(wiring, "actionGroup"), "properties"))
    assert bicep.text(receivers["webhookReceivers"]) == "useEntraWebhook ? [entraWebhookReceiver] : []"
    assert bicep.text(receivers["azureFunctionReceivers"]) == "useEntraWebhook ? [] : [functionKeyReceiver]"


def test_the_key_only_fallback_calls_the_alerts_function_with_the_common_schema(wiring: bicep.Tree) -> None:
    fields = _var_object(wiring, "functionKeyReceiver")
    assert bicep.text(fields["useCommonAlertSchema"]) == "true"
    assert bicep.text(fields["functionName"]) == "alertsFunctionName"
    assert bicep.literal(bicep.declaration(wiring, "var", "alertsFunctionName").value) == "alerts"
    assert bicep.text(fields["httpTriggerUrl"]) == "alertsUrl"
    url = bicep.text(bicep.declaration(wiring, "var", "alertsUrl").value)
    assert url.startswith("'https://") and "/api/alerts?code=" in url
    # A function-level key opens this function only.
    assert "alertsFunction.listKeys().default" in url


def test_both_deploy_hooks_pass_the_app_registration_to_the_wiring() -> None:
    for hook in ("postdeploy.sh", "postdeploy.ps1"):
        text = (bicep.INFRA / "hooks" / hook).read_text()
        assert "alertWebhookAppObjectId=" in text and "ALERT_WEBHOOK_APP_OBJECT_ID" in text, hook
        assert "alertWebhookIdentifierUri=" in text and "ALERT_WEBHOOK_APP_ID_URI" in text, hook


def test_disk_alert_splits_per_vm_and_mount_and_names_its_remediation(wiring: bicep.Tree) -> None:
    body = _resource_body(wiring, "diskFullAlert")
    (criterion,) = [c for c in _get(body, "properties", "criteria", "allOf").children if c.type == "object"]
    fields = bicep.properties(criterion)
    query = bicep.text(fields["query"])
    for piece in ("InsightsMetrics", '"LogicalDisk"', '"FreeSpacePercentage"', "_ResourceId", "Mount"):
        assert piece in query
    assert bicep.literal(fields["resourceIdColumn"]) == "_ResourceId"
    assert bicep.literal(fields["metricMeasureColumn"]) == "FreeSpacePercentage"
    assert bicep.literal(fields["operator"]) == "LessThan"
    dimensions = [bicep.properties(d) for d in fields["dimensions"].children if d.type == "object"]
    assert [bicep.literal(d["name"]) for d in dimensions] == ["Mount"]
    assert bicep.text(_get(body, "properties", "autoMitigate")) == "true"

    custom = {
        k: bicep.literal(v)
        for k, v in bicep.properties(_get(body, "properties", "actions", "customProperties")).items()
    }
    assert custom == {"condition": "disk-full", "remediation": "free-disk-space"}
    # What the alert names must exist: routing honours custom properties over every route.
    catalog = yaml.safe_load((REMEDIATIONS / custom["remediation"] / "remediation.yaml").read_text())
    assert custom["condition"] in catalog["conditions"]
    route = _routes()["disk-full-log-search"]
    assert any(word in query for word in route["match"]["queryContains"])


def test_activity_log_alert_watches_successful_nsg_rule_writes(wiring: bicep.Tree) -> None:
    body = _resource_body(wiring, "nsgRuleWriteAlert")
    conditions = {
        bicep.literal(c["field"]): bicep.literal(c["equals"])
        for c in (
            bicep.properties(n)
            for n in _get(body, "properties", "condition", "allOf").children
            if n.type == "object"
        )
    }
    assert conditions == {
        "category": "Administrative",
        "operationName": "Microsoft.Network/networkSecurityGroups/securityRules/write",
        "status": "Succeeded",
    }
    (action,) = [
        a for a in _get(body, "properties", "actions", "actionGroups").children if a.type == "object"
    ]
    webhook = {k: bicep.literal(v) for k, v in bicep.properties(_get(action, "webhookProperties")).items()}
    route = _routes()["nsg-write-activity-log"]
    assert webhook == {"condition": route["condition"], "remediation": route["remediation"]}
    assert conditions["operationName"] in route["match"]["operationName"]


def test_event_subscription_delivers_nsg_writes_to_resource_events(wiring: bicep.Tree) -> None:
    body = _resource_body(wiring, "nsgWrites")
    destination = _get(body, "properties", "destination")
    assert bicep.literal(_get(destination, "endpointType")) == "AzureFunction"
    assert bicep.text(_get(destination, "properties", "resourceId")) == (
        "'${functionApp.id}/functions/${resourceEventsFunctionName}'"
    )
    assert (
        bicep.literal(bicep.declaration(wiring, "var", "resourceEventsFunctionName").value)
        == "resource_events"
    )

    event_filter = _get(body, "properties", "filter")
    assert bicep.array_literals(_get(event_filter, "includedEventTypes")) == [
        "Microsoft.Resources.ResourceWriteSuccess"
    ]
    filters = {
        bicep.literal(f["key"]): (bicep.literal(f["operatorType"]), bicep.text(f["values"]))
        for f in (
            bicep.properties(n) for n in _get(event_filter, "advancedFilters").children if n.type == "object"
        )
    }
    assert filters["data.operationName"] == ("StringIn", "nsgWriteOperations")
    operator, values = filters["subject"]
    assert operator == "StringBeginsWith" and "subjectPrefixes" in values
    operations = bicep.array_literals(bicep.declaration(wiring, "var", "nsgWriteOperations").value)
    assert set(operations) == set(_routes()["nsg-write-event"]["match"]["operationName"])


def test_event_subscription_retries_then_dead_letters_with_an_identity(wiring: bicep.Tree) -> None:
    properties = _get(_resource_body(wiring, "nsgWrites"), "properties")
    retry = bicep.properties(_get(properties, "retryPolicy"))
    assert int(bicep.text(retry["maxDeliveryAttempts"])) >= 10
    assert int(bicep.text(retry["eventTimeToLiveInMinutes"])) == 1440
    dead_letter = _get(properties, "deadLetterWithResourceIdentity")
    assert bicep.literal(_get(dead_letter, "identity", "type")) == "UserAssigned"
    destination = _get(dead_letter, "deadLetterDestination")
    assert bicep.literal(_get(destination, "endpointType")) == "StorageBlob"
    assert bicep.text(_get(destination, "properties", "blobContainerName")) == "deadLetterContainerName"
    assert "deadLetterDestination" not in bicep.properties(properties)  # the keyless form only


def test_the_system_topic_listens_to_the_subscription() -> None:
    topic = bicep.parse(bicep.INFRA / "modules" / "eventgrid-topic.bicep")
    body = bicep.declaration(topic, "resource", "systemTopic").value
    assert bicep.literal(_get(body, "properties", "topicType")) == "Microsoft.Resources.Subscriptions"
    assert bicep.text(_get(body, "properties", "source")) == "subscription().id"
    assert bicep.literal(_get(body, "identity", "type")) == "UserAssigned"


@pytest.fixture(scope="module")
def registered_functions() -> dict[str, dict]:
    """Name -> function.json of every function function_app registers, read in a fresh interpreter:
    get_functions() may run once per process, and other tests in this worker may have called it."""
    script = (
        "import json, function_app\n"
        "print(json.dumps({f.get_function_name(): json.loads(f.get_function_json())"
        " for f in function_app.app.get_functions()}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=bicep.REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"importing function_app failed:\n{done.stderr[-2000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_every_function_the_bicep_references_is_registered(registered_functions: dict[str, dict]) -> None:
    referenced = set()
    for path in bicep.bicep_files():
        referenced |= _function_references(bicep.parse(path))
    assert {"alerts", "resource_events"} <= referenced
    missing = sorted(referenced - set(registered_functions))
    assert missing == [], f"the Bicep wires functions function_app.py does not register: {missing}"


def test_every_setting_a_binding_names_is_deployed(registered_functions: dict[str, dict]) -> None:
    """%NAME% in a binding and identity-based connections resolve from app settings at run time."""
    settings_tree = bicep.parse(bicep.INFRA / "modules" / "functionapp.bicep")
    deployed = set(bicep.properties(bicep.declaration(settings_tree, "var", "appSettings").value))
    for name, function in registered_functions.items():
        for binding in function["bindings"]:
            for value in binding.values():
                for setting in re.findall(r"%([A-Za-z0-9_]+)%", str(value)):
                    assert setting in deployed, f"{name}: binding reads %{setting}%"
            connection = binding.get("connection")
            if connection:
                assert {f"{connection}__credential", f"{connection}__clientId"} <= deployed, name
                assert any(s.startswith(f"{connection}__") and s.endswith("ServiceUri") for s in deployed), (
                    name
                )


SAMPLE_SUB = "/subscriptions/00000000-0000-0000-0000-000000000001"


def _log_alert_payload(query: str, custom: dict[str, str], dimensions: dict[str, str]) -> dict:
    """The Common Alert Schema body a Log Alerts V2 rule with this query sends for one VM."""
    vm = f"{SAMPLE_SUB}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1"
    return {
        "schemaId": "azureMonitorCommonAlertSchema",
        "data": {
            "essentials": {
                "alertId": f"{SAMPLE_SUB}/providers/Microsoft.AlertsManagement/alerts/1",
                "alertRule": "rule",
                "severity": "Sev2",
                "signalType": "Log",
                "monitorCondition": "Fired",
                "monitoringService": "Log Alerts V2",
                "alertTargetIDs": [vm.lower()],
                "configurationItems": [vm],
                "firedDateTime": "2026-11-25T10:05:12Z",
            },
            "alertContext": {
                "conditionType": "LogQueryCriteria",
                "condition": {
                    "allOf": [
                        {
                            "searchQuery": query,
                            "dimensions": [
                                {"name": "_ResourceId", "value": vm.lower()},
                                *({"name": k, "value": v} for k, v in dimensions.items()),
                            ],
                        }
                    ]
                },
            },
            "customProperties": custom,
        },
    }


@pytest.mark.parametrize(
    ("resource", "remediation", "dimensions", "parameters"),
    [
        (
            "serviceDownAlert",
            "restart-service",
            {"ServiceName": "nginx.service"},
            {"serviceName": "nginx.service"},
        ),
        ("clockSkewAlert", "fix-time-sync", {}, {}),
    ],
)
def test_sample_log_alerts_reach_their_remediation_with_and_without_custom_properties(
    wiring: bicep.Tree, resource: str, remediation: str, dimensions: dict, parameters: dict
) -> None:
    from autoremediation.catalog_load import load_catalog
    from autoremediation.planning import Planner
    from autoremediation.routing import load_routes

    body = _resource_body(wiring, resource)
    (criterion,) = [c for c in _get(body, "properties", "criteria", "allOf").children if c.type == "object"]
    fields = bicep.properties(criterion)
    query = bicep.text(fields["query"]).strip("'\n")
    assert bicep.literal(fields["resourceIdColumn"]) == "_ResourceId"
    declared = []
    if "dimensions" in fields:
        items = [d for d in fields["dimensions"].children if d.type == "object"]
        declared = [bicep.literal(bicep.properties(d)["name"]) for d in items]
    assert declared == list(dimensions)
    custom = {
        k: bicep.literal(v)
        for k, v in bicep.properties(_get(body, "properties", "actions", "customProperties")).items()
    }
    catalog = load_catalog(REMEDIATIONS)
    # Provenance is its own test (tests/unit/test_provenance.py): here Azure confirms every alert.
    planner = Planner(catalog, load_routes(REMEDIATIONS, catalog), gate=TrustingGate())
    # With the rule's custom properties, and by the query alone (a rule made by hand without them).
    for props in (custom, {}):
        report = planner.plan_payload(_log_alert_payload(query, props, dimensions))
        [plan] = report.plans
        assert plan.finding.remediation == remediation
        assert dict(plan.finding.parameters) == parameters


def test_the_high_cpu_alert_is_opt_in_and_names_collect_diagnostics(wiring: bicep.Tree) -> None:
    from autoremediation.catalog_load import load_catalog
    from autoremediation.planning import Planner
    from autoremediation.routing import load_routes

    param = bicep.declaration(wiring, "param", "deployDiagnosticsAlert")
    assert bicep.text(param.value) == "false"
    body = _resource_body(wiring, "highCpuAlert")
    props = bicep.properties(_get(body, "properties"))
    assert bicep.literal(props["targetResourceType"]) == "Microsoft.Compute/virtualMachines"
    (criterion,) = [c for c in _get(body, "properties", "criteria", "allOf").children if c.type == "object"]
    assert bicep.literal(bicep.properties(criterion)["metricName"]) == "Percentage CPU"
    catalog = load_catalog(REMEDIATIONS)
    # Provenance is its own test (tests/unit/test_provenance.py): here Azure confirms every alert.
    planner = Planner(catalog, load_routes(REMEDIATIONS, catalog), gate=TrustingGate())
    vm = f"{SAMPLE_SUB}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1"
    payload = {
        "schemaId": "azureMonitorCommonAlertSchema",
        "data": {
            "essentials": {
                "alertId": f"{SAMPLE_SUB}/providers/Microsoft.AlertsManagement/alerts/2",
                "alertRule": "high-cpu",
                "signalType": "Metric",
                "monitorCondition": "Fired",
                "monitoringService": "Platform",
                "alertTargetIDs": [vm.lower()],
                "firedDateTime": "2026-11-25T10:05:12Z",
            },
            "alertContext": {
                "conditionType": "MultipleResourceMultipleMetricCriteria",
                "condition": {
                    "allOf": [{"metricName": "Percentage CPU", "metricValue": 97.5, "dimensions": []}]
                },
            },
        },
    }
    report = planner.plan_payload(payload)
    # The destination is the app's own container, its SAS minted at dispatch: nothing secret comes
    # from the alert, which names the remediation and nothing else.
    [plan] = report.plans
    assert plan.finding.remediation == "collect-diagnostics"
    assert dict(plan.finding.parameters) == {}  # defaults are filled at dispatch


# Event Grid: "25 advanced filters and 25 filter values across all the filters per Event Grid subscription".
EVENT_GRID_MAX_FILTER_VALUES = 25


def _split_subject_prefixes(count: int, operations: int, per_subscription_limit: int) -> list[list[int]]:
    """What the template's expressions compute for `count` scopes (Bicep `/` on ints truncates)."""
    per_subscription = per_subscription_limit - operations
    subscriptions = (count + per_subscription - 1) // per_subscription
    prefixes = list(range(count))
    return [
        prefixes[chunk * per_subscription :][:per_subscription]  # take(skip(prefixes, ...), ...)
        for chunk in range(subscriptions)
    ]


def test_event_subscriptions_stay_within_the_filter_value_limit(wiring: bicep.Tree) -> None:
    assert bicep.text(bicep.declaration(wiring, "var", "maxFilterValues").value) == str(
        EVENT_GRID_MAX_FILTER_VALUES
    )
    var = {item.name: bicep.text(item.value) for item in bicep.declarations(wiring, "var")}
    assert var["prefixesPerSubscription"] == "maxFilterValues - length(nsgWriteOperations)"
    assert var["subscriptionCount"] == (
        "(length(subjectPrefixes) + prefixesPerSubscription - 1) / prefixesPerSubscription"
    )
    loop = bicep.declaration(wiring, "resource", "nsgWrites").value
    assert bicep.text(loop).lstrip("[ \n").startswith("for chunk in range(0, subscriptionCount):")
    body = _resource_body(wiring, "nsgWrites")
    advanced = [
        bicep.properties(node)
        for node in _get(body, "properties", "filter", "advancedFilters").children
        if node.type == "object"
    ]
    values = {bicep.literal(item["key"]): bicep.text(item["values"]) for item in advanced}
    assert values == {
        "data.operationName": "nsgWriteOperations",
        "subject": "take(skip(subjectPrefixes, chunk * prefixesPerSubscription), prefixesPerSubscription)",
    }
    operations = len(bicep.array_literals(bicep.declaration(wiring, "var", "nsgWriteOperations").value))
    for count in range(1, 120):
        chunks = _split_subject_prefixes(count, operations, EVENT_GRID_MAX_FILTER_VALUES)
        assert [index for chunk in chunks for index in chunk] == list(range(count))  # each scope once
        assert all(0 < len(chunk) + operations <= EVENT_GRID_MAX_FILTER_VALUES for chunk in chunks)
    assert len(_split_subject_prefixes(23, operations, 25)) == 1
    assert len(_split_subject_prefixes(24, operations, 25)) == 2


def test_the_first_event_subscription_keeps_its_name(wiring: bicep.Tree) -> None:
    name = bicep.text(_get(_resource_body(wiring, "nsgWrites"), "name"))
    assert name == "chunk == 0 ? 'nsg-writes-${functionAppName}' : 'nsg-writes-${functionAppName}-${chunk}'"
