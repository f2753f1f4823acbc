"""Common Alert Schema alerts: every monitoring service shape, targets, drift and refusals."""

from __future__ import annotations

import pytest

from autoremediation.errors import SignalError
from autoremediation.signals import parse
from autoremediation.signals.model import Signal
from tests.helpers.signal_payloads import (
    SUB,
    activity_context,
    alert,
    essentials,
    log_v2_context,
    metric_condition,
    metric_context,
    nsg_rule_id,
    storage_id,
    vm_id,
    workspace_id,
)

DISK_QUERY = (
    'InsightsMetrics | where Name == "FreeSpacePercentage" | summarize avg(Val) by _ResourceId, Mount'
)


def one(payload: object) -> Signal:
    signals = parse(payload)
    assert len(signals) == 1
    return signals[0]


def test_static_metric_alert_on_a_vm() -> None:
    payload = alert(
        context=metric_context(
            metric_condition("Percentage CPU", [{"name": "ResourceId", "value": "guid-1"}])
        ),
        custom={"team": "web"},
    )
    signal = one(payload)
    assert signal.source == "alert"
    assert signal.id == essentials()["alertId"]
    assert signal.type == "Platform"
    assert signal.signal_type == "Metric"
    assert signal.state == "fired"
    assert signal.rule == "cpu-high"
    assert signal.severity == "Sev2"
    assert signal.fired_at == signal.time == "2026-03-01T08:00:00.000Z"
    assert signal.metrics == ("Percentage CPU",)
    assert signal.dimensions == ({"ResourceId": "guid-1"},)
    assert [t.name for t in signal.targets] == ["vm-web-1"]
    assert signal.custom_properties == {"team": "web"}
    assert signal.query is None and signal.operation_name is None


def test_dynamic_threshold_alert_on_storage_has_no_vm_target() -> None:
    payload = alert(
        essentials(alertTargetIDs=[storage_id()], configurationItems=["stapp"]),
        metric_context(metric_condition("Transactions"), kind="DynamicThresholdCriteria"),
    )
    signal = one(payload)
    assert signal.targets == ()
    assert signal.resources == (storage_id(),)
    assert signal.extra["conditionType"] == "DynamicThresholdCriteria"


def test_multi_metric_alert_keeps_one_dimension_mapping_per_condition() -> None:
    payload = alert(
        context=metric_context(
            metric_condition("Percentage CPU", [{"name": "LUN", "value": "0"}]),
            metric_condition("Available Memory Bytes"),
            metric_condition("Percentage CPU", [{"name": "LUN", "value": "1"}]),
        )
    )
    signal = one(payload)
    assert signal.metrics == ("Percentage CPU", "Available Memory Bytes")
    assert signal.dimensions == ({"LUN": "0"}, {}, {"LUN": "1"})


def test_resolved_alert_has_resolved_state_and_time() -> None:
    payload = alert(
        essentials(monitorCondition="Resolved", resolvedDateTime="2026-03-01T08:20:00.000Z"),
        metric_context(metric_condition(value=None)),
    )
    signal = one(payload)
    assert signal.state == "resolved"
    assert signal.resolved_at == signal.time == "2026-03-01T08:20:00.000Z"
    assert signal.fired_at == "2026-03-01T08:00:00.000Z"


def test_log_alert_v2_takes_targets_and_rows_from_resource_id_dimensions() -> None:
    vm1, vm2 = vm_id("vm-db-1"), vm_id("vm-db-2")
    payload = alert(
        essentials(
            signalType="Log",
            monitoringService="Log Alerts V2",
            alertTargetIDs=[workspace_id()],
            configurationItems=[vm1.lower(), vm2],
        ),
        log_v2_context(
            DISK_QUERY,
            {"_ResourceId": vm1.lower(), "Mount": "/var"},
            {"_resourceid": vm1.upper(), "Mount": "/data"},
            {"_ResourceId": vm2, "Mount": "/"},
        ),
    )
    signal = one(payload)
    assert signal.type == "Log Alerts V2"
    assert signal.query == DISK_QUERY
    # Compared without case; the first spelling met (configurationItems) is what the target keeps.
    assert [t.id for t in signal.targets] == [vm1.lower(), vm2]
    assert [d["Mount"] for d in signal.dimensions] == ["/var", "/data", "/"]
    assert signal.resources == (workspace_id(), vm1.lower(), vm2)


