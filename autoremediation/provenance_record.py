"""Azure Monitor's record of an alert against the payload that claims it, and the signal routed from it.

See :mod:`autoremediation.provenance` for why an alert is confirmed at all. Pure: no I/O.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from functools import lru_cache

from .errors import SignalError
from .ports import AlertRecord, AlertRuleRecord
from .resources import VmRef, normalize
from .signals.alert_context import AlertContext, read_alert_context
from .signals.model import Signal
from .signals.refs import vm_of

PREFIX = "provenance:"
# Azure's record and the notification both carry the fired time; allow for rounding only.
FIRED_TOLERANCE = timedelta(seconds=5)

_ISO_TIME = re.compile(r"^(.*T\d{2}:\d{2}:\d{2})(\.\d+)?(Z|[+-]\d{2}:?\d{2})?$", re.IGNORECASE)


def parse_time(text: str | None) -> datetime | None:
    """An ISO 8601 time from a payload (``Z``, 7 fractional digits); None when absent or unreadable."""
    if not text:
        return None
    value = text.strip()
    match = _ISO_TIME.match(value)
    if not match:
        return None
    fraction = (match[2] or "")[:7]  # Azure writes 7 fractional digits: keep the dot and microseconds
    zone = match[3] or "Z"
    try:
        parsed = datetime.fromisoformat(match[1] + fraction + ("+00:00" if zone.upper() == "Z" else zone))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None


def _rule_name(rule_id: str) -> str:
    return rule_id.rstrip("/").rsplit("/", 1)[-1]


def _rule_keys(rule_id: str) -> tuple[str, str]:
    """A rule id's comparison key and its name in lower case (what ``check_record`` compares)."""
    return normalize(rule_id), _rule_name(rule_id).lower()


# An alert's fired time and its rule's id come back with every delivery, and a fleet has a few rules:
# what check_record works out of them is remembered for the texts seen last (only texts as short as real
# ones: a payload chooses them). datetimes and str tuples are immutable, so one may be shared.
_REMEMBERED_TEXT_MAX = 1024
_REMEMBERED = 4096
_parse_time_remembered = lru_cache(maxsize=_REMEMBERED)(parse_time)
_rule_keys_remembered = lru_cache(maxsize=_REMEMBERED)(_rule_keys)


def _claimed_time(text: str | None) -> datetime | None:
    if text is None or len(text) > _REMEMBERED_TEXT_MAX:
        return parse_time(text)
    return _parse_time_remembered(text)


def _keys_of_rule(rule_id: str) -> tuple[str, str]:
    return _rule_keys_remembered(rule_id) if len(rule_id) <= _REMEMBERED_TEXT_MAX else _rule_keys(rule_id)


def rule_key(rule_id: str) -> str:
    """``normalize(rule_id)``, remembered as check_record remembers it."""
    return _keys_of_rule(rule_id)[0]


