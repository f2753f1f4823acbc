"""AzureCompute on the real ComputeManagementClient against the emulator: facts, runs, typed errors."""

from __future__ import annotations

import pytest
from localfleet.server import FleetServer

from autoremediation.azure import clients
from autoremediation.azure.compute import AzureCompute
from autoremediation.errors import (
    AgentNotReady,
    Busy,
    InvalidInput,
    NotFound,
    OsMismatch,
    VmNotRunning,
)
from autoremediation.ports import RunRequest, RunStatus
from autoremediation.settings import Settings

from .conftest import RG, SUB, vm_id

pytestmark = pytest.mark.fleet


def request(
    vm: str = "vm-linux-disk", name: str = "remediate-1", os_type: str = "linux", **kw: object
) -> RunRequest:
    params = (
        {"MOUNT_POINT": "/var", "DRY_RUN": "0"} if os_type == "linux" else {"MountPoint": "C:", "DryRun": "0"}
    )
    values = {
        "vm_id": vm_id(vm),
        "run_name": name,
        "os_type": os_type,
        "script": "#!/bin/bash\necho TargetFreePercent\n",
        "parameters": params,
        "timeout_seconds": 600,
        **kw,
    }
    return RunRequest(**values)  # type: ignore[arg-type]


def finish(compute: AzureCompute, req: RunRequest) -> RunStatus:
    status = compute.start_run(req)
    if not status.done:
        status = compute.get_run(req.vm_id, req.run_name)
    return status


def test_vm_facts_come_from_one_instance_view_call(compute: AzureCompute, fleet: FleetServer) -> None:
    facts = compute.get_vm(vm_id("vm-linux-disk"))
    assert (facts.name, facts.os_type, facts.power_state, facts.agent_ready, facts.location) == (
        "vm-linux-disk",
        "linux",
        "running",
        True,
        "westeurope",
    )
    assert facts.tags == {"autoremediation": "enabled", "env": "demo"}
    assert facts.nic_ids == (f"{RG}/providers/Microsoft.Network/networkInterfaces/vm-linux-disk-nic",)
    assert fleet.calls == [("GET", f"{RG}/providers/Microsoft.Compute/virtualMachines/vm-linux-disk")]


def test_vm_facts_of_a_stopped_windows_vm_with_a_silent_agent(
    compute: AzureCompute, fleet: FleetServer
) -> None:
    fleet.set_vm("vm-windows", power_state="deallocated", agent_status="Not Ready")
    facts = compute.get_vm(vm_id("vm-windows"))
    assert (facts.os_type, facts.power_state, facts.agent_ready) == ("windows", "deallocated", False)


def test_missing_vm_and_bad_ids(compute: AzureCompute) -> None:
    with pytest.raises(NotFound):
        compute.get_vm(vm_id("vm-gone"))
    with pytest.raises(InvalidInput, match="is not a virtual machine resource id"):
        compute.get_vm("/subscriptions/x/resourceGroups/y")
    with pytest.raises(InvalidInput, match="scope"):
        compute.list_vms("/providers/whatever")


def test_list_vms_in_subscription_and_resource_group(compute: AzureCompute) -> None:
    by_sub = compute.list_vms(f"/subscriptions/{SUB}")
    by_rg = compute.list_vms(RG)
    assert (
        sorted(f.name for f in by_sub)
        == sorted(f.name for f in by_rg)
        == ["vm-linux-disk", "vm-linux-locked", "vm-no-optin", "vm-windows"]
    )
    # A list says where a VM is and how it is tagged; whether it runs, its guard reads with get_vm.
    assert all(f.location and f.tags and f.os_type in ("linux", "windows") for f in by_sub)
    assert {(f.power_state, f.agent_ready) for f in by_sub} == {("unknown", False)}


def test_managed_run_reports_exit_code_output_and_result(compute: AzureCompute) -> None:
    status = compute.start_run(request())
    assert status.state == "pending"
    status = compute.get_run(vm_id("vm-linux-disk"), "remediate-1")
    assert (status.state, status.exit_code) == ("succeeded", 0)
    assert status.result is not None and status.result["status"] == "fixed"
    assert status.started_at and status.ended_at


