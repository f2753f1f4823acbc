"""Azure Monitor alerts in the Common Alert Schema -> Signal.

One parser serves every ``monitoringService``: ``essentials`` is common to all, and the alert
context is read by the shape it has rather than by the service it claims, because the shapes drift
(``signalType`` "ActivityLog" vs "Activity Log", ``eventSource`` as a name or a number, ...):

* ``condition.allOf[]``: metric alerts (static, dynamic) and Log Alerts V2 (``searchQuery``);
* ``SearchQuery`` / ``SearchResults``: the older Log Analytics and Application Insights log alerts;
* ``operationName``: activity log alerts (administrative, resource health, service health).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from autoremediation.errors import SignalError

from ..resources import is_arm_id
from .model import Signal, State
from .reader import (
    Node,
    as_text,
    as_texts,
    kind_of,
    lookup_ci,
    member,
    members,
    name_value_pairs,
    scalar_text,
    text_in,
    text_mapping,
)
from .refs import ResourceCollector

SCHEMA_ID = "azureMonitorCommonAlertSchema"
RESOURCE_ID_DIMENSIONS = ("_ResourceId", "ResourceId")

_STATES: dict[str, State] = {"fired": "fired", "resolved": "resolved"}
_SEVERITIES = frozenset(f"Sev{n}" for n in range(5))
_SEVERITY_NUMBER = re.compile(r"^(?:sev)?\s*([0-4])$", re.IGNORECASE)


def is_alert(payload: Mapping[str, object]) -> bool:
    return "schemaId" in payload


def parse_alert(payload: Mapping[str, object]) -> Signal:
    """One Common Alert Schema payload as a Signal; raises SignalError if it is not one.

    One pass over the decoded dicts: a node (with its path) is made only where a value is wrong.
    """
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

    alert_id = _required(fields, "alertId")
    service = _required(fields, "monitoringService")
    state = _state(fields, service)
    fired_at = text_in(fields, "firedDateTime")
    resolved_at = text_in(fields, "resolvedDateTime")

    collector = ResourceCollector()
    target_ids = as_texts(member(fields, "alertTargetIDs"))
    collector.add_all(target_ids)
    collector.add_all([c for c in as_texts(member(fields, "configurationItems")) if is_arm_id(c)])

    read = _read_context(context)
    for mapping in read.dimensions:
        collector.add_all(lookup_ci(mapping, *RESOURCE_ID_DIMENSIONS))
    collector.add_all(read.affected)

    resource_id: str | None = None
    if read.operation is not None:
        resource_id = _activity_resource(context, target_ids)
        collector.add(resource_id)

    custom = text_mapping(member(context, "properties"))
    custom.update(text_mapping(member(data, "customProperties")))

    extra: dict[str, Any] = {}
    for key in _BODY_EXTRA:
        value = text_in(fields, key)
        if value:
            extra[key] = value
    extra.update(read.extra)

    return Signal(
        id=alert_id,
        source="alert",
        type=service,
        state=state,
        targets=collector.targets,
        resources=collector.resources,
        rule=text_in(fields, "alertRule"),
        severity=_severity(text_in(fields, "severity")),
        signal_type=text_in(fields, "signalType"),
        fired_at=fired_at,
        resolved_at=resolved_at,
        time=resolved_at if state == "resolved" and resolved_at else fired_at,
        operation_name=read.operation,
        resource_id=resource_id,
        status=read.status,
        query=read.query,
        metrics=read.metrics,
        dimensions=read.dimensions,
        custom_properties=custom,
        description=text_in(fields, "description"),
        extra=extra,
    )


_SCHEMA_ID_KEY = SCHEMA_ID.lower()
_MISSING: Any = object()
_BODY_EXTRA = ("alertRuleId", "originAlertId")
_CONTEXT_EXTRA = ("conditionType", "caller", "correlationId", "eventTimestamp", "subStatus")


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


@dataclass(frozen=True)
class AlertContext:
    """What an ``alertContext`` says that routing reads, the same for a payload and for Azure's record."""

    dimensions: tuple[dict[str, str], ...] = ()  # one mapping per condition / search-result row
    affected: tuple[str, ...] = ()  # AffectedConfigurationItems that are ARM ids
    metrics: tuple[str, ...] = ()
    query: str | None = None
    operation: str | None = None  # activity log alerts
    status: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # conditionType, caller, correlationId, ...


def read_alert_context(context: object) -> AlertContext:
    """An ``alertContext`` read as :func:`parse_alert` reads it (SignalError names the bad section).

    Used for Azure Monitor's record of an alert, whose context provenance routes instead of the body's.
    """
    if not (context is None or type(context) is dict):
        context = (
            Node({"data": {"alertContext": context}}, "", "alert")["data"]["alertContext"].section().value
        )
    return _read_context(context)


def _read_context(ctx: object) -> AlertContext:
    """An alert context (an object or None, already checked): only the shape of ``condition`` is an
    error; every other field of a bad shape is read as absent."""
    plain = ctx if type(ctx) is dict else None  # the usual case, read without a call per key
    condition = member(ctx, "condition")
    if condition is not None and type(condition) is not dict and not isinstance(condition, Mapping):
        raise SignalError(f"alert: data.alertContext.condition must be an object, not {kind_of(condition)}")
    conditions = members(member(condition, "allOf"))
    dimensions = [name_value_pairs(member(c, "dimensions")) for c in conditions]
    # A plain object without the older log alerts' keys has none of their dimensions: no need to look.
    if ctx is not None and (plain is None or "Dimensions" in plain or "SearchResults" in plain):
        dimensions += _legacy_log_dimensions(ctx)
    affected = tuple(c for c in as_texts(member(ctx, "AffectedConfigurationItems")) if is_arm_id(c))

    metrics: list[str] = []
    queries: list[str] = []
    for c in conditions:
        metric = text_in(c, "metricName")
        if metric and metric not in metrics:
            metrics.append(metric)
        query = text_in(c, "searchQuery")
        if query and query not in queries:
            queries.append(query)
    query = text_in(ctx, "SearchQuery")
    if query and query not in queries:
        queries.append(query)

    operation = text_in(ctx, "operationName")
    extra: dict[str, Any] = {}
    for key in _CONTEXT_EXTRA:
        if plain is not None:  # text_in, said here for the many keys a context does not have
            found = plain.get(key)
            if found is None:
                continue
            value = found.strip() if type(found) is str else as_text(found)
        else:
            value = text_in(ctx, key)
        if value:
            extra[key] = value
    if len(queries) > 1:
        extra["queries"] = queries
    return AlertContext(
        dimensions=tuple(dimensions),
        affected=affected,
        metrics=tuple(metrics),
        query=queries[0] if queries else None,
        operation=operation,
        status=text_in(ctx, "status") if operation is not None else None,
        extra=extra,
    )


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


def _legacy_log_dimensions(context: object) -> list[dict[str, str]]:
    """Older log alerts: their ``Dimensions``, then one mapping per search-result row."""
    result: list[dict[str, str]] = []
    dimensions = name_value_pairs(member(context, "Dimensions"))
    if dimensions:
        result.append(dimensions)
    for table in members(member(member(context, "SearchResults"), "tables")):
        columns = [text_in(c, "name") or "" for c in members(member(table, "columns"))]
        for row in members(member(table, "rows")):
            if not isinstance(row, list | tuple):
                continue
            mapping = {
                name: text
                for name, cell in zip(columns, row, strict=False)
                if name and (text := scalar_text(cell)) is not None
            }
            if mapping:
                result.append(mapping)
    return result
