"""ARM conventions the emulator shares: error answers, resource ids, timestamps, resource group scope."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from .fleetfile import FleetSpec

COMPUTE = "Microsoft.Compute"
NETWORK = "Microsoft.Network"


class ArmError(Exception):
    """An answer ARM would give instead of the resource: status code, error code and message."""

    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message}}


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def guid(*parts: str) -> str:
    """A stable GUID for a resource (vmId, resourceGuid), the same on every start of the fleet."""
    return str(uuid.UUID(hashlib.sha256("/".join(parts).encode()).hexdigest()[:32]))


def rg_id(sub: str, rg: str) -> str:
    return f"/subscriptions/{sub}/resourceGroups/{rg}"


class Scope:
    """The fleet's subscriptions and resource groups; lookups are case-insensitive, as in ARM."""

    def __init__(self, spec: FleetSpec) -> None:
        self.subscriptions = {s.lower() for s in spec.subscriptions}
        self.groups = {(s.lower(), rg.lower()): (s, rg, loc) for s, rg, loc in spec.resource_groups}

    def check_subscription(self, sub: str) -> None:
        if sub.lower() not in self.subscriptions:
            raise ArmError(404, "SubscriptionNotFound", f"The subscription '{sub}' could not be found.")

    def check_group(self, sub: str, rg: str) -> None:
        self.check_subscription(sub)
        if (sub.lower(), rg.lower()) not in self.groups:
            raise ArmError(404, "ResourceGroupNotFound", f"Resource group '{rg}' could not be found.")

    def location(self, sub: str, rg: str) -> str:
        return self.groups[(sub.lower(), rg.lower())][2]
