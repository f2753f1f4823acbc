"""Inbound payloads -> Signals: pure, defensive parsing with no I/O.

:func:`parse` recognises what it is given and hands it to the parser for that shape:

* a Common Alert Schema alert (``schemaId``) -> :func:`alerts.parse_alert`, one Signal;
* an Event Grid event (``eventType``), a CloudEvent (``specversion``) or an array of them ->
  :func:`events.parse_event`, one Signal per event;
* a manual request (``remediation``) -> :func:`manual.parse_manual`, one Signal.

Anything malformed or unrecognised raises :class:`~autoremediation.errors.SignalError` and nothing
else, so a caller can answer 400 with the message.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from autoremediation.errors import SignalError

from .alerts import is_alert, parse_alert
from .events import is_event, parse_event, parse_events
from .manual import is_manual, parse_manual
from .model import ManualRequest, Signal
from .reader import kind_of

__all__ = ["ManualRequest", "Signal", "decode", "parse"]

UNRECOGNISED = (
    "unrecognised payload: not a Common Alert Schema alert, an Event Grid event, a CloudEvent "
    "or a manual request"
)


def decode(body: str | bytes | bytearray | memoryview) -> object:
    """A request body as JSON; raises SignalError when it is not JSON text."""
    try:
        text = bytes(body).decode("utf-8-sig") if not isinstance(body, str) else body
        return json.loads(text)
    except UnicodeDecodeError as exc:
        raise SignalError(f"payload is not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    except json.JSONDecodeError as exc:
        raise SignalError(f"payload is not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    except (ValueError, RecursionError) as exc:  # e.g. an integer too long, nesting too deep
        raise SignalError(f"payload is not usable JSON: {type(exc).__name__}") from None


def parse(payload: object) -> list[Signal]:
    """The Signals in an inbound payload (a decoded JSON value, or JSON text / bytes).

    Returns one Signal for an alert or a manual request and one per event for events.
    Raises SignalError, naming what is wrong, for anything else.
    """
    if isinstance(payload, str | bytes | bytearray | memoryview):
        payload = decode(payload)
    try:
        return _dispatch(payload)
    except RecursionError:  # a Python object nested beyond what can be walked
        raise SignalError("payload is nested too deeply") from None


def _dispatch(payload: object) -> list[Signal]:
    if isinstance(payload, Mapping):
        if is_alert(payload):
            return [parse_alert(payload)]
        if is_event(payload):
            return [parse_event(payload)]
        if is_manual(payload):
            return [parse_manual(payload)]
        raise SignalError(UNRECOGNISED)
    if isinstance(payload, list | tuple):
        if payload and not is_event(payload[0]):
            raise SignalError(f"{UNRECOGNISED} (an array whose first member is {kind_of(payload[0])})")
        return parse_events(payload)
    raise SignalError(f"{UNRECOGNISED} ({kind_of(payload)})")
