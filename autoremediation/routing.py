"""Signal -> findings (condition, target VM, remediation, raw parameters) through ``routes.yaml``.

Precedence, highest first:

1. A manual request names its remediation, targets and parameters itself.
2. An alert's custom properties ``condition`` and/or ``remediation`` win over every route.
3. Routes, in file order: the first whose every ``match`` field matches wins.

Parameters of a finding come from the route's mapping (dimension of the same target row first, then a
custom property, then a literal value), then from custom properties named like a catalog parameter.
Values stay raw text here: the policy validates them against the catalog. Each finding says where each
value came from (``origins``): ``alert`` for what the payload said (dimensions, custom properties),
``route`` for a literal of the deployment's own routes file, ``operator`` for a manual request; the
policy refuses a value from a source its parameter does not allow (remediation.yaml ``sources``).
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator

from .catalog import ALERT, OPERATOR, ROUTES_FILE, Catalog
from .errors import CatalogError
from .resources import VmRef, normalize
from .signals.model import Signal

ROUTES_SCHEMA_FILE = "routes.schema.json"
RESOURCE_ID_DIMENSIONS = ("_resourceid", "resourceid")
OVERRIDE_ROUTE = "custom-properties"
MANUAL_ROUTE = "manual-request"
ROUTE_LITERAL = "route"  # a value written in routes.yaml: part of the deployment, not of the payload


@dataclass(frozen=True)
class Route:
    name: str
    match: Mapping[str, Any]
    condition: str
    remediation: str | None = None
    detector: str | None = None
    parameters: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    description: str = ""


@dataclass(frozen=True)
class Finding:
    """One (condition, VM, remediation) the signal asks for, parameters not yet validated."""

    signal: Signal
    condition: str
    remediation: str | None
    target: VmRef
    parameters: Mapping[str, str]
    route: str
    evidence: Mapping[str, Any] = field(default_factory=dict)
    # parameter -> where its value came from (alert, operator, route, detector). A value without an
    # origin is taken as the signal's own claim: alert, unless an operator sent it.
    origins: Mapping[str, str] = field(default_factory=dict)

    def origin_of(self, parameter: str) -> str:
        return self.origins.get(parameter) or (OPERATOR if self.signal.source == "manual" else ALERT)


@dataclass(frozen=True)
class Routing:
    """What routing made of one signal: findings, or a detector to ask, and notes saying why not."""

    signal: Signal
    route: Route | None = None
    findings: tuple[Finding, ...] = ()
    detector: str | None = None
    notes: tuple[str, ...] = ()


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(item) for item in value]


def _lower_keys(mapping: Mapping[str, Any]) -> dict[str, Any]:
    return {str(key).lower(): value for key, value in mapping.items()}


def _any_equal(wanted: Any, actual: str | None) -> bool:
    return actual is not None and actual.strip().lower() in {w.strip().lower() for w in _as_list(wanted)}


def matches(route: Route, signal: Signal) -> bool:
    """Whether every field of the route's ``match`` holds for the signal."""
    m = route.match
    if "source" in m and m["source"] != signal.source:
        return False
    if "type" in m and not _any_equal(m["type"], signal.type):
        return False
    if "signalType" in m and not _any_equal(m["signalType"], signal.signal_type):
        return False
    if "operationName" in m and not _any_equal(m["operationName"], signal.operation_name):
        return False
    if "rule" in m:
        rule = (signal.rule or "").lower()
        if not signal.rule or not any(fnmatch.fnmatchcase(rule, g.lower()) for g in _as_list(m["rule"])):
            return False
    if "queryContains" in m:
        query = (signal.query or "").lower()
        if not signal.query or not any(part.lower() in query for part in _as_list(m["queryContains"])):
            return False
    if "metric" in m:
        wanted = {name.lower() for name in _as_list(m["metric"])}
        if not any(metric.lower() in wanted for metric in signal.metrics):
            return False
    if "customProperties" in m:
        props = _lower_keys(signal.custom_properties)
        for key, value in m["customProperties"].items():
            if str(props.get(key.lower(), "")).strip().lower() != str(value).strip().lower():
                return False
    return True