def test_managed_dispatch_uses_at_most_four_calls_besides_polls(
    compute: AzureCompute, fleet: FleetServer
) -> None:
    compute.get_vm(vm_id("vm-linux-disk"))
    compute.start_run(request())
    dispatch_calls = list(fleet.calls)
    compute.get_run(vm_id("vm-linux-disk"), "remediate-1")
    assert len(dispatch_calls) <= 4
    assert [m for m, _ in dispatch_calls] == ["GET", "GET", "PUT"]


def test_a_first_dispatch_sends_the_put_without_looking_first(
    compute: AzureCompute, fleet: FleetServer
) -> None:
    """Nothing can have sent this run before (the runner knows from its claim): no re-attach GET."""
    fleet.reset_calls()
    compute.start_run(request(may_exist=False))
    assert [m for m, _ in fleet.calls] == ["GET", "PUT"]  # the VM (for its region), then the run
    fleet.reset_calls()
    compute.start_run(
        request(vm="vm-windows", name="r-2", os_type="windows", may_exist=False, location="westeurope")
    )
    assert [m for m, _ in fleet.calls] == ["PUT"]  # the region known: the PUT alone
    assert fleet.runs_started("vm-linux-disk") == 1


def test_second_dispatch_reattaches_and_runs_the_script_once(settings: Settings, fleet: FleetServer) -> None:
    fleet.inject("PUT */runCommands/*", "stuck", times=1)
    first = AzureCompute(settings, polling_interval=0)
    first.start_run(request())
    # A second worker (a fresh adapter, as after a crash) dispatches the same job again.
    second = AzureCompute(settings, polling_interval=0)
    status = second.start_run(request())
    assert status.state == "running"
    assert fleet.runs_started("vm-linux-disk") == 1
    assert len(fleet.calls_matching("PUT", "*/runcommands/remediate-1")) == 1


def test_protected_parameters_reach_the_run_but_not_its_resource(
    compute: AzureCompute, fleet: FleetServer
) -> None:
    compute.start_run(request(protected_parameters={"TOKEN": "s3cret"}))
    run = fleet.vm("vm-linux-disk").managed["remediate-1"]
    assert "s3cret" not in str(run.body)


def test_cancel_deletes_a_running_command(compute: AzureCompute, fleet: FleetServer) -> None:
    fleet.inject("PUT */runCommands/*", "stuck", times=1)
    compute.start_run(request())
    run = fleet.vm("vm-linux-disk").managed["remediate-1"]
    compute.cancel_run(vm_id("vm-linux-disk"), "remediate-1")
    assert run.state == "Canceled"
    with pytest.raises(NotFound):
        compute.get_run(vm_id("vm-linux-disk"), "remediate-1")
    compute.cancel_run(vm_id("vm-linux-disk"), "remediate-1")  # gone already: no error


def test_managed_run_timeout_is_reported(compute: AzureCompute, fleet: FleetServer) -> None:
    fleet.inject("PUT */runCommands/*", "stuck", times=1)
    compute.start_run(request(timeout_seconds=120))
    assert compute.get_run(vm_id("vm-linux-disk"), "remediate-1").state == "running"
    fleet.advance(121)
    status = compute.get_run(vm_id("vm-linux-disk"), "remediate-1")
    assert status.state == "timed-out" and status.exit_code is None


def test_managed_run_on_a_vm_with_a_silent_agent_fails(compute: AzureCompute, fleet: FleetServer) -> None:
    fleet.set_vm("vm-linux-disk", agent_status="Not Ready")
    compute.start_run(request())
    status = compute.get_run(vm_id("vm-linux-disk"), "remediate-1")
    assert status.state == "failed"
    assert "has not reported status for VM agent" in status.detail


def test_managed_run_on_a_stopped_vm_raises_vm_not_running(compute: AzureCompute, fleet: FleetServer) -> None:
    fleet.set_vm("vm-linux-disk", power_state="stopped")
    with pytest.raises(VmNotRunning):
        compute.start_run(request())


def test_failed_script_is_a_failed_run_with_its_exit_code() -> None:
    from .conftest import small_fleet

    spec = small_fleet(
        {
            "name": "vm1",
            "os": "linux",
            "outcomes": [
                {
                    "exitCode": 3,
                    "stderr": "disk busy",
                    "result": {"status": "not-fixed", "before": {}, "after": {}},
                }
            ],
        }
    )
    with FleetServer(spec, sandbox=False) as fleet:
        settings = Settings(arm_endpoint=fleet.base_url, arm_ca_bundle=fleet.ca_bundle)
        for mode in ("managed", "action"):
            compute = AzureCompute(settings, mode=mode, polling_interval=0)
            status = finish(compute, request("vm1", name=f"r-{mode}"))
            assert (status.state, status.exit_code) == ("failed", 3), mode
            assert status.result == {"status": "not-fixed", "before": {}, "after": {}}
            assert status.error.strip() == "disk busy"


