"""Routes compiled once per (routes, catalog): what :func:`autoremediation.routing.route_signal` uses.

Each route's ``match`` is worked out once (texts lowered, lists made sets), the routes are grouped by the
signal source they can match, and the catalog facts routing asks for every signal (the remediation of a
condition, whether a remediation takes a secret, which route an override borrows from) are looked up
once. The precedence and the results are those :mod:`autoremediation.routing` documents.
"""

from __future__ import annotations

import fnmatch
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .catalog import ALERT, OPERATOR, Catalog, Remediation
from .frozen import build
from .resources import VmRef, normalize
from .route_model import (
    MANUAL_ROUTE,
    OVERRIDE_ROUTE,
    RESOURCE_ID_DIMENSIONS,
    ROUTE_LITERAL,
    Finding,
    Route,
    Routing,
    as_list,
    lower_keys,
    value_text,
)
from .signals.model import Signal

_MISSING: Any = object()


class RouteMatcher:
    """One route's ``match`` worked out once: the texts lowered, the lists made sets.

    The test is the one the file documents (every field holds), without redoing that work per signal.
    """

    __slots__ = (
        "customs",
        "metrics",
        "operations",
        "queries",
        "route",
        "rules",
        "signal_types",
        "source",
        "types",
    )

    def __init__(self, route: Route) -> None:
        m = route.match
        self.route = route
        self.source = m.get("source", _MISSING)
        self.types = _wanted(m, "type")
        self.signal_types = _wanted(m, "signalType")
        self.operations = _wanted(m, "operationName")
        self.rules = tuple(g.lower() for g in as_list(m["rule"])) if "rule" in m else None
        queries = m.get("queryContains")
        self.queries = tuple(p.lower() for p in as_list(queries)) if "queryContains" in m else None
        self.metrics = frozenset(n.lower() for n in as_list(m["metric"])) if "metric" in m else None
        self.customs = (
            tuple((k.lower(), str(v).strip().lower()) for k, v in m["customProperties"].items())
            if "customProperties" in m
            else None
        )

    def matches(self, signal: Signal, props: Mapping[str, Any]) -> bool:
        """Every field but ``source`` (see ``RouteTable.matchers``); ``props``: the signal's custom
        properties with lower-case keys."""
        if self.types is not None and not _one_of(self.types, signal.type):
            return False
        if self.signal_types is not None and not _one_of(self.signal_types, signal.signal_type):
            return False
        if self.operations is not None and not _one_of(self.operations, signal.operation_name):
            return False
        if self.rules is not None:
            rule = (signal.rule or "").lower()
            if not signal.rule or not any(fnmatch.fnmatchcase(rule, g) for g in self.rules):
                return False
        if self.queries is not None:
            if not signal.query:
                return False
            query = signal.query.lower()
            for part in self.queries:  # any part in the query
                if part in query:
                    break
            else:
                return False
        if self.metrics is not None:
            wanted = self.metrics
            for metric in signal.metrics:  # any metric wanted
                if metric.lower() in wanted:
                    break
            else:
                return False
        if self.customs is not None:
            for key, value in self.customs:
                if str(props.get(key, "")).strip().lower() != value:
                    return False
        return True


def _wanted(match: Mapping[str, Any], key: str) -> frozenset[str] | None:
    return frozenset(w.strip().lower() for w in as_list(match[key])) if key in match else None


def _one_of(wanted: frozenset[str], actual: str | None) -> bool:
    return actual is not None and actual.strip().lower() in wanted


class ParameterSource:
    """Where one route parameter's value comes from, worked out once (see ``_values_for``)."""

    __slots__ = ("custom", "dimensions", "literal", "name")

    def __init__(self, name: str, source: Mapping[str, Any]) -> None:
        self.name = name
        self.dimensions = tuple(d.lower() for d in as_list(source.get("dimensions")))
        self.custom = str(source["customProperty"]).lower() if "customProperty" in source else None
        self.literal = source.get("value", _MISSING)


