"""Faults the emulator injects per route: latency, 429, 5xx, a dropped connection, a stuck run."""

from __future__ import annotations

import fnmatch
import threading
from dataclasses import dataclass

from .fleetfile import FAULT_KINDS, FaultSpec, FleetFileError


@dataclass
class ActiveFault:
    spec: FaultSpec
    remaining: int | None
    hits: int = 0


class FaultTable:
    """Faults matched against "METHOD /path" (query string excluded, case-insensitive, ``*`` globbing).

    A fault with ``times`` fires on that many matching calls and then retires; without, it stays.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[ActiveFault] = []

    def inject(self, spec: FaultSpec) -> None:
        if spec.kind not in FAULT_KINDS:
            raise FleetFileError(f"fault kind {spec.kind!r} must be one of {', '.join(FAULT_KINDS)}")
        with self._lock:
            self._faults.append(ActiveFault(spec, spec.times))

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def take(self, method: str, path: str) -> FaultSpec | None:
        """The first fault matching this call, counting it down; None when the call goes through."""
        target = f"{method.upper()} {path}".lower()
        with self._lock:
            for fault in self._faults:
                pattern = fault.spec.route.lower()
                if " " not in pattern:
                    pattern = "* " + pattern
                if not fnmatch.fnmatchcase(target, pattern):
                    continue
                fault.hits += 1
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                return fault.spec
        return None

    def describe(self) -> list[dict[str, object]]:
        with self._lock:
            return [
                {"route": f.spec.route, "kind": f.spec.kind, "remaining": f.remaining, "hits": f.hits}
                for f in self._faults
            ]