# ---- classic mode ------------------------------------------------------------------------------------


def test_classic_mode_returns_the_terminal_status_from_start_run(classic: AzureCompute) -> None:
    status = classic.start_run(request())
    assert status.done and (status.state, status.exit_code) == ("succeeded", 0)
    assert status.result is not None and status.result["status"] == "fixed"
    assert "REMEDIATION_EXIT_CODE" not in status.error
    assert classic.get_run(vm_id("vm-linux-disk"), "remediate-1") == status


def test_classic_windows_run(classic: AzureCompute) -> None:
    status = classic.start_run(
        request("vm-windows", os_type="windows", script="Write-Host $TargetFreePercent")
    )
    assert (status.state, status.exit_code) == ("succeeded", 0)
    assert status.result is not None and status.result["after"]["freePercent"] == 30


def test_classic_and_managed_give_the_same_verdicts() -> None:
    verdicts = {}
    for vm in ("vm-linux-disk", "vm-windows"):
        os_type = "windows" if vm == "vm-windows" else "linux"
        for mode in ("managed", "action"):
            # Each mode on a fresh fleet, so both see the VM in the same state.
            with FleetServer(sandbox=False) as own:
                compute = AzureCompute(
                    Settings(arm_endpoint=own.base_url, arm_ca_bundle=own.ca_bundle),
                    mode=mode,
                    polling_interval=0,
                )
                status = finish(compute, request(vm, os_type=os_type, name="same"))
                verdicts[(vm, mode)] = (status.state, status.exit_code, status.result)
        assert verdicts[(vm, "managed")] == verdicts[(vm, "action")]


def test_a_repeat_run_after_a_fix_reports_already_ok(classic: AzureCompute) -> None:
    first = classic.start_run(request(name="one"))
    assert first.result is not None and first.result["status"] == "fixed"
    again = classic.start_run(request(name="two"))
    assert again.result is not None and again.result["status"] == "already-ok"
    assert again.result["before"] == again.result["after"]


def test_a_dry_run_changes_nothing(classic: AzureCompute) -> None:
    dry = classic.start_run(request(name="dry", parameters={"MOUNT_POINT": "/var", "DRY_RUN": "1"}))
    assert dry.result is not None and dry.result["status"] == "not-fixed"
    real = classic.start_run(request(name="real"))
    assert real.result is not None and real.result["status"] == "fixed"


def test_classic_mode_busy_os_mismatch_and_agent(
    classic: AzureCompute, fleet: FleetServer, settings: Settings
) -> None:
    with pytest.raises(OsMismatch):
        classic.start_run(request("vm-windows", os_type="linux"))
    # Another client's run that never ends holds the VM.
    fleet.inject("POST */runCommand", "stuck", times=1)
    clients.compute_client(settings, SUB).virtual_machines.begin_run_command(
        "rg-demo", "vm-linux-disk", {"commandId": "RunShellScript"}, polling=False
    )
    with pytest.raises(Busy):
        classic.start_run(request())
    fleet.set_vm("vm-linux-locked", agent_status="Not Ready")
    with pytest.raises(AgentNotReady):
        classic.start_run(request("vm-linux-locked"))


def test_classic_mode_refuses_secret_parameters(classic: AzureCompute, fleet: FleetServer) -> None:
    with pytest.raises(InvalidInput, match="managed mode"):
        classic.start_run(request(protected_parameters={"TOKEN": "x"}))
    assert fleet.calls == []


def test_classic_results_are_unknown_in_another_process(settings: Settings) -> None:
    status = AzureCompute(settings, mode="action").get_run(vm_id("vm-linux-disk"), "never-ran")
    assert status.state == "unknown" and not status.done


def test_unknown_mode_is_refused(settings: Settings) -> None:
    with pytest.raises(InvalidInput, match="must be managed or action"):
        AzureCompute(settings, mode="turbo")