def test_target_from_dimension_only() -> None:
    vm = vm_id("vm-only-in-dimension")
    payload = alert(
        essentials(
            signalType="Log",
            monitoringService="Log Alerts V2",
            alertTargetIDs=[workspace_id()],
            configurationItems=["vm-only-in-dimension"],
        ),
        log_v2_context(DISK_QUERY, {"ResourceId": vm, "Mount": "/"}),
    )
    assert [t.id for t in one(payload).targets] == [vm]


def test_custom_properties_override_alert_context_properties() -> None:
    payload = alert(
        context=log_v2_context(
            DISK_QUERY, properties={"mountPoint": "/", "team": "db", "n": 3, "gone": None}
        ),
        custom={"mountPoint": "/var", "extra": True},
    )
    assert one(payload).custom_properties == {"mountPoint": "/var", "team": "db", "n": "3", "extra": "true"}


def test_older_log_analytics_alert_reads_search_query_and_result_rows() -> None:
    vm = vm_id("vm-legacy")
    context = {
        "SearchQuery": "Perf | where CounterName == '% Free Space'",
        "ResultCount": 2,
        "SeverityDescription": "Warning",
        "WorkspaceId": "ws-guid",
        "AffectedConfigurationItems": ["vm-legacy"],
        "AlertType": "Number of results",
        "SearchResults": {
            "tables": [
                {
                    "name": "PrimaryResult",
                    "columns": [
                        {"name": "_ResourceId", "type": "string"},
                        {"name": "InstanceName", "type": "string"},
                        {"name": "CounterValue", "type": "real"},
                    ],
                    "rows": [[vm.lower(), "C:", 4.5], [vm.lower(), "D:", 7]],
                }
            ]
        },
    }
    payload = alert(
        essentials(signalType="Log", monitoringService="Log Analytics", alertTargetIDs=[workspace_id()]),
        context,
    )
    signal = one(payload)
    assert signal.type == "Log Analytics"
    assert signal.query == "Perf | where CounterName == '% Free Space'"
    assert signal.dimensions == (
        {"_ResourceId": vm.lower(), "InstanceName": "C:", "CounterValue": "4.5"},
        {"_ResourceId": vm.lower(), "InstanceName": "D:", "CounterValue": "7"},
    )
    assert [t.name for t in signal.targets] == ["vm-legacy"]


def test_application_insights_log_alert() -> None:
    component = f"/subscriptions/{SUB}/resourceGroups/rg-app/providers/microsoft.insights/components/appi-web"
    context = {
        "SearchQuery": "requests | where success == false",
        "ApplicationId": "app-guid",
        "AlertType": "Number of results",
        "ResultCount": 12,
    }
    signal = one(
        alert(
            essentials(
                signalType="Log", monitoringService="Application Insights", alertTargetIDs=[component]
            ),
            context,
        )
    )
    assert signal.type == "Application Insights"
    assert signal.query == "requests | where success == false"
    assert signal.targets == ()
    assert signal.resources == (component,)


def test_activity_log_administrative_alert_on_an_nsg_rule() -> None:
    rule = nsg_rule_id()
    op = "Microsoft.Network/networkSecurityGroups/securityRules/write"
    payload = alert(
        essentials(
            signalType="Activity Log",
            monitoringService="Activity Log - Administrative",
            alertTargetIDs=[rule.lower()],
            configurationItems=["deny-ssh"],
        ),
        activity_context(op, rule),
    )
    signal = one(payload)
    assert signal.type == "Activity Log - Administrative"
    assert signal.operation_name == op
    assert signal.status == "Succeeded"
    assert signal.resource_id == rule
    assert signal.targets == ()
    assert signal.resources == (rule.lower(),)
    assert signal.extra["caller"] == "bob@contoso.com"


