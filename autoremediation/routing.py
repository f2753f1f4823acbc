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

import json
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import yaml
from jsonschema import Draft202012Validator

from .catalog import ROUTES_FILE, Catalog
from .errors import CatalogError
from .route_model import (
    MANUAL_ROUTE,
    OVERRIDE_ROUTE,
    RESOURCE_ID_DIMENSIONS,
    ROUTE_LITERAL,
    Finding,
    Route,
    Routing,
    lower_keys,
)
from .route_table import RouteMatcher, RouteTable, route_table
from .signals.model import Signal

__all__ = [
    "MANUAL_ROUTE",
    "OVERRIDE_ROUTE",
    "RESOURCE_ID_DIMENSIONS",
    "ROUTES_SCHEMA_FILE",
    "ROUTE_LITERAL",
    "Finding",
    "Route",
    "RouteTable",
    "Routing",
    "load_routes",
    "matches",
    "route_signal",
    "route_table",
    "routes_problems",
]

ROUTES_SCHEMA_FILE = "routes.schema.json"


def matches(route: Route, signal: Signal) -> bool:
    """Whether every field of the route's ``match`` holds for the signal."""
    m = route.match
    if "source" in m and m["source"] != signal.source:
        return False
    return RouteMatcher(route).matches(signal, lower_keys(signal.custom_properties))


def route_signal(signal: Signal, routes: Sequence[Route], catalog: Catalog) -> Routing:
    """Route one signal. Never raises for a well-formed signal: what cannot be done is a note."""
    return route_table(routes, catalog).route(signal)


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
