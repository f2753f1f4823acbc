"""Azure Monitor in the local fleet: alert rules (ARM resources) and alerts (Alerts Management).

Declared at the top level of a fleet file::

    now: "2026-11-25T10:07:00Z"          # the fleet's wall clock when it starts (default: real time)
    alertRules:
      - id: /subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.Insights/scheduledQueryRules/<name>
        deployed: true                    # a rule infra/ deploys: the deployment trusts it
        customProperties: {condition: disk-full, remediation: free-disk-space}
        scopes: [<resource id>, ...]      # properties.scopes (default: the rule's resource group)
        enabled: true
    alerts:
      - id: /subscriptions/<sub>/providers/Microsoft.AlertsManagement/alerts/<guid>
        rule: <alert rule id>            # need not be declared: an alert from a deleted rule
        target: <resource id>            # the resource Azure fired the alert on
        monitorCondition: Fired          # or Resolved
        firedDateTime: "2026-11-25T10:05:12.3456789Z"
        signalType: Log                  # essentials.signalType (default: from the rule's kind)
        monitorService: Log Analytics    # essentials.monitorService (default: from the rule's kind)
        context: {conditionType: LogQueryCriteria, condition: {allOf: [...]}}  # properties.context

Served in ARM's shapes: ``GET .../Microsoft.AlertsManagement/alerts/{id}``, ``POST .../changestate``
(``newState`` in the query, ``{"comments": ...}`` in the body), and ``GET`` of a rule resource.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from .arm import ArmError

_ALERT_ID = re.compile(
    r"^/subscriptions/(?P<sub>[0-9a-fA-F-]{36})/providers/Microsoft\.AlertsManagement/alerts/(?P<guid>[^/]+)$",
    re.IGNORECASE,
)
_RULE_ID = re.compile(
    r"^/subscriptions/(?P<sub>[0-9a-fA-F-]{36})/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.Insights/"
    r"(?P<kind>scheduledQueryRules|metricAlerts|activityLogAlerts)/(?P<name>[^/]+)$",
    re.IGNORECASE,
)
CONDITIONS = ("Fired", "Resolved")
STATES = ("New", "Acknowledged", "Closed")


@dataclass(frozen=True)
class AlertRuleSpec:
    id: str
    custom_properties: Mapping[str, str] = field(default_factory=dict)
    deployed: bool = False
    enabled: bool = True
    scopes: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        match = _RULE_ID.match(self.id)
        return match["kind"] if match else ""


@dataclass(frozen=True)
class AlertSpec:
    id: str
    rule: str
    target: str
    monitor_condition: str = "Fired"
    fired: str = ""
    resolved: str | None = None
    state: str = "New"
    signal_type: str | None = None
    monitor_service: str | None = None
    context: Mapping[str, Any] = field(default_factory=dict)


def parse_time(text: str) -> datetime | None:
    match = re.match(r"^(.*T\d{2}:\d{2}:\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})$", text.strip(), re.IGNORECASE)
    if not match:
        return None
    zone = "+00:00" if match[3].upper() == "Z" else match[3]
    try:
        return datetime.fromisoformat(match[1] + (match[2] or "")[:7] + zone)
    except ValueError:
        return None


def parse_alerting(
    reader: Any, root: Mapping[str, Any], subscriptions: list[str]
) -> tuple[str | None, tuple[AlertRuleSpec, ...], tuple[AlertSpec, ...]]:
    """``now``, ``alertRules`` and ``alerts`` of a fleet document (``reader`` is fleetfile's _Reader)."""
    r = reader
    now = r.optional_text(root, "now", "(top level)")
    if now is not None and parse_time(now) is None:
        raise r.fail("now", f"{now!r} is not an ISO 8601 time with a zone (2026-11-25T10:07:00Z)")
    known = {s.lower() for s in subscriptions}
    rules: list[AlertRuleSpec] = []
    for i, node in enumerate(r.items(root, "alertRules", "(top level)")):
        path = f"alertRules[{i}]"
        data = r.mapping(node, path, {"id", "customProperties", "deployed", "enabled", "scopes"})
        rule_id = r.text(data, "id", path)
        match = _RULE_ID.match(rule_id)
        if not match:
            raise r.fail(f"{path}.id", "must be a scheduledQueryRules, metricAlerts or activityLogAlerts id")
        if match["sub"].lower() not in known:
            raise r.fail(f"{path}.id", f"subscription {match['sub']} is not declared")
        props = data.get("customProperties") or {}
        if not isinstance(props, Mapping):
            raise r.fail(f"{path}.customProperties", "must be a mapping")
        scopes = data.get("scopes")
        if scopes is None:
            rg = rule_id.split("/providers/", 1)[0]
            scopes = [rg]
        if not isinstance(scopes, list) or not all(isinstance(x, str) and x.strip() for x in scopes):
            raise r.fail(f"{path}.scopes", "must be a list of resource ids")
        rules.append(
            AlertRuleSpec(
                rule_id,
                {str(k): str(v) for k, v in props.items()},
                r.flag(data, "deployed", path, False),
                r.flag(data, "enabled", path, True),
                tuple(scopes),
            )
        )
    alerts: list[AlertSpec] = []
    for i, node in enumerate(r.items(root, "alerts", "(top level)")):
        path = f"alerts[{i}]"
        keys = {
            "id",
            "rule",
            "target",
            "monitorCondition",
            "firedDateTime",
            "resolvedDateTime",
            "alertState",
            "signalType",
            "monitorService",
            "context",
        }
        data = r.mapping(node, path, keys)
        alert_id = r.text(data, "id", path)
        match = _ALERT_ID.match(alert_id)
        if not match:
            raise r.fail(
                f"{path}.id", "must be /subscriptions/<id>/providers/Microsoft.AlertsManagement/alerts/<id>"
            )
        if match["sub"].lower() not in known:
            raise r.fail(f"{path}.id", f"subscription {match['sub']} is not declared")
        context = data.get("context") or {}
        if not isinstance(context, Mapping):
            raise r.fail(f"{path}.context", "must be a mapping (the alert context Azure records)")
        fired = r.text(data, "firedDateTime", path)
        if parse_time(fired) is None:
            raise r.fail(f"{path}.firedDateTime", f"{fired!r} is not an ISO 8601 time with a zone")
        alerts.append(
            AlertSpec(
                id=alert_id,
                rule=r.text(data, "rule", path),
                target=r.text(data, "target", path),
                monitor_condition=r.choice(data, "monitorCondition", path, "Fired", CONDITIONS),
                fired=fired,
                resolved=r.optional_text(data, "resolvedDateTime", path),
                state=r.choice(data, "alertState", path, "New", STATES),
                signal_type=r.optional_text(data, "signalType", path),
                monitor_service=r.optional_text(data, "monitorService", path),
                context=dict(context),
            )
        )
    return now, tuple(rules), tuple(alerts)


@dataclass
class _Alert:
    spec: AlertSpec
    condition: str
    state: str
    resolved: str | None
    comments: list[dict[str, str]] = field(default_factory=list)


class AlertingState:
    """The fleet's alerts and rules; alerts change state, rules are read only."""

    def __init__(self, rules: tuple[AlertRuleSpec, ...], alerts: tuple[AlertSpec, ...]) -> None:
        self.lock = threading.RLock()
        self.rules = {r.id.lower(): r for r in rules}
        self.alerts = {a.id.lower(): _Alert(a, a.monitor_condition, a.state, a.resolved) for a in alerts}

    def _alert(self, sub: str, guid: str) -> _Alert:
        alert = self.alerts.get(
            f"/subscriptions/{sub}/providers/microsoft.alertsmanagement/alerts/{guid}".lower()
        )
        if alert is None:
            raise ArmError(404, "ResourceNotFound", f"The alert '{guid}' could not be found.")
        return alert

    def alert_json(self, sub: str, guid: str) -> dict[str, Any]:
        with self.lock:
            alert = self._alert(sub, guid)
            spec = alert.spec
            target = spec.target.rstrip("/")
            parts = target.split("/")
            log = "scheduledqueryrules" in spec.rule.lower()
            activity = "activitylogalerts" in spec.rule.lower()
            essentials: dict[str, Any] = {
                "severity": "Sev2",
                "signalType": spec.signal_type
                or ("Log" if log else "Activity Log" if activity else "Metric"),
                "alertState": alert.state,
                "monitorCondition": alert.condition,
                "targetResource": target,
                "targetResourceName": parts[-1],
                "targetResourceGroup": parts[4] if len(parts) > 4 else "",
                "targetResourceType": "/".join(parts[6:8]) if len(parts) > 7 else "",
                "monitorService": spec.monitor_service
                or ("Log Analytics" if log else "ActivityLog Administrative" if activity else "Platform"),
                "alertRule": spec.rule,
                "sourceCreatedId": spec.id.rsplit("/", 1)[-1],
                "startDateTime": spec.fired,
                "lastModifiedDateTime": spec.fired,
                "lastModifiedUserName": "System",
            }
            if alert.resolved:
                essentials["monitorConditionResolvedDateTime"] = alert.resolved
            return {
                "id": spec.id,
                "type": "Microsoft.AlertsManagement/alerts",
                "name": spec.rule.rsplit("/", 1)[-1],
                "properties": {"essentials": essentials, "context": dict(spec.context)},
            }

    def change_state(self, sub: str, guid: str, new_state: str, comment: str | None) -> dict[str, Any]:
        wanted = next((s for s in STATES if s.lower() == (new_state or "").lower()), None)
        if wanted is None:
            raise ArmError(400, "InvalidAlertState", f"newState must be one of {', '.join(STATES)}")
        with self.lock:
            alert = self._alert(sub, guid)
            alert.state = wanted
            alert.comments.append({"state": wanted, "comments": comment or ""})
        return self.alert_json(sub, guid)

    def resolve(self, alert_id: str, at: str) -> None:
        """Azure resolves an alert when its condition clears (tests and the demo do it by hand)."""
        with self.lock:
            alert = self.alerts[alert_id.lower()]
            alert.condition, alert.resolved = "Resolved", at

    def record_context(self, alert_id: str, context: Mapping[str, Any]) -> None:
        """What Azure Monitor records as the alert's context (tests set it per case, like ``resolve``)."""
        with self.lock:
            alert = self.alerts[alert_id.lower()]
            alert.spec = replace(alert.spec, context=dict(context))

    def history(self, alert_id: str) -> list[dict[str, str]]:
        with self.lock:
            return list(self.alerts[alert_id.lower()].comments)

    def state_of(self, alert_id: str) -> str:
        with self.lock:
            return self.alerts[alert_id.lower()].state

    def rule_json(self, sub: str, rg: str, kind: str, name: str) -> dict[str, Any]:
        rule_id = f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Insights/{kind}/{name}"
        rule = self.rules.get(rule_id.lower())
        if rule is None or rule.kind.lower() != kind.lower():
            raise ArmError(
                404,
                "ResourceNotFound",
                f"The Resource 'Microsoft.Insights/{kind}/{name}' under resource group '{rg}' was not found.",
            )
        props = dict(rule.custom_properties)
        kind_l = rule.kind.lower()
        body: dict[str, Any] = {"enabled": rule.enabled, "scopes": list(rule.scopes)}
        if kind_l == "scheduledqueryrules":
            body["actions"] = {"actionGroups": [], "customProperties": props}
        elif kind_l == "metricalerts":
            body["actions"] = [{"actionGroupId": "", "webHookProperties": props}]
        else:
            body["actions"] = {"actionGroups": [{"actionGroupId": "", "webhookProperties": props}]}
        return {
            "id": rule.id,
            "name": rule.id.rsplit("/", 1)[-1],
            "type": f"Microsoft.Insights/{rule.kind}",
            "properties": body,
        }

    def deployed_rules(self) -> list[str]:
        return [r.id for r in self.rules.values() if r.deployed]


def wall_offset(now: str | None) -> float:
    """Seconds to add to real time so the fleet's clock starts at ``now``."""
    if not now:
        return 0.0
    start = parse_time(now)
    return (start - datetime.now(UTC)).total_seconds() if start else 0.0