def test_activity_log_alert_on_a_vm_child_resource_targets_the_vm() -> None:
    extension = vm_id("vm-web-2") + "/extensions/CustomScript"
    payload = alert(
        essentials(
            signalType="Activity Log",
            monitoringService="Activity Log - Administrative",
            alertTargetIDs=[extension],
        ),
        activity_context("Microsoft.Compute/virtualMachines/extensions/write", extension),
    )
    signal = one(payload)
    assert [t.id for t in signal.targets] == [vm_id("vm-web-2")]
    assert signal.resources == (extension,)


def test_resource_health_alert() -> None:
    vm = vm_id("vm-web-3")
    context = activity_context(
        "Microsoft.Resourcehealth/healthevent/Activated/action",
        None,
        eventSource="ResourceHealth",
        status="Active",
        properties={
            "title": "Rebooted",
            "details": None,
            "currentHealthStatus": "Unavailable",
            "previousHealthStatus": "Available",
            "type": "Downtime",
            "cause": "PlatformInitiated",
        },
    )
    signal = one(
        alert(
            essentials(signalType="Activity Log", monitoringService="Resource Health", alertTargetIDs=[vm]),
            context,
        )
    )
    assert signal.type == "Resource Health"
    assert signal.status == "Active"
    assert signal.resource_id == vm  # no authorization scope: the alert's target stands in
    assert [t.id for t in signal.targets] == [vm]
    assert signal.custom_properties["currentHealthStatus"] == "Unavailable"
    assert "details" not in signal.custom_properties


def test_service_health_alert_with_numbers_for_names_and_an_array_property() -> None:
    context = activity_context(
        "Microsoft.ServiceHealth/incident/action",
        None,
        eventSource=2,
        level=3,
        channels=1,
        status="Active",
        properties={
            "title": "Outage",
            "impactedServices": [{"ServiceName": "Virtual Machines"}],
            "stage": "Active",
        },
    )
    signal = one(
        alert(
            essentials(
                signalType="ActivityLog",
                monitoringService="ServiceHealth",
                alertTargetIDs=[f"/subscriptions/{SUB}"],
            ),
            context,
        )
    )
    assert signal.type == "ServiceHealth"
    assert signal.resource_id == f"/subscriptions/{SUB}"
    assert signal.targets == ()
    assert signal.custom_properties["impactedServices"] == '[{"ServiceName":"Virtual Machines"}]'


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda e: e.update(alertTargetIDs=vm_id("vm-a")), ["vm-a"]),  # a string, not an array
        (lambda e: e.update(alertTargetIDs=None), []),
        (lambda e: e.pop("alertTargetIDs"), []),
        (lambda e: e.update(alertTargetIDs=[vm_id("vm-a"), 7, None, {"id": vm_id("vm-b")}]), ["vm-a"]),
        (lambda e: e.update(alertTargetIDs=[], configurationItems=vm_id("vm-c")), ["vm-c"]),
        (lambda e: e.update(alertTargetIDs=[vm_id("vm-a"), vm_id("vm-a").upper() + "/"]), ["vm-a"]),
        (
            lambda e: e.update(
                alertTargetIDs=[vm_id("vm-a").replace("virtualMachines/vm-a", "disks/vm-a-os")]
            ),
            [],
        ),
        (lambda e: e.update(alertTargetIDs=["vm-a", "/subscriptions/x", vm_id("vm-a") + "x/"]), ["vm-ax"]),
        (
            lambda e: e.update(
                alertTargetIDs=[
                    "/subscriptions/s/resourceGroups/r/providers/Microsoft.Compute/"
                    "virtualMachineScaleSets/ss/virtualMachines/0"
                ]
            ),
            [],
        ),
    ],
)
def test_targets_survive_type_drift_and_keep_only_vms(change, expected) -> None:
    payload = alert(context=metric_context(metric_condition()))
    change(payload["data"]["essentials"])
    assert [t.name for t in one(payload).targets] == expected


def test_numbers_as_strings_and_single_values_as_arrays() -> None:
    payload = alert(
        essentials(severity=3, alertRule=["cpu-high"], firedDateTime=["2026-03-01T08:00:00Z"]),
        metric_context(metric_condition(dims={"name": "LUN", "value": 2})),
    )
    signal = one(payload)
    assert signal.severity == "Sev3"
    assert signal.rule == "cpu-high"
    assert signal.fired_at == "2026-03-01T08:00:00Z"
    assert signal.dimensions == ({"LUN": "2"},)


