"""What routing makes: routes as ``routes.yaml`` declares them, the findings a signal asks for, and
the outcome of routing one signal (see :mod:`autoremediation.routing`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from autoremediation.catalog import ALERT, OPERATOR

from .resources import VmRef
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


def as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(item) for item in value]


def lower_keys(mapping: Mapping[str, Any]) -> dict[str, Any]:
    return {str(key).lower(): value for key, value in mapping.items()}


def value_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
