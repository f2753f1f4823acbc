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

from collections.abc import Sequence

from autoremediation.catalog import Catalog

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
    "ROUTE_LITERAL",
    "Finding",
    "Route",
    "RouteTable",
    "Routing",
    "matches",
    "route_signal",
    "route_table",
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