def test_dimensions_given_as_a_plain_object_and_all_of_as_one_object() -> None:
    context = metric_context()
    context["condition"]["allOf"] = metric_condition(dims={"_ResourceId": vm_id("vm-z"), "Mount": "/"})
    signal = one(alert(essentials(alertTargetIDs=[]), context))
    assert signal.dimensions == ({"_ResourceId": vm_id("vm-z"), "Mount": "/"},)
    assert [t.name for t in signal.targets] == ["vm-z"]


def test_missing_optional_sections_are_fine() -> None:
    payload = {
        "schemaId": "azureMonitorCommonAlertSchema",
        "data": {"essentials": essentials(), "alertContext": None, "customProperties": None},
    }
    signal = one(payload)
    assert signal.dimensions == () and signal.custom_properties == {} and signal.metrics == ()
    del payload["data"]["alertContext"]
    assert one(payload).id == essentials()["alertId"]


@pytest.mark.parametrize(
    "service", ["Budget", "CostAlerts", "Cost Alerts", "SmartDetector", "Activity Log - Administrative"]
)
@pytest.mark.parametrize("absent", [True, False])
def test_alerts_that_never_resolve_may_carry_no_monitor_condition(service: str, absent: bool) -> None:
    fields = essentials(monitoringService=service, monitorCondition=None)
    if absent:
        del fields["monitorCondition"]
    assert one(alert(fields)).state == "fired"


def test_a_null_monitor_condition_is_still_refused_for_a_metric_alert() -> None:
    with pytest.raises(SignalError, match=r"monitorCondition is null$"):
        parse(alert(essentials(monitoringService="Platform", monitorCondition=None)))


def test_monitor_condition_is_read_without_case() -> None:
    assert one(alert(essentials(monitorCondition="RESOLVED"))).state == "resolved"


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"schemaId": "azureMonitorCommonAlertSchema"}, "alert: data is missing"),
        (
            {"schemaId": "azureMonitorCommonAlertSchema", "data": []},
            "alert: data must be an object, not an array",
        ),
        ({"schemaId": "azureMonitorCommonAlertSchema", "data": {}}, "alert: data.essentials is missing"),
        (alert(essentials(alertId=None)), "alert: data.essentials.alertId is null"),
        (alert(essentials(alertId="  ")), "alert: data.essentials.alertId is missing"),
        (
            alert(essentials(alertId={"id": 1})),
            "alert: data.essentials.alertId must be a string, not an object",
        ),
        (alert(essentials(monitoringService=None)), "alert: data.essentials.monitoringService is null"),
        (alert(essentials(monitorCondition=None)), "alert: data.essentials.monitorCondition is null"),
        (
            alert({k: v for k, v in essentials().items() if k != "monitorCondition"}),
            "alert: data.essentials.monitorCondition is missing",
        ),
        (
            alert(essentials(monitorCondition="Acknowledged")),
            "alert: data.essentials.monitorCondition must be Fired or Resolved, not 'Acknowledged'",
        ),
        (
            {"schemaId": "Microsoft.Insights/activityLogs", "data": {}},
            "alert: schemaId 'Microsoft.Insights/activityLogs' is not supported",
        ),
        ({"schemaId": 7, "data": {}}, "alert: schemaId '7' is not supported"),
        ({"schemaId": None, "data": {}}, "alert: schemaId (null) is not supported"),
        (alert(context="oops"), "alert: data.alertContext must be an object, not a string"),
        (
            alert(context={"condition": [1]}),
            "alert: data.alertContext.condition must be an object, not an array",
        ),
    ],
)
def test_malformed_alerts_are_refused_with_the_field_named(payload, message) -> None:
    with pytest.raises(SignalError) as caught:
        parse(payload)
    assert str(caught.value).startswith(message)


def test_schema_hint_names_the_common_alert_schema() -> None:
    with pytest.raises(SignalError, match="enable the common alert schema"):
        parse({"schemaId": "AzureMonitorMetricAlert", "data": {}})
