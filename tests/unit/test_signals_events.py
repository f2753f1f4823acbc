"""Event Grid events and CloudEvents: resource events, health events, validation, batches, refusals."""

from __future__ import annotations

import pytest

from autoremediation.errors import SignalError
from autoremediation.signals import parse
from tests.helpers.signal_payloads import (
    SUB,
    cloud_event,
    eg_event,
    nsg_rule_id,
    resource_data,
    storage_id,
    vm_id,
)

WRITE = "Microsoft.Resources.ResourceWriteSuccess"
RULE_WRITE = "Microsoft.Network/networkSecurityGroups/securityRules/write"
AVAILABILITY = "Microsoft.ResourceNotifications.HealthResources.AvailabilityStatusChanged"
VALIDATION = "Microsoft.EventGrid.SubscriptionValidationEvent"


def health_data(vm: str, state: str = "Unavailable") -> dict[str, object]:
    return {
        "resourceInfo": {
            "id": f"{vm}/providers/Microsoft.ResourceHealth/availabilityStatuses/current",
            "name": "current",
            "type": "Microsoft.ResourceHealth/availabilityStatuses",
            "properties": {
                "targetResourceId": vm,
                "targetResourceType": "Microsoft.Compute/virtualMachines",
                "occurredTime": "2026-03-01T08:00:00Z",
                "previousAvailabilityState": "Available",
                "availabilityState": state,
            },
        },
        "operationalInfo": {"resourceEventTime": "2026-03-01T08:00:00Z"},
        "apiVersion": "2023-12-01",
    }


def test_nsg_rule_write_event_names_the_rule_but_no_vm() -> None:
    rule = nsg_rule_id()
    [signal] = parse([eg_event(WRITE, resource_data(rule, RULE_WRITE), subject=rule, event_id="e-1")])
    assert signal.source == "event"
    assert signal.id == "e-1"
    assert signal.type == WRITE
    assert signal.state is None
    assert signal.operation_name == RULE_WRITE
    assert signal.resource_id == rule
    assert signal.status == "Succeeded"
    assert signal.resources == (rule,)
    assert signal.targets == ()
    assert signal.time == "2026-03-01T08:00:00.0000000Z"
    assert signal.extra["topic"] == f"/subscriptions/{SUB}/resourceGroups/rg-app"


def test_write_on_a_vm_targets_it_and_a_single_event_object_is_accepted() -> None:
    vm = vm_id("vm-web-1")
    [signal] = parse(
        eg_event(WRITE, resource_data(vm, "Microsoft.Compute/virtualMachines/write"), subject=vm)
    )
    assert [t.id for t in signal.targets] == [vm]


def test_failed_and_deleted_resource_events_keep_their_status() -> None:
    vm = vm_id("vm-gone")
    events = [
        eg_event(
            "Microsoft.Resources.ResourceWriteFailure",
            resource_data(vm, "Microsoft.Compute/virtualMachines/write", "Failed"),
            subject=vm,
            event_id="a",
        ),
        eg_event(
            "Microsoft.Resources.ResourceDeleteSuccess",
            resource_data(vm, "Microsoft.Compute/virtualMachines/delete"),
            subject=vm,
            event_id="b",
        ),
    ]
    signals = parse(events)
    assert [(s.id, s.type, s.status) for s in signals] == [
        ("a", "Microsoft.Resources.ResourceWriteFailure", "Failed"),
        ("b", "Microsoft.Resources.ResourceDeleteSuccess", "Succeeded"),
    ]


def test_resource_uri_missing_falls_back_to_subject() -> None:
    rule = nsg_rule_id("allow-web")
    data = resource_data(rule, RULE_WRITE)
    del data["resourceUri"]
    [signal] = parse([eg_event(WRITE, data, subject=rule)])
    assert signal.resource_id == rule


