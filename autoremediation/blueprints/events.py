"""The ``resource_events`` Event Grid trigger: resource and health events into the same intake.

Both delivery schemas arrive here: the worker hands an Event Grid schema event over as
``func.EventGridEvent`` and a CloudEvent as ``func.CloudEvent``. The host answers Event Grid's
subscription validation itself; a validation event that still reaches the function is ignored
before any write. A malformed event is logged and dropped (a retry would not fix it); a storage or
ARM outage raises, so the host reports a failure and Event Grid delivers the event again.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import azure.functions as func

from ..errors import InvalidInput
from .admission import AppFault, admit, plan

bp = func.Blueprint()
log = logging.getLogger("autoremediation.functions.events")
ACTOR = "event-grid"
VALIDATION_EVENT = "Microsoft.EventGrid.SubscriptionValidationEvent"


def _stamp(value: datetime | None) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else None


def payload_of(event: func.EventGridEvent | func.CloudEvent) -> dict[str, Any]:
    """The event as it was on the wire, for the same parser every other entry point uses."""
    if isinstance(event, func.CloudEvent):
        payload: dict[str, Any] = {
            **event.extension_attrs,
            "specversion": event.specversion,
            "id": event.id,
            "source": event.source,
            "type": event.type,
            "subject": event.subject,
            "time": _stamp(event.time),
            "data": event.get_json(),
        }
    else:
        payload = {
            "id": event.id,
            "topic": event.topic,
            "subject": event.subject,
            "eventType": event.event_type,
            "eventTime": _stamp(event.event_time),
            "dataVersion": event.data_version,
            "data": event.get_json(),
        }
    return {k: v for k, v in payload.items() if v is not None}


def event_type_of(event: func.EventGridEvent | func.CloudEvent) -> str:
    return (event.type if isinstance(event, func.CloudEvent) else event.event_type) or ""


@bp.function_name("resource_events")
@bp.event_grid_trigger(arg_name="event")
def resource_events(event: func.EventGridEvent) -> None:
    from ..signals.events import parse_event

    event_type = event_type_of(event)
    if event_type == VALIDATION_EVENT:
        log.info("event %s: subscription validation, answered by the host; nothing to route", event.id)
        return
    try:
        signal = parse_event(payload_of(event))
        report = plan([signal], strict_parameters=False)
    except AppFault as fault:
        raise fault.error from None
    except InvalidInput as error:
        log.warning("event %s (%s) dropped: %s", event.id, event_type, error)
        return
    try:
        result = admit(report, actor=ACTOR)
    except AppFault as fault:
        raise fault.error from None
    log.info(
        "event %s (%s): jobs %s; %s",
        event.id,
        event_type,
        [a.job.id for a in result.jobs],
        "; ".join(n.message for n in report.notes) or "no notes",
    )
