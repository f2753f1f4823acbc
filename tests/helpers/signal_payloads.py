"""Builders of inbound payloads for signal tests: realistic shapes, small enough to read."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
SUB = "11111111-2222-3333-4444-555555555555"
RG = "rg-app"
ALERT_GUID = "8f1c2d3e-0000-4a5b-9c8d-7e6f5a4b3c2d"


def vm_id(name: str, *, sub: str = SUB, rg: str = RG) -> str:
    return f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/{name}"


def storage_id(name: str = "stapp") -> str:
    return f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Storage/storageAccounts/{name}"


def workspace_id() -> str:
    return (
        f"/subscriptions/{SUB}/resourcegroups/{RG}/providers/microsoft.operationalinsights/workspaces/law-app"
    )


def nsg_rule_id(rule: str = "deny-ssh", nsg: str = "nsg-app") -> str:
    nsg_id = (
        f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Network/networkSecurityGroups/{nsg}"
    )
    return f"{nsg_id}/securityRules/{rule}"


def essentials(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "alertId": f"/subscriptions/{SUB}/providers/Microsoft.AlertsManagement/alerts/{ALERT_GUID}",
        "alertRule": "cpu-high",
        "severity": "Sev2",
        "signalType": "Metric",
        "monitorCondition": "Fired",
        "monitoringService": "Platform",
        "alertTargetIDs": [vm_id("vm-web-1").lower()],
        "configurationItems": ["vm-web-1"],
        "originAlertId": f"{SUB}_{RG}_microsoft.insights_metricAlerts_cpu-high_1",
        "firedDateTime": "2026-03-01T08:00:00.000Z",
        "description": "CPU above 90%",
        "essentialsVersion": "1.0",
        "alertContextVersion": "1.0",
    }
    base.update(overrides)
    return base


def alert(
    essentials_: dict[str, Any] | None = None,
    context: dict[str, Any] | None = None,
    custom: dict[str, Any] | None = None,
) -> dict[str, Any]:
    data: dict[str, Any] = {"essentials": essentials_ or essentials(), "alertContext": context or {}}
    if custom is not None:
        data["customProperties"] = custom
    return {"schemaId": "azureMonitorCommonAlertSchema", "data": data}


def metric_context(
    *conditions: dict[str, Any],
    kind: str = "SingleResourceMultipleMetricCriteria",
    properties: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "properties": properties,
        "conditionType": kind,
        "condition": {"windowSize": "PT5M", "allOf": list(conditions)},
    }


def metric_condition(name: str = "Percentage CPU", dims: Any = None, value: Any = 93.5) -> dict[str, Any]:
    return {
        "metricName": name,
        "metricNamespace": "Microsoft.Compute/virtualMachines",
        "operator": "GreaterThan",
        "threshold": "90",
        "timeAggregation": "Average",
        "dimensions": [] if dims is None else dims,
        "metricValue": value,
    }


def log_v2_context(
    query: str, *rows: dict[str, str], properties: dict[str, Any] | None = None
) -> dict[str, Any]:
    """One allOf condition per dimension combination, as Log Alerts V2 sends them."""
    return {
        "properties": properties or {},
        "conditionType": "LogQueryCriteria",
        "condition": {
            "windowSize": "PT15M",
            "allOf": [
                {
                    "searchQuery": query,
                    "metricMeasureColumn": "FreeSpacePercentage",
                    "targetResourceTypes": "['Microsoft.OperationalInsights/workspaces']",
                    "operator": "LessThan",
                    "threshold": "10",
                    "timeAggregation": "Average",
                    "dimensions": [{"name": k, "value": v} for k, v in row.items()],
                    "metricValue": 4.5,
                }
                for row in rows or ({},)
            ],
        },
    }


def activity_context(operation: str, scope: str | None, **overrides: Any) -> dict[str, Any]:
    context: dict[str, Any] = {
        "authorization": {"action": operation, "scope": scope} if scope else None,
        "channels": "Operation",
        "caller": "bob@contoso.com",
        "correlationId": "c0c0c0c0-1111-2222-3333-444444444444",
        "eventSource": "Administrative",
        "eventTimestamp": "2026-03-01T08:00:00.000Z",
        "level": "Informational",
        "operationName": operation,
        "properties": {"eventCategory": "Administrative", "entity": scope},
        "status": "Succeeded",
        "subStatus": "",
    }
    context.update(overrides)
    return context


def eg_event(
    event_type: str,
    data: Any,
    *,
    subject: str = "",
    event_id: str = "evt-1",
    topic: str = f"/subscriptions/{SUB}/resourceGroups/{RG}",
) -> dict[str, Any]:
    return {
        "id": event_id,
        "topic": topic,
        "subject": subject,
        "eventType": event_type,
        "eventTime": "2026-03-01T08:00:00.0000000Z",
        "data": data,
        "dataVersion": "2",
        "metadataVersion": "1",
    }


def cloud_event(event_type: str, data: Any, *, subject: str = "", event_id: str = "ce-1") -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": f"/subscriptions/{SUB}/resourceGroups/{RG}",
        "type": event_type,
        "subject": subject,
        "time": "2026-03-01T08:00:00.0000000Z",
        "data": data,
    }


def resource_data(resource: str, operation: str, status: str = "Succeeded") -> dict[str, Any]:
    return {
        "authorization": {"scope": resource, "action": operation, "evidence": {"role": "Contributor"}},
        "claims": {"appid": "00000000-0000-0000-0000-00000000abcd"},
        "correlationId": "corr-1",
        "resourceProvider": operation.split("/", 1)[0],
        "resourceUri": resource,
        "operationName": operation,
        "status": status,
        "subscriptionId": SUB,
        "tenantId": "tenant-1",
    }


def manual(**overrides: Any) -> dict[str, Any]:
    request: dict[str, Any] = {
        "remediation": "free-disk-space",
        "targets": [vm_id("vm-web-1")],
        "parameters": {"mountPoint": "/var"},
        "reason": "disk full on /var",
        "dryRun": False,
        "requestId": "req-0001",
    }
    request.update(overrides)
    return request


def sample(name: str) -> Any:
    return json.loads((SAMPLES / name).read_text(encoding="utf-8"))


def sample_names() -> list[str]:
    return sorted(p.name for p in SAMPLES.glob("*.json"))


def clone(value: Any) -> Any:
    return copy.deepcopy(value)
