"""The Alerts adapter on the real azure-mgmt-alertsmanagement client, over HTTPS, against the local fleet:
alerts read back as Azure Monitor records them, rule custom properties from each rule kind, state
changes with comments, bounded retries, and fail-closed provenance when Azure Monitor is away."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from localfleet.fleetfile import parse_fleet
from localfleet.server import FleetServer

from autoremediation.azure.alerts import AzureAlerts
from autoremediation.azure.calls import Retrier
from autoremediation.catalog_load import load_catalog
from autoremediation.errors import InvalidInput, NotFound, Transient
from autoremediation.planning import Planner
from autoremediation.ports import SystemClock
from autoremediation.provenance import AlertGate, ProvenanceSettings, ProvenanceUnavailable, parse_time
from autoremediation.routing import load_routes
from autoremediation.settings import Settings
from autoremediation.signals import parse
from autoremediation.store.memory_queue import ManualClock
from tests.helpers.catalogs import SHIPPED

from .conftest import RG, SUB, Sleeps, vm_id

pytestmark = pytest.mark.fleet

ALERTS = f"/subscriptions/{SUB}/providers/Microsoft.AlertsManagement/alerts"
LOG_RULE = f"{RG}/providers/Microsoft.Insights/scheduledQueryRules/disk-full"
METRIC_RULE = f"{RG}/providers/Microsoft.Insights/metricAlerts/cpu-high"
ACTIVITY_RULE = f"{RG}/providers/Microsoft.Insights/activityLogAlerts/nsg-writes"
NARROW_RULE = f"{RG}/providers/Microsoft.Insights/scheduledQueryRules/disk-full-vm-b"
DISABLED_RULE = f"{RG}/providers/Microsoft.Insights/scheduledQueryRules/disk-full-off"
DISK_QUERY = "InsightsMetrics | where Name == 'FreeSpacePercentage'"


def log_context(target: str, mount: str) -> dict[str, Any]:
    """``properties.context`` of a log search alert split by _ResourceId and Mount."""
    return {
        "conditionType": "LogQueryCriteria",
        "condition": {
            "allOf": [
                {
                    "searchQuery": DISK_QUERY,
                    "dimensions": [
                        {"name": "_ResourceId", "value": target},
                        {"name": "Mount", "value": mount},
                    ],
                }
            ]
        },
    }


def fired(minutes_ago: float) -> str:
    return (datetime.now(UTC) - timedelta(minutes=minutes_ago)).isoformat().replace("+00:00", "Z")


FIRED = fired(3)


def alerting_fleet() -> Any:
    return parse_fleet(
        {
            "subscriptions": [
                {
                    "id": SUB,
                    "resourceGroups": [
                        {
                            "name": "rg-demo",
                            "virtualMachines": [
                                {"name": "vm-a", "os": "linux"},
                                {"name": "vm-b", "os": "linux"},
                            ],
                        }
                    ],
                }
            ],
            "alertRules": [
                {
                    "id": LOG_RULE,
                    "deployed": True,
                    "customProperties": {"condition": "disk-full", "mountPoint": "/"},
                },
                {"id": METRIC_RULE, "customProperties": {"remediation": "restart-service"}},
                {"id": ACTIVITY_RULE, "customProperties": {"condition": "nsg-lockout"}},
                {"id": NARROW_RULE, "scopes": [vm_id("vm-b")]},
                {"id": DISABLED_RULE, "enabled": False},
            ],
            "alerts": [
                {"id": f"{ALERTS}/a1", "rule": LOG_RULE, "target": vm_id("vm-a"), "firedDateTime": FIRED},
                {
                    "id": f"{ALERTS}/a2",
                    "rule": METRIC_RULE,
                    "target": vm_id("vm-b"),
                    "firedDateTime": FIRED,
                    "monitorCondition": "Resolved",
                    "resolvedDateTime": FIRED,
                },
                {
                    "id": f"{ALERTS}/a3",
                    "rule": LOG_RULE,
                    "target": vm_id("vm-a"),
                    "firedDateTime": FIRED,
                    "signalType": "Log",
                    "context": log_context(vm_id("vm-a"), "/data"),
                },
                {
                    "id": f"{ALERTS}/a4",
                    "rule": NARROW_RULE,
                    "target": vm_id("vm-a"),
                    "firedDateTime": FIRED,
                    "context": log_context(vm_id("vm-a"), "/data"),
                },
                {
                    "id": f"{ALERTS}/a5",
                    "rule": DISABLED_RULE,
                    "target": vm_id("vm-a"),
                    "firedDateTime": FIRED,
                    "context": log_context(vm_id("vm-a"), "/data"),
                },
            ],
        },
        "alerting.yaml",
    )


@pytest.fixture
def server() -> Any:
    with FleetServer(alerting_fleet(), sandbox=False) as fleet:
        yield fleet


@pytest.fixture
def adapter(server: FleetServer) -> AzureAlerts:
    settings = Settings(arm_endpoint=server.base_url, arm_ca_bundle=server.ca_bundle)
    return AzureAlerts(settings, retrier=Retrier(sleep=Sleeps()))


def test_an_alert_reads_back_as_azure_monitor_records_it(adapter: AzureAlerts) -> None:
    record = adapter.get_alert(f"{ALERTS}/a1")
    assert record.rule_id == LOG_RULE
    assert record.target_resource.lower() == vm_id("vm-a").lower()
    assert record.monitor_condition == "Fired" and record.alert_state == "New"
    assert record.fired_at == parse_time(FIRED)
    resolved = adapter.get_alert(f"{ALERTS}/a2")
    assert resolved.monitor_condition == "Resolved" and resolved.resolved_at is not None


def test_an_unknown_alert_is_not_found(adapter: AzureAlerts) -> None:
    with pytest.raises(NotFound):
        adapter.get_alert(f"{ALERTS}/no-such-alert")
    with pytest.raises(InvalidInput):
        adapter.get_alert(vm_id("vm-a"))


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (LOG_RULE, {"condition": "disk-full", "mountPoint": "/"}),  # actions.customProperties
        (METRIC_RULE, {"remediation": "restart-service"}),  # actions[].webHookProperties
        (ACTIVITY_RULE, {"condition": "nsg-lockout"}),  # actions.actionGroups[].webhookProperties
    ],
)
def test_custom_properties_come_from_each_kind_of_rule(
    adapter: AzureAlerts, rule: str, expected: dict
) -> None:
    assert dict(adapter.get_rule(rule).custom_properties) == expected


def test_a_missing_rule_is_not_found(adapter: AzureAlerts) -> None:
    with pytest.raises(NotFound):
        adapter.get_rule(f"{RG}/providers/Microsoft.Insights/scheduledQueryRules/deleted")


def test_change_state_closes_the_alert_with_the_comment(adapter: AzureAlerts, server: FleetServer) -> None:
    adapter.change_state(f"{ALERTS}/a1", "Closed", "job-1 succeeded")
    assert adapter.get_alert(f"{ALERTS}/a1").alert_state == "Closed"
    assert server.fleet.alerting.history(f"{ALERTS}/a1") == [
        {"state": "Closed", "comments": "job-1 succeeded"}
    ]
    [call] = server.calls_matching("POST", "*/changestate")
    assert call.lower().endswith("/alerts/a1/changestate")


def test_azure_monitor_unreachable_is_retried_then_fails_closed(server: FleetServer) -> None:
    server.inject("GET */Microsoft.AlertsManagement/alerts/*", "error", status=503)
    sleeps = Sleeps()
    settings = Settings(arm_endpoint=server.base_url, arm_ca_bundle=server.ca_bundle)
    adapter = AzureAlerts(settings, retrier=Retrier(attempts=3, sleep=sleeps))
    with pytest.raises(Transient):
        adapter.get_alert(f"{ALERTS}/a1")
    assert len(sleeps.delays) == 2  # bounded: three attempts, two back-offs
    assert len(server.calls_matching("GET", "*/alerts/a1")) == 3

    gate = AlertGate(adapter, ProvenanceSettings(trusted_rules=(LOG_RULE,)), SystemClock())
    [signal] = parse(_payload("a1", vm_id("vm-a")))
    with pytest.raises(ProvenanceUnavailable, match=r"^provenance: Azure Monitor could not confirm"):
        gate.verdict(signal)


def test_the_gate_confirms_with_the_real_client_and_takes_properties_from_the_rule(
    adapter: AzureAlerts,
) -> None:
    trusted = ProvenanceSettings(trusted_rules=(f"{RG}/providers/Microsoft.Insights/*",))
    gate = AlertGate(adapter, trusted, ManualClock(parse_time(FIRED) + timedelta(minutes=3)))
    [signal] = parse(
        _payload("a1", vm_id("vm-a"), custom={"remediation": "restart-service", "serviceName": "x"})
    )
    verdict = gate.verdict(signal)
    assert verdict.refusal is None
    assert dict(verdict.signal.custom_properties) == {"condition": "disk-full", "mountPoint": "/"}


def test_an_alert_reads_back_with_its_signal_type_and_context(adapter: AzureAlerts) -> None:
    record = adapter.get_alert(f"{ALERTS}/a3")
    assert record.signal_type == "Log" and record.monitor_service == "Log Analytics"
    [condition] = record.context["condition"]["allOf"]
    assert condition["searchQuery"] == DISK_QUERY
    assert {"name": "Mount", "value": "/data"} in condition["dimensions"]


def test_rules_read_back_with_their_scopes_and_state(adapter: AzureAlerts) -> None:
    assert adapter.get_rule(NARROW_RULE).scopes == (vm_id("vm-b"),)
    assert adapter.get_rule(LOG_RULE).scopes == (RG,) and adapter.get_rule(LOG_RULE).enabled
    assert adapter.get_rule(DISABLED_RULE).enabled is False


def _gate(adapter: AzureAlerts) -> AlertGate:
    trusted = ProvenanceSettings(trusted_rules=(f"{RG}/providers/Microsoft.Insights/*",))
    return AlertGate(adapter, trusted, ManualClock(parse_time(FIRED) + timedelta(minutes=3)))


def test_a_reposted_body_is_routed_as_azure_monitor_records_the_alert(adapter: AzureAlerts) -> None:
    # A key holder re-posts the real disk-full alert a3 as a failed-service alert naming their unit.
    body = _payload("a3", vm_id("vm-a"))
    body["data"]["alertContext"] = {
        "condition": {
            "allOf": [
                {
                    "searchQuery": "Syslog | where SyslogMessage has 'Failed with result'",
                    "dimensions": [
                        {"name": "_ResourceId", "value": vm_id("vm-b")},
                        {"name": "ServiceName", "value": "systemd-exit"},
                    ],
                }
            ]
        }
    }
    catalog = load_catalog(SHIPPED)
    planner = Planner(catalog, load_routes(SHIPPED, catalog), gate=_gate(adapter))
    report = planner.plan_payload(body).to_dict()
    [plan] = report["plans"]
    assert (plan["remediation"], plan["target"].lower()) == ("free-disk-space", vm_id("vm-a").lower())
    assert plan["parameters"]["mountPoint"] == "/data" and "serviceName" not in plan["parameters"]


@pytest.mark.parametrize(
    ("guid", "reason"),
    [("a4", "which is not under the scopes of rule"), ("a5", "is disabled in ARM")],
)
def test_a_trusted_rule_out_of_scope_or_disabled_is_refused(
    adapter: AzureAlerts, guid: str, reason: str
) -> None:
    [signal] = parse(_payload(guid, vm_id("vm-a")))
    rule = NARROW_RULE if guid == "a4" else DISABLED_RULE
    signal = replace(signal, rule=rule.rsplit("/", 1)[-1])
    verdict = _gate(adapter).verdict(signal)
    assert verdict.refusal is not None and verdict.refusal.startswith("provenance: ")
    assert reason in verdict.refusal and rule in verdict.refusal


def _payload(guid: str, target: str, custom: dict | None = None) -> dict[str, Any]:
    return {
        "schemaId": "azureMonitorCommonAlertSchema",
        "data": {
            "essentials": {
                "alertId": f"{ALERTS}/{guid}",
                "alertRule": "disk-full",
                "severity": "Sev2",
                "signalType": "Log",
                "monitorCondition": "Fired",
                "monitoringService": "Log Alerts V2",
                "alertTargetIDs": [target],
                "firedDateTime": FIRED,
            },
            "alertContext": {},
            "customProperties": custom or {},
        },
    }
