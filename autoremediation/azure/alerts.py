"""``ports.Alerts`` on ``azure-mgmt-alertsmanagement`` (alerts) and the same ARM pipeline (alert rules).

Alerts are read with ``alerts.get_by_id`` and changed with ``alerts.change_state`` (Alerts Management
API 2019-05-05-preview, which is what azure-mgmt-alertsmanagement 1.0.1 speaks). Alert rules have no
small SDK of their own here (``azure-mgmt-monitor`` is large and cold-starts slowly), so the rule
resource is read with a plain ARM GET through the alerts client's own pipeline: same credential, same
base_url, same retry and throttling policies. Custom properties live in a different place per kind:

* scheduled query rules: ``properties.actions.customProperties``;
* metric alerts: ``properties.actions[].webHookProperties``;
* activity log alerts: ``properties.actions.actionGroups[].webhookProperties``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from ..errors import InvalidInput
from ..ports import AlertRecord, AlertRuleRecord
from ..settings import Settings
from . import clients
from .calls import Retrier

_ALERT_ID = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/providers/Microsoft\.AlertsManagement/alerts/(?P<id>[^/]+)/?$",
    re.IGNORECASE,
)
_RULE_ID = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/[^/]+/providers/Microsoft\.Insights/"
    r"(?P<kind>scheduledQueryRules|metricAlerts|activityLogAlerts)/[^/]+/?$",
    re.IGNORECASE,
)
RULE_API_VERSIONS = {
    "scheduledqueryrules": "2023-12-01",
    "metricalerts": "2018-03-01",
    "activitylogalerts": "2020-10-01",
}


def split_alert_id(alert_id: str) -> tuple[str, str]:
    """(subscription, alert guid) of an ``essentials.alertId``; InvalidInput for anything else."""
    match = _ALERT_ID.match((alert_id or "").strip())
    if not match:
        raise InvalidInput(f"{alert_id!r} is not an Alerts Management alert id")
    return match["sub"], match["id"]


def _utc(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _texts(mapping: Any) -> dict[str, str]:
    if not isinstance(mapping, Mapping):
        return {}
    return {str(k): str(v) for k, v in mapping.items() if v is not None and not isinstance(v, dict | list)}


def rule_custom_properties(rule: Mapping[str, Any]) -> dict[str, str]:
    """The custom properties a rule resource sends with its notifications (first action group wins)."""
    props = rule.get("properties") or {}
    actions = props.get("actions")
    found: dict[str, str] = {}
    if isinstance(actions, Mapping):  # scheduled query rules, activity log alerts
        found.update(_texts(actions.get("customProperties")))
        groups = actions.get("actionGroups") or []
        for group in groups if isinstance(groups, list) else []:
            if isinstance(group, Mapping):
                for key, value in _texts(group.get("webhookProperties")).items():
                    found.setdefault(key, value)
    elif isinstance(actions, list):  # metric alerts
        for action in actions:
            if isinstance(action, Mapping):
                for key, value in _texts(action.get("webHookProperties")).items():
                    found.setdefault(key, value)
    return found


def _enabled(value: Any) -> bool:
    return not (value is False or (isinstance(value, str) and value.strip().lower() == "false"))


def rule_scopes(props: Any) -> tuple[str, ...]:
    """``properties.scopes`` of a rule resource (every kind has it): the resources the rule watches."""
    scopes = props.get("scopes") if isinstance(props, Mapping) else None
    if not isinstance(scopes, list):
        return ()
    return tuple(str(s) for s in scopes if isinstance(s, str) and s.strip())


class AzureAlerts:
    """Alerts Management reads and state changes, alert-rule reads; bounded retries like every adapter."""

    def __init__(
        self,
        settings: Settings,
        *,
        retrier: Retrier | None = None,
        client_for: Callable[[str], Any] | None = None,
    ) -> None:
        self.settings = settings
        self.retrier = retrier or Retrier()
        self._client_for = client_for or (lambda sub: clients.alerts_client(settings, sub))

    def get_alert(self, alert_id: str) -> AlertRecord:
        subscription, guid = split_alert_id(alert_id)
        client = self._client_for(subscription)
        alert = self.retrier.call(f"read alert {guid}", lambda: client.alerts.get_by_id(guid))
        essentials = alert.properties.essentials if alert.properties is not None else None
        context = alert.properties.context if alert.properties is not None else None
        if essentials is None:
            return AlertRecord(
                id=str(alert.id or alert_id), rule_id="", target_resource="", monitor_condition=""
            )
        return AlertRecord(
            id=str(alert.id or alert_id),
            rule_id=str(essentials.alert_rule or ""),
            target_resource=str(essentials.target_resource or ""),
            monitor_condition=str(essentials.monitor_condition or ""),
            alert_state=str(essentials.alert_state or ""),
            fired_at=_utc(essentials.start_date_time),
            resolved_at=_utc(essentials.monitor_condition_resolved_date_time),
            monitor_service=str(essentials.monitor_service or ""),
            signal_type=str(essentials.signal_type or ""),
            context=dict(context) if isinstance(context, Mapping) else {},
        )

    def get_rule(self, rule_id: str) -> AlertRuleRecord:
        from azure.core.exceptions import HttpResponseError
        from azure.core.rest import HttpRequest

        match = _RULE_ID.match((rule_id or "").strip())
        if not match:
            raise InvalidInput(f"{rule_id!r} is not a scheduled query, metric or activity log alert rule id")
        client = self._client_for(match["sub"])
        version = RULE_API_VERSIONS[match["kind"].lower()]
        request = HttpRequest("GET", f"{rule_id.strip().rstrip('/')}?api-version={version}")

        def read() -> Any:
            # The generated client's documented escape hatch: a request through its own pipeline.
            response = client._send_request(request)
            if response.status_code >= 400:
                raise HttpResponseError(response=response)
            return response.json()

        body = self.retrier.call(f"read alert rule {rule_id.rsplit('/', 1)[-1]}", read)
        props = body.get("properties") or {} if isinstance(body, Mapping) else {}
        return AlertRuleRecord(
            id=str(body.get("id") or rule_id) if isinstance(body, Mapping) else rule_id,
            custom_properties=rule_custom_properties(body if isinstance(body, Mapping) else {}),
            enabled=_enabled(props.get("enabled", True)) if isinstance(props, Mapping) else True,
            scopes=rule_scopes(props),
        )

    def change_state(self, alert_id: str, new_state: str, comment: str) -> None:
        from azure.mgmt.alertsmanagement.models import Comments

        subscription, guid = split_alert_id(alert_id)
        client = self._client_for(subscription)
        # Setting a state is idempotent: a retry after a dropped connection changes nothing more.
        self.retrier.call(
            f"change state of alert {guid}",
            lambda: client.alerts.change_state(guid, new_state, comment=Comments(comments=comment)),
        )
