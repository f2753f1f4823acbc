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
    AlertContext,
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
    body = _read_body(payload)
    read = read_context(body.context)
    collector = body.collector()
    for mapping in read.dimensions:
        _add_resource_dimensions(collector, mapping)
    collector.add_all(read.affected)
    resource_id = body.activity_resource(collector, read.operation)
    return Signal.of(_with_context(body.values(collector, resource_id, read.operation), body, read))


def read_alert_claim(payload: Mapping[str, object]) -> AlertClaim:
    """What an alert body claims, read as far as provenance needs it before Azure's record is read.

    Raises the SignalError :func:`parse_alert` raises, for the same payloads. ``AlertClaim.signal``
    is parse_alert's Signal; ``AlertClaim.claim`` leaves out what provenance replaces with Azure's
    record anyway (the context's routing fields, the body's custom properties), so a confirmed alert
    is never read twice.
    """
    body = _read_body(payload)
    ctx = body.context
    condition = condition_of(ctx)  # the one error of the context, raised where parse_alert raises it
    collector = body.collector()
    plain = ctx if type(ctx) is dict else None
    dimensions = dimensions_of(ctx, conditions_in(condition), plain)
    for mapping in dimensions:
        _add_resource_dimensions(collector, mapping)
    collector.add_all(affected_of(ctx, plain))
    operation = text_in(ctx, "operationName")
    resource_id = body.activity_resource(collector, operation)
    claim = Signal.of(body.values(collector, resource_id, operation))
    return AlertClaim(claim, body, dimensions)


class AlertClaim:
    """An alert body's claim (see :func:`read_alert_claim`).

    ``claim``: the Signal with what identifies the alert and what provenance compares or keeps of the
    body (id, source, state, times, rule, severity, description, monitoring service, signal type,
    operation, targets, resources, the body's ``alertRuleId`` / ``originAlertId``), but with no query,
    metrics, dimensions, status, custom properties or context extras: confirm or refuse it, never route
    or report it. ``signal()``: the whole body as :func:`parse_alert` reads it (worked out once).
    """

    __slots__ = ("_body", "_dimensions", "_signal", "claim")

    def __init__(self, claim: Signal, body: _Body, dimensions: list[dict[str, str]]) -> None:
        self.claim = claim
        self._body = body
        self._dimensions = dimensions  # read already for their resource ids: not read again
        self._signal: Signal | None = None

    def signal(self) -> Signal:
        if self._signal is None:
            read = read_context(self._body.context, self._dimensions)
            self._signal = Signal.of(_with_context(dict(vars(self.claim)), self._body, read))
        return self._signal


class _Body:
    """An alert body's essentials, read and checked in parse_alert's order, and its context object."""

    __slots__ = (
        "alert_id",
        "context",
        "data",
        "fields",
        "fired_at",
        "resolved_at",
        "service",
        "state",
        "targets",
    )

    def __init__(self, payload: Mapping[str, object]) -> None:
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
        context = data.get("alertContext") if type(data) is dict else _MISSING
        if not (context is None or type(context) is dict):
            context = _section(data, "alertContext").section().value
        self.data, self.fields, self.context = data, fields, context
        self.alert_id = _required(fields, "alertId")
        self.service = _required(fields, "monitoringService")
        self.state = _state(fields, self.service)
        self.fired_at = text_in(fields, "firedDateTime")
        self.resolved_at = text_in(fields, "resolvedDateTime")
        self.targets = as_texts(member(fields, "alertTargetIDs"))

    def collector(self) -> ResourceCollector:
        """The ids of the essentials; the context's are added after them."""
        collector = ResourceCollector()
        collector.add_all(self.targets)
        collector.add_all(as_texts(member(self.fields, "configurationItems")))  # add keeps the ARM ids only
        return collector

    def activity_resource(self, collector: ResourceCollector, operation: str | None) -> str | None:
        """An activity log alert's resource (added to the collector, after the context's ids)."""
        if operation is None:
            return None
        resource_id = _activity_resource(self.context, self.targets)
        collector.add(resource_id)
        return resource_id

    def values(
        self, collector: ResourceCollector, resource_id: str | None, operation: str | None
    ) -> dict[str, Any]:
        """Every field of this body's Signal but what its context says beyond ids and operation (status,
        query, metrics, dimensions, custom properties, the context's extras: see ``_with_context``)."""
        fields, state = self.fields, self.state
        extra: dict[str, Any] = {}
        for key in _BODY_EXTRA:
            value = text_in(fields, key)
            if value:
                extra[key] = value
        fired_at, resolved_at = self.fired_at, self.resolved_at
        return {
            "id": self.alert_id,
            "source": "alert",
            "type": self.service,
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


def _with_context(values: dict[str, Any], body: _Body, read: AlertContext) -> dict[str, Any]:
    """``values`` (of ``_Body.values``) completed with what the body's context says."""
    custom = text_mapping(member(body.context, "properties"))
    custom.update(text_mapping(member(body.data, "customProperties")))
    extra = dict(values["extra"])  # the claim's own dict stays as it is
    extra.update(read.extra)
    values["status"] = read.status
    values["query"] = read.query
    values["metrics"] = read.metrics
    values["dimensions"] = read.dimensions
    values["custom_properties"] = custom
    values["extra"] = extra
    return values


def _read_body(payload: Mapping[str, object]) -> _Body:
    return _Body(payload)


def _add_resource_dimensions(collector: ResourceCollector, mapping: Mapping[str, str]) -> None:
    for name, named in mapping.items():  # lookup_ci(mapping, *RESOURCE_ID_DIMENSIONS), said inline
        if name.lower() in _RESOURCE_ID_KEYS:
            collector.add(named)


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
