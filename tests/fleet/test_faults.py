"""Injected faults seen through the adapters: bounded retries, Retry-After, typed errors."""

from __future__ import annotations

import pytest
from localfleet.server import FleetServer

from autoremediation.azure.calls import Retrier
from autoremediation.azure.compute import AzureCompute, RunOutcomeUnknown
from autoremediation.azure.network import AzureNetwork
from autoremediation.errors import Busy, Permanent, Throttled, Transient
from autoremediation.ports import RunRequest
from autoremediation.settings import Settings

from .conftest import SUB, Sleeps, nsg_id, small_fleet, vm_id

pytestmark = pytest.mark.fleet

VM = vm_id("vm-linux-disk")


def req(name: str = "r1") -> RunRequest:
    return RunRequest(
        vm_id=VM, run_name=name, os_type="linux", script="#!/bin/bash\necho hi\n", parameters={"DRY_RUN": "0"}
    )


def test_throttling_is_retried_after_retry_after(
    compute: AzureCompute, fleet: FleetServer, sleeps: Sleeps
) -> None:
    fleet.inject("GET */virtualMachines/vm-linux-disk", "throttle", retryAfter=7, times=2)
    assert compute.get_vm(VM).name == "vm-linux-disk"
    assert sleeps.delays == [7.0, 7.0]
    assert len(fleet.calls_matching("GET", "*/virtualmachines/vm-linux-disk")) == 3


def test_throttling_beyond_the_budget_raises_throttled(settings: Settings, fleet: FleetServer) -> None:
    sleeps = Sleeps()
    compute = AzureCompute(settings, polling_interval=0, retrier=Retrier(attempts=3, sleep=sleeps))
    fleet.inject("GET *", "throttle", retryAfter=2)
    with pytest.raises(Throttled) as caught:
        compute.get_vm(VM)
    assert caught.value.retry_after == 2.0
    assert len(sleeps.delays) == 2
    assert len(fleet.calls) == 3


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors_are_retried_with_backoff(
    compute: AzureCompute, fleet: FleetServer, sleeps: Sleeps, status: int
) -> None:
    fleet.inject("GET */virtualMachines/*", "error", status=status, retryAfter=0, times=2)
    assert compute.get_vm(VM).power_state == "running"
    assert len(sleeps.delays) == 2 and sleeps.delays[1] > sleeps.delays[0]


def test_a_dropped_connection_is_transient_and_retried(
    compute: AzureCompute, fleet: FleetServer, sleeps: Sleeps
) -> None:
    fleet.inject("GET */virtualMachines/*", "drop", times=1)
    assert compute.get_vm(VM).name == "vm-linux-disk"
    assert len(sleeps.delays) == 1


def test_persistent_drops_raise_transient(compute: AzureCompute, fleet: FleetServer) -> None:
    fleet.inject("GET */virtualMachines/*", "drop")
    with pytest.raises(Transient, match="connection failed"):
        compute.get_vm(VM)


def test_latency_delays_but_does_not_fail(compute: AzureCompute, fleet: FleetServer, sleeps: Sleeps) -> None:
    fleet.inject("GET *", "latency", delaySeconds=0.05, times=1)
    assert compute.get_vm(VM).name == "vm-linux-disk"
    assert sleeps.delays == []


def test_a_dropped_action_post_is_not_repeated(classic: AzureCompute, fleet: FleetServer) -> None:
    """The POST may have started the script: running it again could repeat a change."""
    fleet.inject("POST */runCommand", "drop", times=1)
    with pytest.raises(Transient):
        classic.start_run(req())
    assert len(fleet.calls_matching("POST", "*/runcommand")) == 1


def test_a_throttled_action_post_is_retried(
    classic: AzureCompute, fleet: FleetServer, sleeps: Sleeps
) -> None:
    fleet.inject("POST */runCommand", "throttle", retryAfter=3, times=1)
    assert classic.start_run(req()).state == "succeeded"
    assert sleeps.delays == [3.0]


