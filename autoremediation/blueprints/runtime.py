"""The engine for a function invocation: built on first use, with telemetry wired on the way.

Nothing here runs at import: the host indexes the functions by importing ``function_app``, and that
must stay cheap (no Azure SDK, no catalog) so a cold start only pays for the function it serves.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..services import Services

log = logging.getLogger("autoremediation.functions")
_lock = threading.Lock()
_telemetry_tried = False


def services() -> Services:
    """The process-wide engine (``services.get_services``), with Azure Monitor wired once if configured."""
    from ..services import get_services

    engine = get_services()
    _wire_telemetry(engine)
    return engine


def _wire_telemetry(engine: Services) -> None:
    global _telemetry_tried
    if _telemetry_tried:
        return
    with _lock:
        if _telemetry_tried:
            return
        _telemetry_tried = True
        from ..telemetry import configure

        try:
            configure(engine.settings)
        except Exception as error:  # telemetry must never take a remediation down with it
            log.warning("Application Insights could not be configured: %s", error)


def reset_telemetry_flag() -> None:
    """Let the next invocation try to wire telemetry again (tests that change the settings)."""
    global _telemetry_tried
    with _lock:
        _telemetry_tried = False