def test_health_availability_event_targets_the_vm_of_resource_info() -> None:
    vm = vm_id("vm-web-4")
    [signal] = parse([eg_event(AVAILABILITY, health_data(vm), subject=vm, topic=f"/subscriptions/{SUB}")])
    assert signal.type == AVAILABILITY
    assert [t.id for t in signal.targets] == [vm]
    assert signal.resource_id == vm
    assert signal.status == "Unavailable"
    assert signal.extra["properties"]["previousAvailabilityState"] == "Available"


def test_health_event_with_only_resource_info_id() -> None:
    vm = vm_id("vm-web-5")
    data = health_data(vm)
    data["resourceInfo"]["properties"] = None  # type: ignore[index]
    [signal] = parse([cloud_event(AVAILABILITY, data)])
    assert [t.id for t in signal.targets] == [vm]


def test_cloud_event_single_and_batch() -> None:
    vm = vm_id("vm-ce")
    single = cloud_event(WRITE, resource_data(vm, "Microsoft.Compute/virtualMachines/write"), subject=vm)
    [signal] = parse(single)
    assert (signal.id, signal.type, signal.operation_name) == (
        "ce-1",
        WRITE,
        "Microsoft.Compute/virtualMachines/write",
    )
    assert [t.id for t in signal.targets] == [vm]
    batch = [single, cloud_event(AVAILABILITY, health_data(vm), event_id="ce-2")]
    assert [s.id for s in parse(batch)] == ["ce-1", "ce-2"]


def test_unknown_event_types_parse_with_whatever_data_they_carry() -> None:
    blob = eg_event(
        "Microsoft.Storage.BlobCreated",
        {"url": "https://x/y"},
        subject="/blobServices/default/x",
        topic=storage_id(),
    )
    text = cloud_event("Contoso.Custom.Thing", "plain text data")
    signals = parse([blob]) + parse(text)
    assert [s.type for s in signals] == ["Microsoft.Storage.BlobCreated", "Contoso.Custom.Thing"]
    assert all(s.targets == () for s in signals)


def test_subscription_validation_event_carries_the_code_and_no_targets() -> None:
    event = eg_event(
        VALIDATION,
        {
            "validationCode": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6",
            "validationUrl": "https://example.invalid/validate?id=1",
        },
        subject=vm_id("vm-never-a-target"),
    )
    [signal] = parse([event])
    assert signal.is_validation
    assert signal.validation_code == "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"
    assert signal.targets == () and signal.resources == ()
    assert signal.summary()["validation"] is True


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ([], "event: the array holds no events"),
        ([eg_event(WRITE, {}), {"hello": 1}], "event[1]: not an Event Grid event"),
        ([eg_event(WRITE, resource_data(nsg_rule_id(), RULE_WRITE)), 3], "event[1]: not an Event Grid event"),
        ({"eventType": WRITE, "data": {}}, "event: id is missing"),
        ([{"eventType": WRITE, "id": "x"}], "event[0]: data is missing"),
        ([{"eventType": WRITE, "id": "x", "data": "s"}], "event[0]: data must be an object, not a string"),
        ({"eventType": None, "id": "x"}, "event: eventType is null"),
        ([eg_event(VALIDATION, {"validationUrl": "u"})], "event[0]: data.validationCode is missing"),
        (
            [eg_event(AVAILABILITY, {"resourceInfo": []})],
            "event[0]: data.resourceInfo must be an object, not an array",
        ),
        ({**cloud_event(WRITE, {}), "specversion": "0.3"}, "cloudevent: specversion '0.3' is not supported"),
        ({**cloud_event(WRITE, {}), "source": None}, "cloudevent: source is null"),
        ({**cloud_event(WRITE, {}), "type": ""}, "cloudevent: type is missing"),
        ([cloud_event(WRITE, {}), {**cloud_event(WRITE, {}), "id": None}], "cloudevent[1]: id is null"),
    ],
)
def test_malformed_events_are_refused_with_the_field_named(payload, message) -> None:
    with pytest.raises(SignalError) as caught:
        parse(payload)
    assert str(caught.value).startswith(message)