def test_a_failing_managed_put_is_retried_without_running_twice(
    compute: AzureCompute, fleet: FleetServer
) -> None:
    fleet.inject("PUT */runCommands/*", "error", status=503, retryAfter=0, times=1)
    compute.start_run(req())
    assert compute.get_run(VM, "r1").state == "succeeded"
    assert fleet.runs_started("vm-linux-disk") == 1


def test_stuck_action_run_keeps_the_vm_busy(settings: Settings, fleet: FleetServer) -> None:
    fleet.inject("POST */runCommand", "stuck", times=1)
    from autoremediation.azure import clients

    clients.compute_client(settings, SUB).virtual_machines.begin_run_command(
        "rg-demo", "vm-linux-disk", {"commandId": "RunShellScript", "script": ["x"]}, polling=False
    )
    classic = AzureCompute(settings, mode="action", polling_interval=0, retrier=Retrier(sleep=Sleeps()))
    with pytest.raises(Busy):
        classic.start_run(req())


def test_stuck_managed_run_ends_only_by_its_timeout(compute: AzureCompute, fleet: FleetServer) -> None:
    fleet.inject("PUT */runCommands/*", "stuck", times=1)
    compute.start_run(req())  # timeout_seconds defaults to 600
    fleet.advance(599)
    assert compute.get_run(VM, "r1").state == "running"
    fleet.advance(2)
    assert compute.get_run(VM, "r1").state == "timed-out"


def test_faults_declared_in_the_fleet_file_apply() -> None:
    spec = small_fleet(
        {"name": "vm1"}, faults=[{"route": "GET */virtualMachines/vm1", "kind": "error", "status": 500}]
    )
    with FleetServer(spec, sandbox=False) as fleet:
        settings = Settings(arm_endpoint=fleet.base_url, arm_ca_bundle=fleet.ca_bundle)
        compute = AzureCompute(settings, retrier=Retrier(attempts=2, sleep=Sleeps()))
        with pytest.raises(Transient) as caught:
            compute.get_vm(vm_id("vm1"))
        assert caught.value.status == 500


def test_network_faults_are_typed(network: AzureNetwork, fleet: FleetServer, sleeps: Sleeps) -> None:
    fleet.inject("GET */networkSecurityGroups/*", "throttle", retryAfter=4, times=1)
    assert network.get_nsg(nsg_id()).name == "nsg-demo"
    assert sleeps.delays == [4.0]
    fleet.inject("PUT */securityRules/*", "error", status=400)
    from autoremediation.ports import SecurityRule

    rule = SecurityRule(name="x", priority=300, direction="Inbound", access="Allow", protocol="Tcp")
    with pytest.raises(Permanent):
        network.put_security_rule(nsg_id(), rule)


def test_a_503_while_waiting_for_an_action_run_is_outcome_unknown_and_never_reposted(
    classic: AzureCompute, fleet: FleetServer
) -> None:
    """The POST was taken and the script started: a failed status read must not run it again."""
    fleet.inject("GET */operations/*", "error", status=503, retryAfter=0, times=1)
    with pytest.raises(RunOutcomeUnknown, match="outcome unknown") as caught:
        classic.start_run(req())
    assert caught.value.status == 503
    assert len(fleet.calls_matching("POST", "*/runcommand")) == 1
    assert fleet.runs_started("vm-linux-disk") == 1


def test_a_503_on_the_action_post_itself_is_retried_and_runs_once(
    classic: AzureCompute, fleet: FleetServer, sleeps: Sleeps
) -> None:
    fleet.inject("POST */runCommand", "error", status=503, retryAfter=0, times=1)
    assert classic.start_run(req()).state == "succeeded"
    assert len(fleet.calls_matching("POST", "*/runcommand")) == 2
    assert fleet.runs_started("vm-linux-disk") == 1
    assert len(sleeps.delays) == 1


def test_a_500_on_the_action_post_is_not_repeated(classic: AzureCompute, fleet: FleetServer) -> None:
    """Only 429, 409 and 503 prove the script did not start; a 500 may come after it did."""
    fleet.inject("POST */runCommand", "error", status=500, retryAfter=0, times=1)
    with pytest.raises(Transient):
        classic.start_run(req())
    assert len(fleet.calls_matching("POST", "*/runcommand")) == 1