class RouteTable:
    """Routes and catalog facts worked out once per (routes, catalog): the routes a signal of each
    source may match, in file order; the remediation for each condition; which remediations take a
    secret; the route an override borrows from; each route's parameter sources."""

    def __init__(self, routes: Sequence[Route], catalog: Catalog) -> None:
        self.routes = tuple(routes)
        self.catalog = catalog
        self._matchers = tuple(RouteMatcher(r) for r in self.routes)
        self._by_source: dict[str, tuple[RouteMatcher, ...]] = {}
        self._for_condition: dict[str, Remediation] = {}
        self._secret = {
            i: any(p.secret for p in r.parameters.values()) for i, r in catalog.remediations.items()
        }
        self._templates: dict[tuple[str | None, str], Route] = {}
        for route in self.routes:
            self._templates.setdefault((route.remediation, route.condition), route)
        self._sources = {
            id(r): (r, tuple(ParameterSource(n, v) for n, v in r.parameters.items())) for r in self.routes
        }
        self._remediations: dict[int, tuple[Route, Remediation | None]] = {}
        self._declared_of: dict[str, tuple[Remediation, tuple[tuple[str, str], ...]]] = {}

    def matchers(self, source: str) -> tuple[RouteMatcher, ...]:
        """The routes a signal from ``source`` may match, in file order."""
        found = self._by_source.get(source)
        if found is None:
            found = tuple(m for m in self._matchers if m.source is _MISSING or m.source == source)
            self._by_source[source] = found
        return found

    def for_condition(self, condition: str) -> Remediation | None:
        found = self._for_condition.get(condition)
        if found is None:
            found = self.catalog.for_condition(condition)
            if found is not None:  # only the catalog's conditions are kept: a bounded set
                self._for_condition[condition] = found
        return found

    def _remediation_of(self, route: Route) -> Remediation | None:
        """The remediation a route names, else the catalog's for its condition (looked up once for a
        route of this table)."""
        known = self._remediations.get(id(route))
        if known is not None and known[0] is route:
            return known[1]
        found = self.catalog.remediations.get(route.remediation or "") or self.for_condition(route.condition)
        if id(route) in self._sources and self._sources[id(route)][0] is route:  # one of this table's
            self._remediations[id(route)] = (route, found)
        return found

    def parameter_sources(self, route: Route) -> tuple[ParameterSource, ...]:
        """The parameter sources of a route of this table (worked out once), or of any other route (an
        override made for one signal: worked out for it)."""
        entry = self._sources.get(id(route))
        if entry is not None and entry[0] is route:
            return entry[1]
        return tuple(ParameterSource(n, s) for n, s in route.parameters.items())

    def route(self, signal: Signal) -> Routing:
        """Route one signal. Never raises for a well-formed signal: what cannot be done is a note."""
        catalog = self.catalog
        if signal.validation_code is not None:  # signal.is_validation
            return _routing(signal, notes=("Event Grid subscription validation: answered, never routed",))
        if signal.manual is not None:
            remediation = catalog.get(signal.manual.remediation)  # unknown -> UnknownRemediation (rejected)
            given = signal.manual.parameters
            findings = tuple(
                build(
                    Finding,
                    {
                        "signal": signal,
                        "condition": remediation.conditions[0],
                        "remediation": remediation.id,
                        "target": target,
                        "parameters": dict(given),
                        "route": MANUAL_ROUTE,
                        "evidence": {},
                        "origins": dict.fromkeys(given, OPERATOR),
                    },
                )
                for target in signal.targets
            )
            return _routing(signal, findings=findings)

        props = lower_keys(signal.custom_properties) if signal.custom_properties else {}
        override = self._override(props) if props else None
        if isinstance(override, str):
            return _routing(signal, notes=(override,))
        route = override
        if route is None:
            for matcher in self.matchers(signal.source):  # the first route whose match holds
                if matcher.matches(signal, props):
                    route = matcher.route
                    break
        if route is None:
            return _routing(signal, notes=(f"no route matches this {signal.source} ({signal.type})",))
        if route.detector:
            return _routing(signal, route=route, detector=route.detector)
        if not signal.targets:
            return _routing(
                signal, route=route, notes=(f"route {route.name}: the signal names no virtual machine",)
            )
        found = self._remediation_of(route)
        if found is not None and self._secret[found.id]:
            # A secret (e.g. an upload SAS URL) must come from an authenticated operator, never from an
            # alert payload whose custom properties anyone who can edit an alert rule controls.
            return _routing(
                signal,
                route=route,
                notes=(f"{found.id} takes secret parameters: only an operator request can start it",),
            )
        if found is None:
            return _routing(
                signal, route=route, notes=(f"route {route.name}: no remediation for {route.condition}",)
            )
        sources = self.parameter_sources(route)
        rows = [lower_keys(row) for row in signal.dimensions]
        condition, remediation_id, route_name = route.condition, found.id, route.name
        declared = self._declared(found)
        made: list[Finding] = []
        for target in signal.targets:
            for values, origins in _values_for(props, _target_rows(rows, target), sources, declared):
                finding = {
                    "signal": signal,
                    "condition": condition,
                    "remediation": remediation_id,
                    "target": target,
                    "parameters": values,
                    "route": route_name,
                    "evidence": {},
                    "origins": origins,
                }
                made.append(build(Finding, finding))
        return _routing(signal, route=route, findings=tuple(made))

    def _declared(self, remediation: Remediation) -> tuple[tuple[str, str], ...]:
        """A remediation's parameters, each with its name in lower case (worked out once)."""
        found = self._declared_of.get(remediation.id)
        if found is None or found[0] is not remediation:
            found = (remediation, tuple((name, name.lower()) for name in remediation.parameters))
            self._declared_of[remediation.id] = found
        return found[1]

    def _override(self, props: Mapping[str, Any]) -> Route | str | None:
        """A route made from the alert's own ``condition`` / ``remediation`` custom properties, if any.

        Returns a note (str) when the properties name something the catalog does not have.
        """
        condition = str(props.get("condition") or "").strip()
        remediation_id = str(props.get("remediation") or "").strip()
        if not condition and not remediation_id:
            return None
        catalog = self.catalog
        if remediation_id:
            if remediation_id not in catalog.remediations:
                return f"custom property remediation={remediation_id!r} is not in the catalog"
            remediation = catalog.remediations[remediation_id]
            if condition and condition not in remediation.conditions:
                return f"remediation {remediation_id!r} does not handle condition {condition!r}"
            condition = condition or remediation.conditions[0]
        else:
            found = self.for_condition(condition)
            if found is None:
                return f"custom property condition={condition!r}: no remediation in the catalog handles it"
            remediation = found
        # Borrow the parameter mapping (and detector) of a shipped route for the same remediation.
        template = self._templates.get((remediation.id, condition))
        return Route(
            name=OVERRIDE_ROUTE,
            match={},
            condition=condition,
            remediation=remediation.id,
            detector=template.detector if template else None,
            parameters=template.parameters if template else {},
        )


