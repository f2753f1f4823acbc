"""Many VMs at once: run durations come from timestamps, not a thread or a sleep per VM."""

from __future__ import annotations

import threading

import pytest
from localfleet import FleetServer
from localfleet.fleetfile import CAMPAIGN_FLEET, load_fleet

from autoremediation.azure.compute import AzureCompute
from autoremediation.ports import RunRequest
from autoremediation.settings import Settings

pytestmark = pytest.mark.fleet


def test_the_campaign_fleet_ships_with_a_thousand_vms() -> None:
    fleet = load_fleet(CAMPAIGN_FLEET)
    assert len(fleet.vms) == 1000
    assert {vm.outcomes[0].duration_seconds for vm in fleet.vms} == {2.0}


def test_a_hundred_runs_end_together_when_their_duration_has_passed() -> None:
    spec = load_fleet(CAMPAIGN_FLEET)
    with FleetServer(spec, sandbox=False) as fleet:
        compute = AzureCompute(
            Settings(arm_endpoint=fleet.base_url, arm_ca_bundle=fleet.ca_bundle), polling_interval=0
        )
        vms = compute.list_vms(f"/subscriptions/{fleet.subscription}/resourceGroups/rg-campaign")
        assert len(vms) == 1000
        threads = threading.active_count()
        targets = vms[:100]
        for vm in targets:
            compute.start_run(
                RunRequest(
                    vm_id=vm.id,
                    run_name="campaign-1",
                    os_type="linux",
                    script="#!/bin/bash\n",
                    parameters={"DRY_RUN": "0"},
                )
            )
        assert threading.active_count() <= threads + 4  # request threads only, one per open connection
        assert {compute.get_run(vm.id, "campaign-1").state for vm in targets} == {"running"}
        fleet.advance(2)
        states = [compute.get_run(vm.id, "campaign-1") for vm in targets]
        assert {s.state for s in states} == {"succeeded"}
        assert {s.result["status"] for s in states if s.result} == {"fixed"}
