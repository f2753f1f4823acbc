"""Event Grid events (Event Grid schema and CloudEvents 1.0) -> Signal, one per event.

Resource events (``Microsoft.Resources.*``) never carry the changed resource's body: only what was
done (``operationName``), to what (``resourceUri`` / ``subject``) and how it went (``status``).
Health Resources events name their resource in ``data.resourceInfo``. A subscription validation
event carries the handshake code and is never routed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeGuard

from ..errors import SignalError
from .model import Signal
from .reader import Node, member, text_in, text_mapping
from .refs import ResourceCollector

VALIDATION_EVENT = "Microsoft.EventGrid.SubscriptionValidationEvent"
RESOURCE_EVENT_PREFIX = "Microsoft.Resources."
RESOURCE_NOTIFICATION_PREFIX = "Microsoft.ResourceNotifications."
CLOUDEVENTS_VERSION = "1.0"


def is_cloud_event(payload: Mapping[str, object]) -> bool:
    return "specversion" in payload


def is_event_grid_event(payload: Mapping[str, object]) -> bool:
    return "eventType" in payload


def is_event(payload: object) -> TypeGuard[Mapping[str, object]]:
    return isinstance(payload, Mapping) and (is_cloud_event(payload) or is_event_grid_event(payload))


def parse_event(payload: Mapping[str, object], *, where: str = "") -> Signal:
    """One Event Grid event or CloudEvent as a Signal; ``where`` names its place in a batch.

    Read straight from the decoded dicts: a node (with its path) is made only where a value is wrong.
    """
    if is_cloud_event(payload):
        kind = f"cloudevent{where}"
        version = _required(payload, "specversion", kind)
        if version != CLOUDEVENTS_VERSION:
            raise Node(payload, "", kind)["specversion"].error(
                f"{version!r} is not supported (CloudEvents 1.0 only)"
            )
        _required(payload, "source", kind)
        event_type = _required(payload, "type", kind)
        time = text_in(payload, "time")
    elif is_event_grid_event(payload):
        kind = f"event{where}"
        event_type = _required(payload, "eventType", kind)
        time = text_in(payload, "eventTime")
    else:
        raise SignalError(f"event{where}: not an Event Grid event (eventType) or a CloudEvent (specversion)")
    event_id = _required(payload, "id", kind)
    subject = text_in(payload, "subject")

    data = member(payload, "data")
    known = event_type == VALIDATION_EVENT or event_type.startswith(
        (RESOURCE_EVENT_PREFIX, RESOURCE_NOTIFICATION_PREFIX)
    )
    # Only the types read below need their data; others may carry any data (or data_base64).
    if known and type(data) is not dict:
        Node(payload, "", kind)["data"].mapping(required=True)

    collector = ResourceCollector()
    collector.add(subject)
    extra: dict[str, Any] = {}
    # Event Grid's ``topic`` is what CloudEvents call ``source``: one key for both.
    topic = text_in(payload, "topic") or text_in(payload, "source")
    if topic:
        extra["topic"] = topic

    operation = status = resource_id = validation_code = None
    if event_type == VALIDATION_EVENT:
        validation_code = text_in(data, "validationCode")
        if validation_code is None:
            Node(payload, "", kind)["data"]["validationCode"].required_text()
        url = text_in(data, "validationUrl")
        if url:
            extra["validationUrl"] = url
    elif event_type.startswith(RESOURCE_EVENT_PREFIX):
        operation = text_in(data, "operationName")
        status = text_in(data, "status")
        resource_id = text_in(data, "resourceUri") or subject
        collector.add(resource_id)
        collector.add(text_in(member(data, "authorization"), "scope"))
        for key in ("resourceProvider", "correlationId"):
            value = text_in(data, key)
            if value:
                extra[key] = value
    elif event_type.startswith(RESOURCE_NOTIFICATION_PREFIX):
        info = member(data, "resourceInfo")
        if type(info) is not dict:
            Node(payload, "", kind)["data"]["resourceInfo"].mapping(required=True)
        properties = member(info, "properties")
        collector.add(text_in(info, "id"))
        target = text_in(properties, "targetResourceId")
        collector.add(target)
        resource_id = target or subject or text_in(info, "id")
        status = text_in(properties, "availabilityState")
        extra["properties"] = text_mapping(properties)
    else:
        collector.add(text_in(data, "resourceUri"))

    return Signal.new(
        id=event_id,
        source="event",
        type=event_type,
        state=None,
        # A validation event is the subscription's handshake, not news about any resource.
        targets=() if validation_code else collector.targets,
        resources=() if validation_code else collector.resources,
        time=time,
        operation_name=operation,
        resource_id=resource_id,
        status=status,
        validation_code=validation_code,
        extra=extra,
    )


def _required(payload: Mapping[str, object], key: str, kind: str) -> str:
    """``payload[key]`` as non-empty text; SignalError (prefixed ``kind``) names what is wrong with it."""
    text = text_in(payload, key)
    if text is None:
        return Node(payload, "", kind)[key].required_text()
    return text


def parse_events(payload: list[object] | tuple[object, ...]) -> list[Signal]:
    """A batch of events (Event Grid delivers arrays; CloudEvents may come batched)."""
    if not payload:
        raise SignalError("event: the array holds no events")
    signals: list[Signal] = []
    for index, item in enumerate(payload):
        if not is_event(item):
            raise SignalError(
                f"event[{index}]: not an Event Grid event (eventType) or a CloudEvent (specversion)"
            )
        signals.append(parse_event(item, where=f"[{index}]"))
    return signals
