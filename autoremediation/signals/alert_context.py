"""An alert's ``alertContext`` read as routing reads it, for a payload and for Azure's record of it.

The context is read by the shape it has rather than by the service it claims (see
:mod:`autoremediation.signals.alerts`): ``condition.allOf[]`` (metric alerts, Log Alerts V2),
``SearchQuery`` / ``SearchResults`` / ``Dimensions`` (older log alerts), ``operationName`` (activity
log alerts), ``AffectedConfigurationItems``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import SignalError
from ..frozen import build
from ..resources import is_arm_id
from .reader import (
    Node,
    as_text,
    as_texts,
    kind_of,
    member,
    members,
    name_value_pairs,
    pairs_of_list,
    scalar_text,
    text_in,
)

_CONTEXT_EXTRA = ("conditionType", "caller", "correlationId", "eventTimestamp", "subStatus")


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
    return read_context(context)


def condition_of(ctx: object) -> object:
    """``alertContext.condition``: an object or absent; SignalError for any other shape."""
    condition = member(ctx, "condition")
    if condition is not None and type(condition) is not dict and not isinstance(condition, Mapping):
        raise SignalError(f"alert: data.alertContext.condition must be an object, not {kind_of(condition)}")
    return condition


def conditions_in(condition: object) -> list[object]:
    all_of = condition.get("allOf") if type(condition) is dict else member(condition, "allOf")
    return all_of if type(all_of) is list else members(all_of)


def _has_legacy_dimensions(ctx: object, plain: dict[str, object] | None) -> bool:
    # A plain object without the older log alerts' keys has none of their dimensions: no need to look.
    return ctx is not None and (plain is None or "Dimensions" in plain or "SearchResults" in plain)


def affected_of(ctx: object, plain: dict[str, object] | None) -> tuple[str, ...]:
    if plain is not None and "AffectedConfigurationItems" not in plain:
        return ()
    return tuple(c for c in as_texts(member(ctx, "AffectedConfigurationItems")) if is_arm_id(c))


def dimensions_of(
    ctx: object, conditions: list[object], plain: dict[str, object] | None
) -> list[dict[str, str]]:
    """One mapping per condition (in their order), then the older log alerts' dimensions and rows."""
    dimensions: list[dict[str, str]] = []
    for c in conditions:
        dims = c.get("dimensions") if type(c) is dict else member(c, "dimensions")
        dimensions.append(pairs_of_list(dims) if type(dims) is list else name_value_pairs(dims))
    if _has_legacy_dimensions(ctx, plain):
        dimensions += legacy_log_dimensions(ctx)
    return dimensions


def read_context(
    ctx: object,
    conditions: list[object] | None = None,
    dimensions: list[dict[str, str]] | None = None,
    affected: tuple[str, ...] | None = None,
) -> AlertContext:
    """An alert context (an object or None, already checked): only the shape of ``condition`` is an
    error; every other field of a bad shape is read as absent. ``conditions``, ``dimensions``,
    ``affected``: ``conditions_in(condition_of(ctx))``, ``dimensions_of`` and ``affected_of`` this
    context, when read already (all three)."""
    plain = ctx if type(ctx) is dict else None  # the usual case, read without a call per key
    if conditions is None or dimensions is None or affected is None:
        conditions = conditions_in(condition_of(ctx))
        dimensions = dimensions_of(ctx, conditions, plain)
        affected = affected_of(ctx, plain)
    metrics: list[str] = []
    queries: list[str] = []
    for c in conditions:  # each list keeps the order of the conditions
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
    return build(
        AlertContext,
        {
            "dimensions": tuple(dimensions),
            "affected": affected,
            "metrics": tuple(metrics),
            "query": queries[0] if queries else None,
            "operation": operation,
            "status": text_in(ctx, "status") if operation is not None else None,
            "extra": extra,
        },
    )


def legacy_log_dimensions(context: object) -> list[dict[str, str]]:
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
