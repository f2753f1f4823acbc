"""The local fleet: an ARM emulator the real SDK clients talk to, for the demo, tests and benchmarks.

``FleetServer`` runs it in-process, ``run_server`` in the foreground (``remediate fleet serve``),
``FleetCredential`` is the token credential it accepts. Fleet files are described in ``fleetfile``;
``demo-fleet.yaml`` and ``campaign-fleet.yaml`` ship with the package.
"""

from __future__ import annotations

from typing import Any

__all__ = ["FleetCredential", "FleetServer", "run_server"]


def __getattr__(name: str) -> Any:
    # Imported on use: the engine imports this package without paying for the server or TLS setup.
    if name in ("FleetServer", "run_server"):
        from . import server

        return getattr(server, name)
    if name == "FleetCredential":
        from .credential import FleetCredential

        return FleetCredential
    raise AttributeError(name)
