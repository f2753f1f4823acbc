"""ARM's answers about VMs and run commands, read by their REST names: raw JSON and the SDK's models alike."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from azure.mgmt.compute.models import RunCommandResult, VirtualMachine, VirtualMachineRunCommand

from autoremediation.azure.compute_read import action_status, raw_json, run_status, vm_facts
from autoremediation.errors import Transient

VM_ID = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/myVM"
NIC_ID = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/networkInterfaces/myNic"


def _published_vm(shared_fixtures: Path) -> dict[str, Any]:
    """A VM as GET ...?$expand=instanceView answers: Microsoft's published instance view inside it."""
    example = json.loads((shared_fixtures / "arm-vm-instanceview.example.json").read_text())
    return {
        "id": VM_ID,
        "name": "myVM",
        "location": "westus",
        "tags": {"autoremediation": "enabled", "owner": "sre"},
        "properties": {
            "storageProfile": {"osDisk": {"osType": "Windows", "name": "myOsDisk"}},
            "networkProfile": {"networkInterfaces": [{"id": NIC_ID}]},
            "instanceView": example["responses"]["200"]["body"],
        },
    }


def test_a_vm_read_from_arms_published_instance_view(shared_fixtures: Path) -> None:
    facts = vm_facts(_published_vm(shared_fixtures))
    assert (facts.id, facts.name, facts.location, facts.os_type) == (VM_ID, "myVM", "westus", "windows")
    assert facts.power_state == "running"  # PowerState/running, after ProvisioningState/succeeded
    assert facts.agent_ready is True  # the guest agent's displayStatus "Ready"
    assert facts.tags == {"autoremediation": "enabled", "owner": "sre"}
    assert facts.nic_ids == (NIC_ID,)


def test_the_sdks_model_of_a_vm_reads_as_its_json(shared_fixtures: Path) -> None:
    # A VM list gives the SDK's models: they must give the facts the raw read gives.
    body = _published_vm(shared_fixtures)
    assert vm_facts(VirtualMachine(body)) == vm_facts(body)


def test_a_vm_without_its_instance_view_or_with_odd_shapes_is_unknown_and_not_ready() -> None:
    listed = {"id": VM_ID, "name": "myVM", "location": "westus", "properties": {"osProfile": {}}}
    facts = vm_facts(listed)
    assert (facts.power_state, facts.agent_ready, facts.os_type, facts.tags) == (
        "unknown",
        False,
        "linux",
        {},
    )
    odd = {
        "id": VM_ID,
        "tags": ["not", "an", "object"],
        "properties": {
            "osProfile": {"windowsConfiguration": {}},
            "instanceView": {"statuses": {"code": "PowerState/running"}, "vmAgent": "Ready"},
            "networkProfile": {"networkInterfaces": [{"primary": True}, "nic"]},
        },
    }
    facts = vm_facts(odd)
    assert (facts.power_state, facts.agent_ready, facts.os_type) == ("unknown", False, "windows")
    assert (facts.tags, facts.nic_ids) == ({}, ())
    assert vm_facts({"id": VM_ID, "properties": "?"}).power_state == "unknown"


@pytest.mark.parametrize("power", ["PowerState/deallocated", "PowerState/stopped", "PowerState/starting"])
def test_the_last_power_state_code_is_the_vms(power: str) -> None:
    view = {"statuses": [{"code": "ProvisioningState/succeeded"}, {"code": power}]}
    facts = vm_facts({"id": VM_ID, "properties": {"instanceView": view}})
    assert facts.power_state == power.split("/")[1]


def _run(view: dict[str, Any] | None, provisioning: str = "Succeeded") -> dict[str, Any]:
    properties: dict[str, Any] = {"provisioningState": provisioning, "asyncExecution": True}
    if view is not None:
        properties["instanceView"] = view
    return {"name": "remediate-1", "location": "westus", "properties": properties}


def test_a_finished_run_with_its_output_exit_code_and_times() -> None:
    view = {
        "executionState": "Succeeded",
        "executionMessage": "",
        "exitCode": 0,
        "output": 'cleaning\nREMEDIATION_RESULT {"status":"fixed","after":{"freePercent":41}}\n',
        "error": "",
        "startTime": "2024-03-01T10:00:00.1234567Z",  # ARM writes seven fraction digits
        "endTime": "2024-03-01T10:00:02+00:00",
        "statuses": [],
    }
    status = run_status(_run(view))
    assert (status.state, status.exit_code) == ("succeeded", 0)
    assert status.result == {"status": "fixed", "after": {"freePercent": 41}}
    assert status.started_at == "2024-03-01T10:00:00.123456+00:00"
    assert status.ended_at == "2024-03-01T10:00:02+00:00"
    assert run_status(VirtualMachineRunCommand(_run(view))) == status  # the SDK's model reads the same


@pytest.mark.parametrize(
    ("view", "provisioning", "state", "exit_code"),
    [
        ({"executionState": "Running"}, "Succeeded", "running", None),
        ({"executionState": "TimedOut", "exitCode": 0}, "Succeeded", "timed-out", None),  # 0 is ARM's filler
        ({"executionState": "Canceled", "exitCode": 0}, "Succeeded", "canceled", None),
        ({"executionState": "Failed", "exitCode": 3}, "Succeeded", "failed", 3),
        ({"executionState": "Unknown"}, "Creating", "pending", None),
        (None, "Creating", "pending", None),
        ({"executionState": "Succeeded", "exitCode": 0}, "Failed", "failed", None),
        ({"executionState": "Whatever"}, "Succeeded", "unknown", None),
    ],
)
def test_run_states(
    view: dict[str, Any] | None, provisioning: str, state: str, exit_code: int | None
) -> None:
    status = run_status(_run(view, provisioning))
    assert (status.state, status.exit_code) == (state, exit_code)


def test_a_run_that_could_not_be_provisioned_says_so_and_keeps_arms_messages() -> None:
    assert run_status(_run(None, "Failed")).detail == "the run command could not be provisioned"
    view = {"executionState": "Failed", "executionMessage": "agent gone", "statuses": [{"message": "disk"}]}
    assert run_status(_run(view)).detail == "agent gone; disk"


def test_an_action_run_commands_result_reads_from_its_statuses() -> None:
    value = [
        {"code": "ComponentStatus/StdOut/succeeded", "message": 'REMEDIATION_RESULT {"status":"already-ok"}'},
        {"code": "ComponentStatus/StdErr/succeeded", "message": ""},
    ]
    status = action_status(value)
    assert (status.state, status.result) == ("succeeded", {"status": "already-ok"})
    assert action_status(RunCommandResult({"value": value}).get("value")) == status


@pytest.mark.parametrize("body", [b"<html>gateway</html>", b"[1, 2]", b""])
def test_an_answer_that_is_not_a_json_object_is_a_transient_fault(body: bytes) -> None:
    with pytest.raises(Transient, match="read VM myVM"):
        raw_json([body], "read VM myVM")
    assert raw_json([b'{"id":', b' "x"}'], "read VM myVM") == {"id": "x"}
