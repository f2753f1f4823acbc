"""The one door from the CLI to the local ARM emulator, a development tool that a deployment lacks.

The emulator is a distribution of its own (``emulator/`` in the repository, package ``localfleet``), with
its own development dependencies (``trustme`` for its throw-away CA); ``make setup`` installs it in a
checkout. Without it, a command that needs the local fleet stops with one clear line instead of an import
traceback.
"""

from __future__ import annotations

from types import ModuleType

from .errors import InvalidInput

MISSING = (
    "the local fleet (ARM emulator) is a development tool and is not installed here: "
    "it is the package localfleet (pip install -e emulator from a checkout), or pass --azure"
)


def fleet_server() -> ModuleType:
    """``localfleet.server``, or InvalidInput when the emulator cannot run here."""
    try:
        import trustme  # noqa: F401 - the emulator's TLS needs it; fail here, before a server starts
        from localfleet import server
    except ImportError as error:
        raise InvalidInput(MISSING) from error
    return server
