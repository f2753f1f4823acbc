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
from .reader import Node, text_mapping
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
    """One Event Grid event or CloudEvent as a Signal; ``where`` names its place in a batch."""
    if is_cloud_event(payload):
        root = Node(payload, "", f"cloudevent{where}")
        version = root["specversion"].required_text()
        if version != CLOUDEVENTS_VERSION:
            raise root["specversion"].error(f"{version!r} is not supported (CloudEvents 1.0 only)")
        root["source"].required_text()
        event_type = root["type"].required_text()
        time = root["time"].text()
    elif is_event_grid_event(payload):
        root = Node(payload, "", f"event{where}")
        event_type = root["eventType"].required_text()
        time = root["eventTime"].text()
    else:
        raise SignalError(f"event{where}: not an Event Grid event (eventType) or a CloudEvent (specversion)")
    event_id = root["id"].required_text()
    subject = root["subject"].text()

    data = root["data"]
    known = event_type == VALIDATION_EVENT or event_type.startswith(
        (RESOURCE_EVENT_PREFIX, RESOURCE_NOTIFICATION_PREFIX)
    )
    # Only the types read below need their data; others may carry any data (or data_base64).
    if known:
        data.mapping(required=True)

    collector = ResourceCollector()
    collector.add(subject)
    extra: dict[str, Any] = {}
    # Event Grid's ``topic`` is what CloudEvents call ``source``: one key for both.
    topic = root["topic"].text() or root["source"].text()
    if topic:
        extra["topic"] = topic

    operation = status = resource_id = validation_code = None
    if event_type == VALIDATION_EVENT:
        validation_code = data["validationCode"].required_text()
        url = data["validationUrl"].text()
        if url:
            extra["validationUrl"] = url
    elif event_type.startswith(RESOURCE_EVENT_PREFIX):
        operation = data["operationName"].text()
        status = data["status"].text()
        resource_id = data["resourceUri"].text() or subject
        collector.add(resource_id)
        collector.add(data["authorization"]["scope"].text())
        for key in ("resourceProvider", "correlationId"):
            value = data[key].text()
            if value:
                extra[key] = value
    elif event_type.startswith(RESOURCE_NOTIFICATION_PREFIX):
        info = data["resourceInfo"]
        info.mapping(required=True)
        properties = info["properties"]
        collector.add(info["id"].text())
        target = properties["targetResourceId"].text()
        collector.add(target)
        resource_id = target or subject or info["id"].text()
        status = properties["availabilityState"].text()
        extra["properties"] = text_mapping(properties.mapping())
    else:
        collector.add(data["resourceUri"].text())

    return Signal(
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