def check_record(signal: Signal, record: AlertRecord, now: datetime, max_age: timedelta) -> str | None:
    """Why Azure's record does not confirm the payload (a ``provenance:`` reason), or None."""
    said = (signal.state or "").lower()
    if record.monitor_condition.strip().lower() != said:
        return (
            f"{PREFIX} Azure Monitor records alert {signal.id} as {record.monitor_condition or 'unknown'}, "
            f"the payload says {signal.state}"
        )
    claimed = _claimed_time(signal.fired_at)
    if claimed is None or record.fired_at is None:
        return f"{PREFIX} alert {signal.id}: no fired time to compare (payload {signal.fired_at!r})"
    if abs(claimed - record.fired_at) > FIRED_TOLERANCE:
        return (
            f"{PREFIX} alert {signal.id} fired at {record.fired_at.isoformat()} according to Azure Monitor, "
            f"the payload says {signal.fired_at}"
        )
    claimed_rule_id = str(signal.extra.get("alertRuleId") or "")
    rule_key, rule_name = _keys_of_rule(record.rule_id)
    if claimed_rule_id and _keys_of_rule(claimed_rule_id)[0] != rule_key:
        return (
            f"{PREFIX} alert {signal.id} comes from rule {record.rule_id}, "
            f"the payload names {claimed_rule_id}"
        )
    if (signal.rule or "").strip().lower() != rule_name:
        return (
            f"{PREFIX} alert {signal.id} comes from rule {record.rule_id}, the payload names {signal.rule!r}"
        )
    if said == "fired" and now - record.fired_at > max_age:
        minutes = int((now - record.fired_at).total_seconds() // 60)
        return (
            f"{PREFIX} alert {signal.id} fired at {record.fired_at.isoformat()}, {minutes} min ago: alerts "
            f"older than {int(max_age.total_seconds() // 60)} min "
            "(REMEDIATION_ALERT_MAX_AGE_MINUTES) are refused"
        )
    return None


def target_refusal(target: VmRef, record: AlertRecord | None) -> str | None:
    """Why a job may not act on ``target`` for this confirmed alert, or None."""
    if record is None:
        return None
    recorded = vm_of(record.target_resource)
    if recorded is not None and recorded == target:
        return None
    return (
        f"{PREFIX} {target.id} is not the target of alert {record.id}; Azure Monitor records "
        f"{record.target_resource or 'no target'}"
    )


# Alerts Management names the activity log services "ActivityLog Administrative"; the Common Alert
# Schema (and so routes.yaml) says "Activity Log - Administrative".
_ACTIVITY_LOG_SERVICE = re.compile(r"^ActivityLog\s+(?P<category>\w+)$", re.IGNORECASE)


def service_name(monitor_service: str) -> str:
    """Alerts Management's ``monitorService`` in the Common Alert Schema's ``monitoringService`` spelling."""
    text = monitor_service.strip()
    if text[:1] not in ("A", "a"):  # what the pattern can match starts so: most services need no match
        return text
    match = _ACTIVITY_LOG_SERVICE.match(text)
    return f"Activity Log - {match['category']}" if match else text


_BODY_EXTRA = ("alertRuleId", "originAlertId")


def recorded_signal(
    signal: Signal, record: AlertRecord, rule: AlertRuleRecord
) -> tuple[Signal, tuple[str, ...]]:
    """The signal to route, built from Azure's record of the alert and its rule, never from the body.

    The body keeps only what identifies it (state, times); the monitor service, signal type, query,
    metrics, dimensions, operation and targets are Azure's. Returns notes saying what Azure lacked.
    """
    target = record.target_resource
    notes: list[str] = []
    try:
        recorded = read_alert_context(record.context)
    except SignalError as error:
        notes.append(
            f"{PREFIX} Azure Monitor's context of alert {record.id} cannot be read ({error}): "
            "routed on its essentials only"
        )
        recorded = AlertContext()
    if not record.context:
        notes.append(
            f"{PREFIX} Azure Monitor records no alert context for {record.id}: routes that need a query, "
            "metric, dimension or operation do not match"
        )
    vm = vm_of(target)
    vm_key = vm.key if vm is not None else None  # VmRefs are equal when their keys are
    others = [t.id for t in signal.targets if t.key != vm_key]
    if others:
        notes.append(
            f"{PREFIX} the payload names {len(others)} VM(s) that are not the target of alert {record.id} "
            f"(Azure Monitor records {target or 'no target'}): ignored, e.g. {others[0]}"
        )
    # What the alert context says (the write's correlation id, caller, condition type, queries) is
    # Azure's; the body keeps only what identifies it (its rule id, compared above).
    extra = {k: v for k, v in signal.extra.items() if k in _BODY_EXTRA}
    extra.update(recorded.extra)
    # A detector starts from the resource Azure recorded as the alert's target (an activity-log
    # alert's NSG), never from one the body names.
    # One new Signal from the body's own fields and Azure's (Signal.of: this is per alert).
    # Every field said once, in the Signal's order (no copy of the body's fields to override); a test
    # holds the list to the Signal's fields.
    values = {
        "id": record.id or signal.id,
        "source": signal.source,
        "type": service_name(record.monitor_service) or "unknown",
        "state": signal.state,
        "targets": (vm,) if vm is not None else (),
        "resources": (target,) if target else (),
        "rule": signal.rule,
        "severity": signal.severity,
        "signal_type": (record.signal_type or "").strip() or None,
        "fired_at": signal.fired_at,
        "resolved_at": signal.resolved_at,
        "time": signal.time,
        "operation_name": recorded.operation,
        "resource_id": target if recorded.operation else None,
        "status": recorded.status,
        "query": recorded.query,
        "metrics": recorded.metrics,
        "dimensions": recorded.dimensions,
        "custom_properties": dict(rule.custom_properties),
        "manual": signal.manual,
        "validation_code": signal.validation_code,
        "description": signal.description,
        "extra": extra,
    }
    confirmed = Signal.of(values)
    return confirmed, tuple(notes)