def _rows_for(signal: Signal, target: VmRef) -> list[dict[str, Any]]:
    """The dimension rows about this target; every row when none names a resource."""
    rows = [_lower_keys(row) for row in signal.dimensions]
    about_target = [
        row
        for row in rows
        if any(normalize(str(row.get(name, ""))) == target.key for name in RESOURCE_ID_DIMENSIONS)
    ]
    if about_target:
        return about_target
    return [row for row in rows if not any(name in row for name in RESOURCE_ID_DIMENSIONS)] or rows


def _parameters_for(
    signal: Signal,
    rows: Sequence[Mapping[str, str]],
    mapping: Mapping[str, Mapping[str, Any]],
    declared: Iterable[str],
) -> list[tuple[dict[str, str], dict[str, str]]]:
    """One (parameters, origins) set per distinct row (several mounts full on one VM -> several findings)."""
    props = _lower_keys(signal.custom_properties)
    sets: list[tuple[dict[str, str], dict[str, str]]] = []
    for row in rows or [{}]:
        values: dict[str, str] = {}
        origins: dict[str, str] = {}
        for name, source in mapping.items():
            value = next(
                (
                    row[d.lower()]
                    for d in _as_list(source.get("dimensions"))
                    if row.get(d.lower()) not in (None, "")
                ),
                None,
            )
            origin = ALERT
            if value is None and "customProperty" in source:
                value = props.get(str(source["customProperty"]).lower())
            if value is None and "value" in source:
                value, origin = source["value"], ROUTE_LITERAL
            if value not in (None, ""):
                values[name] = _text(value)
                origins[name] = origin
        for name in declared:
            if name not in values and props.get(name.lower()) not in (None, ""):
                values[name] = _text(props[name.lower()])
                origins[name] = ALERT
        if (values, origins) not in sets:
            sets.append((values, origins))
    return sets


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def route_signal(signal: Signal, routes: Sequence[Route], catalog: Catalog) -> Routing:
    """Route one signal. Never raises for a well-formed signal: what cannot be done is a note."""
    if signal.is_validation:
        return Routing(signal, notes=("Event Grid subscription validation: answered, never routed",))
    if signal.manual is not None:
        remediation = catalog.get(signal.manual.remediation)  # unknown -> UnknownRemediation (rejected)
        findings = tuple(
            Finding(
                signal=signal,
                condition=remediation.conditions[0],
                remediation=remediation.id,
                target=target,
                parameters=dict(signal.manual.parameters),
                route=MANUAL_ROUTE,
                origins=dict.fromkeys(signal.manual.parameters, OPERATOR),
            )
            for target in signal.targets
        )
        return Routing(signal, findings=findings)

    override = _override(signal, routes, catalog)
    if isinstance(override, str):
        return Routing(signal, notes=(override,))
    route = override or next((r for r in routes if matches(r, signal)), None)
    if route is None:
        return Routing(signal, notes=(f"no route matches this {signal.source} ({signal.type})",))
    if route.detector:
        return Routing(signal, route=route, detector=route.detector)
    if not signal.targets:
        return Routing(
            signal, route=route, notes=(f"route {route.name}: the signal names no virtual machine",)
        )
    found = catalog.remediations.get(route.remediation or "") or catalog.for_condition(route.condition)
    if found is not None and any(p.secret for p in found.parameters.values()):
        # A secret (e.g. an upload SAS URL) must come from an authenticated operator, never from an
        # alert payload whose custom properties anyone who can edit an alert rule controls.
        return Routing(
            signal,
            route=route,
            notes=(f"{found.id} takes secret parameters: only an operator request can start it",),
        )
    if found is None:
        return Routing(
            signal, route=route, notes=(f"route {route.name}: no remediation for {route.condition}",)
        )
    findings = tuple(
        Finding(
            signal=signal,
            condition=route.condition,
            remediation=found.id,
            target=target,
            parameters=values,
            route=route.name,
            origins=origins,
        )
        for target in signal.targets
        for values, origins in _parameters_for(
            signal, _rows_for(signal, target), route.parameters, found.parameters
        )
    )
    return Routing(signal, route=route, findings=findings)


