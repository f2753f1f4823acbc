"""Azure Monitor alerts in the Common Alert Schema -> Signal.

One parser serves every ``monitoringService``: ``essentials`` is common to all, and the alert
context is read by the shape it has rather than by the service it claims, because the shapes drift
(``signalType`` "ActivityLog" vs "Activity Log", ``eventSource`` as a name or a number, ...):

* ``condition.allOf[]``: metric alerts (static, dynamic) and Log Alerts V2 (``searchQuery``);
* ``SearchQuery`` / ``SearchResults``: the older Log Analytics and Application Insights log alerts;
* ``operationName``: activity log alerts (administrative, resource health, service health).

The context is read in :mod:`.alert_context`. :func:`read_alert_claim` reads a body only as far as
provenance needs before Azure's record of the alert replaces what the body says.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ..errors import SignalError
from ..resources import is_arm_id
from .alert_context import (
    affected_of,
    condition_of,
    conditions_in,
    dimensions_of,
    read_context,
)
from .alert_context import read_alert_context as read_alert_context  # where it was read before
from .model import Signal, State
from .reader import (
    Node,
    as_texts,
    kind_of,
    member,
    text_in,
    text_mapping,
)
from .refs import ResourceCollector

SCHEMA_ID = "azureMonitorCommonAlertSchema"
RESOURCE_ID_DIMENSIONS = ("_ResourceId", "ResourceId")
_RESOURCE_ID_KEYS = frozenset(n.lower() for n in RESOURCE_ID_DIMENSIONS)

_STATES: dict[str, State] = {"fired": "fired", "resolved": "resolved"}
_SEVERITIES = frozenset(f"Sev{n}" for n in range(5))
_SEVERITY_NUMBER = re.compile(r"^(?:sev)?\s*([0-4])$", re.IGNORECASE)


def is_alert(payload: Mapping[str, object]) -> bool:
    return "schemaId" in payload


def parse_alert(payload: Mapping[str, object]) -> Signal:
    """One Common Alert Schema payload as a Signal; raises SignalError if it is not one.

    One pass over the decoded dicts: a node (with its path) is made only where a value is wrong.
    """
    values, rest = _read_alert(payload)
    return Signal.of(rest.complete(values))


def read_alert_claim(payload: Mapping[str, object]) -> AlertClaim:
    """What an alert body claims, read as far as provenance needs it before Azure's record is read.

    Raises the SignalError :func:`parse_alert` raises, for the same payloads. ``AlertClaim.signal``
    is parse_alert's Signal; ``AlertClaim.claim`` leaves out what provenance replaces with Azure's
    record anyway (the context's routing fields, the body's custom properties), so a confirmed alert
    is never read twice.
    """
    values, rest = _read_alert(payload)
    return AlertClaim(Signal.of(values), rest)


class AlertClaim:
    """An alert body's claim (see :func:`read_alert_claim`).

    ``claim``: the Signal with what identifies the alert and what provenance compares or keeps of the
    body (id, source, state, times, rule, severity, description, monitoring service, signal type,
    operation, targets, resources, the body's ``alertRuleId`` / ``originAlertId``), but with no query,
    metrics, dimensions, status, custom properties or context extras: confirm or refuse it, never route
    or report it. ``signal()``: the whole body as :func:`parse_alert` reads it (worked out once).
    """

    __slots__ = ("_rest", "_signal", "claim")

    def __init__(self, claim: Signal, rest: _Unread) -> None:
        self.claim = claim
        self._rest = rest
        self._signal: Signal | None = None

    def signal(self) -> Signal:
        if self._signal is None:
            values = dict(vars(self.claim))  # the claim stays as it is
            values["extra"] = dict(values["extra"])
            self._signal = Signal.of(self._rest.complete(values))
        return self._signal


class _Unread:
    """What a body's Signal still needs after ``_read_alert``: its context's routing fields and its
    custom properties (what was read of the context already is not read again)."""

    __slots__ = ("affected", "conditions", "context", "data", "dimensions")

    def __init__(
        self,
        context: object,
        data: object,
        conditions: list[object],
        dimensions: list[dict[str, str]],
        affected: tuple[str, ...],
    ) -> None:
        self.context = context
        self.data = data
        self.conditions = conditions
        self.dimensions = dimensions
        self.affected = affected

    def complete(self, values: dict[str, Any]) -> dict[str, Any]:
        """``values`` (of ``_read_alert``, its ``extra`` a dict of its own) with the context's fields."""
        context = self.context
        read = read_context(context, self.conditions, self.dimensions, self.affected)
        custom = text_mapping(member(context, "properties"))
        custom.update(text_mapping(member(self.data, "customProperties")))
        values["status"] = read.status
        values["query"] = read.query
        values["metrics"] = read.metrics
        values["dimensions"] = read.dimensions
        values["custom_properties"] = custom
        values["extra"].update(read.extra)
        return values


def _read_alert(payload: Mapping[str, object]) -> tuple[dict[str, Any], _Unread]:
    """The fields of a body's Signal but its context's routing fields and its custom properties (status,
    query, metrics, dimensions, custom properties, the context's extras: left empty), and what reads
    them. Raises every SignalError parse_alert raises."""
    schema_id = text_in(payload, "schemaId")
    if schema_id is None or schema_id.lower() != _SCHEMA_ID_KEY:
        shown = repr(schema_id) if schema_id else f"({kind_of(member(payload, 'schemaId'))})"
        raise SignalError(
            f"alert: schemaId {shown} is not supported: enable the common alert schema "
            f"({SCHEMA_ID}) on the action group"
        )
    data = payload.get("data") if type(payload) is dict else None
    if type(data) is not dict:
        data = Node(payload, "", "alert")["data"].mapping(required=True)
    fields: Mapping[str, object] | None = data.get("essentials") if type(data) is dict else None
    if type(fields) is not dict:
        fields = _section(data, "essentials").mapping(required=True)
    assert fields is not None  # mapping(required=True) raises instead
    ctx = data.get("alertContext") if type(data) is dict else _MISSING
    if not (ctx is None or type(ctx) is dict):
        ctx = _section(data, "alertContext").section().value

    alert_id = _required(fields, "alertId")
    service = _required(fields, "monitoringService")
    state = _state(fields, service)
    fired_at = text_in(fields, "firedDateTime")
    resolved_at = text_in(fields, "resolvedDateTime")
    conditions = conditions_in(condition_of(ctx))  # the one error of a context

    collector = ResourceCollector()
    target_ids = as_texts(member(fields, "alertTargetIDs"))
    collector.add_all(target_ids)
    collector.add_all(as_texts(member(fields, "configurationItems")))  # add keeps the ARM ids only
    plain = ctx if type(ctx) is dict else None
    dimensions = dimensions_of(ctx, conditions, plain)
    for mapping in dimensions:
        for name, named in mapping.items():  # lookup_ci(mapping, *RESOURCE_ID_DIMENSIONS), said inline
            if name.lower() in _RESOURCE_ID_KEYS:
                collector.add(named)
    affected = affected_of(ctx, plain)
    collector.add_all(affected)
    operation = text_in(ctx, "operationName")
    resource_id: str | None = None
    if operation is not None:
        resource_id = _activity_resource(ctx, target_ids)
        collector.add(resource_id)

    extra: dict[str, Any] = {}
    for key in _BODY_EXTRA:
        value = text_in(fields, key)
        if value:
            extra[key] = value
    values = {
        "id": alert_id,
        "source": "alert",
        "type": service,
        "state": state,
        "targets": collector.targets,
        "resources": collector.resources,
        "rule": text_in(fields, "alertRule"),
        "severity": _severity(text_in(fields, "severity")),
        "signal_type": text_in(fields, "signalType"),
        "fired_at": fired_at,
        "resolved_at": resolved_at,
        "time": resolved_at if state == "resolved" and resolved_at else fired_at,
        "operation_name": operation,
        "resource_id": resource_id,
        "status": None,
        "query": None,
        "metrics": (),
        "dimensions": (),
        "custom_properties": {},
        "manual": None,
        "validation_code": None,
        "description": text_in(fields, "description"),
        "extra": extra,
    }
    return values, _Unread(ctx, data, conditions, dimensions, affected)


_SCHEMA_ID_KEY = SCHEMA_ID.lower()
_MISSING: Any = object()
_BODY_EXTRA = ("alertRuleId", "originAlertId")


def _at(value: object, *keys: str) -> Node:
    """The node of ``value`` found at ``keys`` of an alert, made only to name a wrong value in a message."""
    node = Node(None, "", "alert")
    for key in keys[:-1]:
        node = Node._under(node, key, None, True)
    return Node._under(node, keys[-1], value, True)


def _section(data: object, key: str) -> Node:
    return _at(data, "data")[key]


def _required(fields: Mapping[str, object], key: str) -> str:
    """``data.essentials.<key>`` as non-empty text; SignalError names what is wrong with it."""
    found = fields.get(key) if type(fields) is dict else None
    if type(found) is str:
        text = found.strip()
        if text:
            return text
    return _at(fields, "data", "essentials")[key].required_text()


def _state(fields: Mapping[str, object], service: str) -> State:
    """Fired or Resolved. Alerts that never resolve (budget and cost alerts, smart detector alerts,
    activity log alerts) may carry a null or no ``monitorCondition``: they fired. For any other
    service a null or absent condition is an error, said as it is ("is null" / "is missing")."""
    found = fields.get("monitorCondition") if type(fields) is dict else _MISSING
    if type(found) is str:
        state = _STATES.get(found.strip().lower())
        if state is not None:
            return state
    node = _at(fields, "data", "essentials")["monitorCondition"]
    if node.absent and _stateless(service):
        return "fired"
    text = node.required_text()
    state = _STATES.get(text.lower())
    if state is None:
        raise node.error(f"must be Fired or Resolved, not {text!r}")
    return state


# monitoringService values (compared without spaces, dashes and case) of alerts with no resolution.
_STATELESS_SERVICES = ("budget", "costalerts", "smartdetector", "activitylog")


def _stateless(service: str) -> bool:
    key = re.sub(r"[\s_-]", "", service).lower()
    return any(key.startswith(prefix) for prefix in _STATELESS_SERVICES)


def _severity(text: str | None) -> str | None:
    """``Sev0``..``Sev4``; a bare number (seen as 3 or "3") is given the ``Sev`` prefix."""
    if text is None or text in _SEVERITIES:
        return text
    match = _SEVERITY_NUMBER.match(text)
    return f"Sev{match[1]}" if match else text


def _activity_resource(context: object, target_ids: list[str]) -> str | None:
    """The resource an activity-log event is about, from the most specific field that names one."""
    candidates = [
        text_in(context, "resourceId"),
        text_in(member(context, "authorization"), "scope"),
        text_in(member(context, "properties"), "entity"),
        *target_ids,
    ]
    return next((c for c in candidates if c and is_arm_id(c)), None)
