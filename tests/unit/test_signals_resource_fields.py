"""Each place the parsers take a resource id from is needed: a payload that names its VM only there still
targets that VM (deleting any one of these reads would leave the VM unseen)."""

from __future__ import annotations

from typing import Any

from autoremediation.signals import parse
from tests.helpers.signal_payloads import (
    SUB,
    activity_context,
    alert,
    eg_event,
    essentials,
    storage_id,
    vm_id,
)

VM = vm_id("vm-only-here")
OTHER = storage_id()


def _targets(payload: Any) -> list[str]:
    [signal] = parse(payload)
    return [t.id for t in signal.targets]


def test_resource_write_event_takes_the_vm_from_resource_uri() -> None:
    data = {
        "resourceUri": VM,
        "operationName": "Microsoft.Compute/virtualMachines/write",
        "status": "Succeeded",
    }
    [signal] = parse(eg_event("Microsoft.Resources.ResourceWriteSuccess", data, subject=""))
    assert [t.id for t in signal.targets] == [VM]
    assert signal.resource_id == VM


def test_resource_write_event_takes_the_vm_from_authorization_scope() -> None:
    data = {
        "resourceUri": OTHER,
        "authorization": {"scope": VM, "action": "Microsoft.Compute/virtualMachines/write"},
        "operationName": "Microsoft.Compute/virtualMachines/write",
    }
    assert _targets(eg_event("Microsoft.Resources.ResourceWriteSuccess", data, subject=OTHER)) == [VM]


def test_health_notification_takes_the_vm_from_target_resource_id() -> None:
    data = {
        "resourceInfo": {
            "id": f"/subscriptions/{SUB}/providers/Microsoft.ResourceHealth/events/e1",
            "properties": {"targetResourceId": VM, "availabilityState": "Unavailable"},
        }
    }
    event = eg_event(
        "Microsoft.ResourceNotifications.HealthResources.AvailabilityStatusChanged", data, subject=""
    )
    [signal] = parse(event)
    assert [t.id for t in signal.targets] == [VM]
    assert signal.resource_id == VM


def test_other_events_take_the_vm_from_resource_uri() -> None:
    data = {"resourceUri": VM}
    assert _targets(eg_event("Microsoft.Compute.SomethingElse", data, subject="")) == [VM]


def test_activity_log_alert_takes_the_vm_from_authorization_scope() -> None:
    context: dict[str, Any] = activity_context("Microsoft.Compute/virtualMachines/write", VM)
    context.pop("resourceId", None)
    context["properties"] = {}
    payload = alert(
        essentials(
            alertTargetIDs=[], configurationItems=[], monitoringService="Activity Log - Administrative"
        ),
        context,
    )
    [signal] = parse(payload)
    assert signal.resource_id == VM
    assert [t.id for t in signal.targets] == [VM]