def _override(signal: Signal, routes: Sequence[Route], catalog: Catalog) -> Route | str | None:
    """A route made from the alert's own ``condition`` / ``remediation`` custom properties, if any.

    Returns a note (str) when the properties name something the catalog does not have.
    """
    props = _lower_keys(signal.custom_properties)
    condition = str(props.get("condition") or "").strip()
    remediation_id = str(props.get("remediation") or "").strip()
    if not condition and not remediation_id:
        return None
    if remediation_id:
        if remediation_id not in catalog.remediations:
            return f"custom property remediation={remediation_id!r} is not in the catalog"
        remediation = catalog.remediations[remediation_id]
        if condition and condition not in remediation.conditions:
            return f"remediation {remediation_id!r} does not handle condition {condition!r}"
        condition = condition or remediation.conditions[0]
    else:
        found = catalog.for_condition(condition)
        if found is None:
            return f"custom property condition={condition!r}: no remediation in the catalog handles it"
        remediation = found
    # Borrow the parameter mapping (and detector) of a shipped route for the same remediation.
    template = next((r for r in routes if r.remediation == remediation.id and r.condition == condition), None)
    return Route(
        name=OVERRIDE_ROUTE,
        match={},
        condition=condition,
        remediation=remediation.id,
        detector=template.detector if template else None,
        parameters=template.parameters if template else {},
    )


def routes_problems(folder: str | Path, catalog: Catalog | None) -> tuple[list[str], tuple[Route, ...]]:
    """Every problem of ``routes.yaml`` (empty when valid) and the routes that loaded."""
    root = Path(folder)
    path = root / ROUTES_FILE
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        schema = json.loads((root / ROUTES_SCHEMA_FILE).read_text(encoding="utf-8"))
    except OSError as error:
        return [f"{error.filename}: cannot be read: {error.strerror}"], ()
    except (yaml.YAMLError, ValueError) as error:
        return [f"{path}: not valid: {error}"], ()
    validator = Draft202012Validator(schema)
    problems = [
        f"{path}: {'.'.join(str(p) for p in error.absolute_path) or '(top level)'}: {error.message}"
        for error in validator.iter_errors(data)
    ]
    if problems:
        return problems, ()
    routes: list[Route] = []
    seen: set[str] = set()
    for index, entry in enumerate(data["routes"]):
        where = f"{path}: routes.{index} ({entry['name']})"
        if entry["name"] in seen:
            problems.append(f"{where}: name: duplicate route name")
        seen.add(entry["name"])
        route = Route(
            name=entry["name"],
            match=entry["match"],
            condition=entry["condition"],
            remediation=entry.get("remediation"),
            detector=entry.get("detector"),
            parameters=entry.get("parameters") or {},
            description=entry.get("description", ""),
        )
        if catalog is not None:
            problems.extend(_route_catalog_problems(where, route, catalog))
        routes.append(route)
    return problems, tuple(routes)


def _route_catalog_problems(where: str, route: Route, catalog: Catalog) -> list[str]:
    problems: list[str] = []
    remediation = (
        catalog.remediations.get(route.remediation)
        if route.remediation
        else catalog.for_condition(route.condition)
    )
    if remediation is None:
        if route.remediation:
            return [f"{where}: remediation: {route.remediation!r} is not in the catalog"]
        return [f"{where}: condition: no remediation in the catalog handles {route.condition!r}"]
    if route.condition not in remediation.conditions:
        problems.append(f"{where}: condition: {remediation.id} does not handle {route.condition!r}")
    for name in route.parameters:
        if name not in remediation.parameters:
            problems.append(f"{where}: parameters.{name}: {remediation.id} has no such parameter")
    return problems


@lru_cache(maxsize=8)
def _load(folder: Path, catalog: Catalog) -> tuple[Route, ...]:
    problems, routes = routes_problems(folder, catalog)
    if problems:
        raise CatalogError("; ".join(problems))
    return routes


def load_routes(folder: str | Path, catalog: Catalog) -> tuple[Route, ...]:
    """The validated routes of ``folder`` (cached); CatalogError lists every problem."""
    return _load(Path(folder).resolve(), catalog)
