"""Conformance: the payloads Microsoft documents are parsed (or refused) as a user would expect.

The reference files live next to the repository, not in it; the suite skips when they are absent.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from autoremediation.errors import SignalError
from autoremediation.signals import UNRECOGNISED, parse
from autoremediation.signals.model import Signal

SUB = "aaaa0a0a-bb1b-cc2c-dd3d-eeeeee4e4e4e"
TEST_VM = f"/subscriptions/{SUB}/resourcegroups/test-RG/providers/microsoft.compute/virtualmachines/test-VM"
NOT_INBOUND = {"eg-subscriptionvalidation-response.json"}


def load(folder: Path, name: str) -> Any:
    return json.loads((folder / name).read_text(encoding="utf-8"))


def one(folder: Path, name: str) -> Signal:
    signals = parse(load(folder, name))
    assert len(signals) == 1, name
    return signals[0]


def in_envelope(fragment: dict[str, Any], service: str, targets: list[str] | None = None) -> dict[str, Any]:
    """A documented alertContext fragment inside the smallest essentials that make a whole alert."""
    return {
        "schemaId": "azureMonitorCommonAlertSchema",
        "data": {
            "essentials": {
                "alertId": f"/subscriptions/{SUB}/providers/Microsoft.AlertsManagement/alerts/fragment",
                "monitorCondition": "Fired",
                "monitoringService": service,
                "alertTargetIDs": targets or [],
            },
            **fragment,
        },
    }


def names(folder: Path, pattern: str) -> list[str]:
    return sorted(p.name for p in folder.glob(pattern) if not p.name.endswith(".source.txt"))


def test_every_inbound_payload_parses_or_is_refused_clearly(shared_fixtures: Path) -> None:
    inbound = [
        n
        for n in names(shared_fixtures, "cas-*.json") + names(shared_fixtures, "eg-*.json")
        if not n.startswith("cas-fragment-")
    ]
    assert len(inbound) >= 15
    parsed = []
    for name in inbound:
        try:
            signals = parse((shared_fixtures / name).read_bytes())
        except SignalError as error:
            assert name in NOT_INBOUND, f"{name}: {error}"
            assert str(error).startswith(UNRECOGNISED)
            continue
        assert name not in NOT_INBOUND
        assert signals and all(s.id for s in signals)
        parsed.append(name)
    assert len(parsed) == len(inbound) - len(NOT_INBOUND)


def test_management_api_documents_are_not_inbound_payloads(shared_fixtures: Path) -> None:
    documents = names(shared_fixtures, "arm-*.json")
    assert documents
    for name in documents:
        with pytest.raises(SignalError) as caught:
            parse(load(shared_fixtures, name))
        assert str(caught.value).startswith(UNRECOGNISED), name


def test_metric_alert_on_a_vm_resolved(shared_fixtures: Path) -> None:
    signal = one(shared_fixtures, "cas-metric-static-vm-resolved.json")
    assert signal.state == "resolved"
    assert signal.id.endswith("/alerts/aaaa0a0a-bb1b-cc2c-dd3d-eeeeee4e4e4e")
    assert signal.rule == "WCUS-R2-Gen2"
    assert signal.resolved_at == "2019-03-22T14:03:16.2246313Z"
    assert [t.name for t in signal.targets] == ["wcus-r2-gen2"]
    assert signal.metrics == ("Percentage CPU",)
    # The ResourceId dimension holds the VM's unique id, not a resource id: it names no resource.
    assert signal.dimensions == ({"ResourceId": "a0a0a0a0-bbbb-cccc-dddd-e1e1e1e1e1e1"},)
    assert signal.custom_properties == {"Key1": "Value1", "Key2": "Value2"}


def test_metric_alerts_on_storage_have_no_vm_target(shared_fixtures: Path) -> None:
    for name in ("cas-metric-static.json", "cas-metric-dynamic.json"):
        signal = one(shared_fixtures, name)
        assert signal.state == "fired" and signal.type == "Platform"
        assert signal.targets == ()
        assert (
            len(signal.resources) == 1
            and "storageaccounts/test-storageaccount" in signal.resources[0].lower()
        )
        assert signal.metrics == ("Transactions",)
        assert signal.custom_properties == {"customKey1": "value1", "customKey2": "value2"}
    assert one(shared_fixtures, "cas-metric-static.json").dimensions == ({"ApiName": "GetBlob"},)


def test_log_alerts(shared_fixtures: Path) -> None:
    v2 = one(shared_fixtures, "cas-log-v2.json")
    assert (v2.type, v2.signal_type, v2.query) == ("Log Alerts V2", "Log", "Heartbeat")
    assert v2.dimensions == ({"Computer": "test-computer"},)
    assert v2.targets == ()  # a workspace and a computer name: no VM resource id
    numresults = one(shared_fixtures, "cas-log-v1-numresults.json")
    assert (numresults.type, numresults.query) == ("Log Analytics", "Heartbeat")
    assert numresults.dimensions[0]["Computer"] == "test-computer"
    measurement = one(shared_fixtures, "cas-log-v1-metric-measurement.json")
    assert measurement.query == "Heartbeat | summarize AggregatedValue=count() by bin(TimeGenerated, 5m)"
    assert [d["AggregatedValue"] for d in measurement.dimensions] == ["11", "11"]


def test_activity_log_alerts(shared_fixtures: Path) -> None:
    admin = one(shared_fixtures, "cas-activitylog-administrative.json")
    assert admin.type == "Activity Log - Administrative"
    assert admin.operation_name == "Microsoft.Compute/virtualMachines/restart/action"
    assert admin.status == "Succeeded"
    assert admin.resource_id is not None and admin.resource_id.endswith("/virtualMachines/test-VM")
    # configurationItems holds the bare name "test-VM": only the resource id makes a target.
    assert [t.id for t in admin.targets] == [TEST_VM]

    health = one(shared_fixtures, "cas-resourcehealth.json")
    assert (health.type, health.status) == ("Resource Health", "Active")
    assert [t.id for t in health.targets] == [TEST_VM]
    assert health.custom_properties["currentHealthStatus"] == "Unavailable"

    service = one(shared_fixtures, "cas-servicehealth.json")
    assert (service.type, service.signal_type, service.status) == ("ServiceHealth", "ActivityLog", "Resolved")
    assert service.targets == ()
    assert service.resource_id == f"/subscriptions/{SUB}"
    assert json.loads(service.custom_properties["impactedServices"])[0]["ServiceName"] == "AzureServiceName"


def test_event_grid_resource_events(shared_fixtures: Path) -> None:
    write = one(shared_fixtures, "eg-resourcegroup-writesuccess-storage.json")
    assert (write.source, write.type, write.state) == (
        "event",
        "Microsoft.Resources.ResourceWriteSuccess",
        None,
    )
    assert write.id == "4db48cba-50a2-455a-93b4-de41a3b5b7f6"
    assert write.operation_name == "Microsoft.Storage/storageAccounts/write"
    assert write.status == "Succeeded"
    assert write.targets == ()
    delete = one(shared_fixtures, "eg-resourcegroup-deletesuccess-storage.json")
    assert delete.operation_name == "Microsoft.Storage/storageAccounts/delete"
    action = one(shared_fixtures, "eg-resourcegroup-actionsuccess-listkeys.json")
    assert action.operation_name == "Microsoft.EventHub/namespaces/AuthorizationRules/listKeys/action"
    assert action.resource_id is not None and action.resource_id.endswith("/RootManageSharedAccessKey")


def test_health_resources_events_target_the_vm(shared_fixtures: Path) -> None:
    vm = (
        "/subscriptions/{subscription-id}/resourceGroups/{rg-name}"
        "/providers/Microsoft.Compute/virtualMachines/{vm-name}"
    )
    for name in (
        "eg-healthresources-availabilitystatuschanged-egschema.json",
        "eg-healthresources-availabilitystatuschanged-cloudevent.json",
    ):
        signal = one(shared_fixtures, name)
        assert signal.type == "Microsoft.ResourceNotifications.HealthResources.AvailabilityStatusChanged"
        assert signal.id == "1fb6fa94-d965-4306-abeq-4810f0774e97"
        assert [t.id for t in signal.targets] == [vm]
        assert signal.status == "Available"
    annotated = one(shared_fixtures, "eg-healthresources-resourceannotated-cloudevent.json")
    assert [t.id for t in annotated.targets] == [vm]
    assert annotated.extra["properties"]["annotationName"] == "VirtualMachineDeallocationInitiated"


def test_subscription_validation(shared_fixtures: Path) -> None:
    signal = one(shared_fixtures, "eg-subscriptionvalidation.json")
    assert signal.validation_code == "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"
    assert signal.targets == () and signal.resources == ()
    assert signal.id == "2d1781af-3a4c-4d7c-bd0c-e34b19da4e66"


def test_storage_events_parse_without_targets(shared_fixtures: Path) -> None:
    cloud = one(shared_fixtures, "eg-cloudevent-blobcreated.json")
    dead = one(shared_fixtures, "eg-deadletter-blobcreated-egschema.json")
    assert cloud.type == dead.type == "Microsoft.Storage.BlobCreated"
    assert cloud.targets == dead.targets == ()


def test_fragment_log_v2_vm_scoped(shared_fixtures: Path) -> None:
    fragment = load(shared_fixtures, "cas-fragment-alertcontext-log-v2-vm.json")
    signal = one_payload(in_envelope(fragment, "Log Alerts V2"))
    assert signal.query == "Heartbeat"
    assert signal.dimensions == ({"Computer": "TestComputer"},)
    assert signal.custom_properties == {"name1": "value1", "name2": "value2"}


def test_fragment_activity_log_administrative(shared_fixtures: Path) -> None:
    fragment = load(shared_fixtures, "cas-fragment-alertcontext-activitylog-administrative-2019.json")
    signal = one_payload(in_envelope(fragment, "Activity Log - Administrative"))
    assert signal.operation_name == "Microsoft.Compute/virtualMachines/restart/action"
    assert signal.status == "Succeeded"
    assert [t.name for t in signal.targets] == ["WCUS-R2-ActLog"]  # from authorization.scope


def test_fragment_resource_health(shared_fixtures: Path) -> None:
    fragment = load(shared_fixtures, "cas-fragment-alertcontext-resourcehealth-2019.json")
    signal = one_payload(in_envelope(fragment, "Resource Health", [TEST_VM]))
    assert signal.operation_name == "Microsoft.Resourcehealth/healthevent/Activated/action"
    assert signal.status == "Active"
    assert [t.id for t in signal.targets] == [TEST_VM]
    assert signal.custom_properties["previousHealthStatus"] == "Available"


def test_fragment_service_health(shared_fixtures: Path) -> None:
    fragment = load(shared_fixtures, "cas-fragment-alertcontext-servicehealth-2019.json")
    signal = one_payload(in_envelope(fragment, "ServiceHealth", [f"/subscriptions/{SUB}"]))
    assert signal.operation_name == "Microsoft.ServiceHealth/maintenance/action"
    assert signal.targets == ()
    # Documented here as a JSON string (an array elsewhere): kept as text either way.
    assert (
        json.loads(signal.custom_properties["impactedServices"])[0]["ServiceName"]
        == "Azure Synapse Analytics"
    )


def one_payload(payload: dict[str, Any]) -> Signal:
    [signal] = parse(payload)
    return signal