def _routing(
    signal: Signal,
    *,
    route: Route | None = None,
    findings: tuple[Finding, ...] = (),
    detector: str | None = None,
    notes: tuple[str, ...] = (),
) -> Routing:
    """``Routing(...)``, built once per signal (see frozen.build)."""
    return build(
        Routing,
        {"signal": signal, "route": route, "findings": findings, "detector": detector, "notes": notes},
    )


def _target_rows(rows: list[dict[str, Any]], target: VmRef) -> list[dict[str, Any]]:
    """The dimension rows (keys lower-cased) about this target; every row when none names a resource."""
    key = target.key
    about_target = []
    for row in rows:
        for name in RESOURCE_ID_DIMENSIONS:
            named = row.get(name)  # an absent name is "", never a VM's key
            if named is not None and normalize(str(named)) == key:
                about_target.append(row)
                break
    if about_target:
        return about_target
    return [row for row in rows if not any(name in row for name in RESOURCE_ID_DIMENSIONS)] or rows


def _values_for(
    props: Mapping[str, Any],
    rows: Sequence[Mapping[str, str]],
    sources: Sequence[ParameterSource],
    declared: Iterable[tuple[str, str]],
) -> list[tuple[dict[str, str], dict[str, str]]]:
    """One (parameters, origins) set per distinct row (several mounts full on one VM -> several findings):
    a dimension of the row first, then a custom property, then the route's literal; then the custom
    properties named like a declared parameter."""
    sets: list[tuple[dict[str, str], dict[str, str]]] = []
    for row in rows or [{}]:
        values: dict[str, str] = {}
        origins: dict[str, str] = {}
        for source in sources:
            value = None
            for dimension in source.dimensions:  # the first dimension of the row with a value
                found = row.get(dimension)
                if found is not None and found != "":
                    value = found
                    break
            origin = ALERT
            if value is None and source.custom is not None:
                value = props.get(source.custom)
            if value is None and source.literal is not _MISSING:
                value, origin = source.literal, ROUTE_LITERAL
            if value is not None and value != "":
                values[source.name] = value_text(value)
                origins[source.name] = origin
        if props:  # without custom properties no declared parameter is named by one
            for name, lowered in declared:  # (name, name.lower())
                if name not in values and props.get(lowered) not in (None, ""):
                    values[name] = value_text(props[lowered])
                    origins[name] = ALERT
        if (values, origins) not in sets:
            sets.append((values, origins))
    return sets


_TABLES: dict[tuple[int, int], RouteTable] = {}
_TABLES_KEPT = 16
_TABLES_LOCK = threading.Lock()


def route_table(routes: Sequence[Route], catalog: Catalog) -> RouteTable:
    """The table of these routes and this catalog, made once for a tuple of routes (loaded routes are
    one tuple per folder, a catalog is loaded once); a list may change, so it gets a new table."""
    if type(routes) is not tuple:
        return RouteTable(routes, catalog)
    key = (id(routes), id(catalog))
    table = _TABLES.get(key)
    if table is not None and table.routes is routes and table.catalog is catalog:
        return table
    with _TABLES_LOCK:  # a table holds its routes and catalog, so their ids stay theirs while kept
        table = RouteTable(routes, catalog)
        _TABLES.pop(key, None)
        while len(_TABLES) >= _TABLES_KEPT:
            _TABLES.pop(next(iter(_TABLES)))
        _TABLES[key] = table
    return table
