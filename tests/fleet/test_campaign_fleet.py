"""A campaign over 30 fleet VMs: the real SDK client over HTTPS to the ARM emulator, SQLite, the real runner.

The engine's clock and the fleet's clock move together when the driver waits, so the runs' declared
durations pass without sleeping, and the fleet's own record of each run (start and end) shows how many
scripts ran at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from localfleet.server import FleetServer

from autoremediation import campaigns
from autoremediation.azure.calls import Retrier
from autoremediation.azure.compute import AzureCompute
from autoremediation.campaign_drive import drive
from autoremediation.services import Services
from autoremediation.settings import Settings
from autoremediation.store.memory_queue import InProcessQueue, ManualClock
from autoremediation.store.sqlite import SqliteJobStore

from .conftest import SUB, Sleeps, small_fleet

pytestmark = pytest.mark.fleet

FIXED = {"status": "fixed", "before": {"freePercent": 4}, "after": {"freePercent": 41}}
NOT_FIXED = {"status": "not-fixed", "before": {"freePercent": 4}, "after": {"freePercent": 4}}
OPTED_IN = {"autoremediation": "enabled", "ring": "canary"}


def _fleet_spec() -> Any:
    return small_fleet(
        {
            "name": "web-{index:02d}",
            "count": 24,
            "tags": OPTED_IN,
            "outcomes": [{"durationSeconds": 30, "result": FIXED}],
        },
        {
            "name": "bad-{index:02d}",
            "count": 4,
            "tags": OPTED_IN,
            "outcomes": [{"durationSeconds": 30, "exitCode": 1, "result": NOT_FIXED}],
        },
        {"name": "other-{index:02d}", "count": 2, "tags": {"autoremediation": "enabled"}},
    )


@pytest.fixture
def campaign_fleet() -> Iterator[FleetServer]:
    with FleetServer(_fleet_spec(), sandbox=False) as server:
        yield server


def _services(fleet: FleetServer, tmp_path: Path, clock: ManualClock) -> Services:
    settings = replace(
        Settings(arm_endpoint=fleet.base_url, arm_ca_bundle=fleet.ca_bundle),
        sqlite_path=str(tmp_path / "jobs.db"),
        subscription_id=SUB,
        poll_seconds=5,
        breaker_threshold=1000,
    )
    compute = AzureCompute(settings, polling_interval=0, retrier=Retrier(sleep=Sleeps()))
    return Services(
        settings,
        clock=clock,
        store=SqliteJobStore(settings.sqlite_path),
        queue=InProcessQueue(clock),
        compute=compute,
    )


def _peak_overlap(fleet: FleetServer) -> tuple[int, int]:
    """(runs started, most runs going at one moment) from the fleet's own record."""
    edges: list[tuple[float, int]] = []
    runs = 0
    with fleet.fleet.lock:
        for vm in fleet.fleet.vms.values():
            for run in [*vm.managed.values(), *vm.deleted]:
                runs += 1
                edges.append((run.started, 1))
                edges.append((run.ended if run.ended is not None else float("inf"), -1))
    level = peak = 0
    for _, step in sorted(edges):  # at a tie an end (-1) sorts before a start: back-to-back is not overlap
        level += step
        peak = max(peak, level)
    return runs, peak


def test_a_campaign_over_thirty_fleet_vms(campaign_fleet: FleetServer, tmp_path: Path) -> None:
    clock = ManualClock()
    services = _services(campaign_fleet, tmp_path, clock)

    def wait(seconds: float) -> None:
        clock.advance(seconds)
        campaign_fleet.advance(seconds)

    started = campaigns.start_campaign(
        services,
        {
            "remediation": "free-disk-space",
            "targets": {"resourceGroup": "rg-demo", "tag": "ring=canary"},
            "parameters": {"mountPoint": "/var"},
            "maxConcurrency": "20%",
            "maxErrors": 4,
        },
        actor="operator",
    )
    assert (started["targetCount"], started["concurrency"], started["errorLimit"]) == (28, 6, 4)
    seen: list[int] = []
    status = drive(
        services, started["id"], wait=wait, on_status=lambda s: seen.append(s["counts"]["inFlight"])
    )

    assert status["status"] == "completed"
    assert status["counts"]["succeeded"] == 24
    assert status["counts"]["failed"] == 4
    assert max(seen) == 6
    runs, peak = _peak_overlap(campaign_fleet)
    assert runs == 28
    assert peak == 6
    names = {
        p.rsplit("/virtualMachines/", 1)[1].split("/")[0]
        for p in campaign_fleet.calls_matching("PUT", "*/runCommands/*")
    }
    assert len(names) == 28 and not any(n.startswith("other-") for n in names)
    for name in names:
        assert campaign_fleet.runs_started(name) == 1
    # One list call resolved the targets: no per-VM lookups to find them.
    assert (
        len(
            campaign_fleet.calls_matching(
                "GET", "*/resourceGroups/rg-demo/providers/Microsoft.Compute/virtualMachines"
            )
        )
        == 1
    )


def test_failures_past_the_budget_stop_the_campaign_on_the_fleet(
    campaign_fleet: FleetServer, tmp_path: Path
) -> None:
    clock = ManualClock()
    services = _services(campaign_fleet, tmp_path, clock)

    def wait(seconds: float) -> None:
        clock.advance(seconds)
        campaign_fleet.advance(seconds)

    started = campaigns.start_campaign(
        services,
        {
            "remediation": "free-disk-space",
            "targets": {
                "vmIds": [campaign_fleet.vm_id(f"bad-{i:02d}") for i in range(1, 5)]
                + [campaign_fleet.vm_id(f"web-{i:02d}") for i in range(1, 11)]
            },
            "maxConcurrency": 2,
            "maxErrors": 1,
        },
        actor="operator",
    )
    status = drive(services, started["id"], wait=wait)

    assert status["status"] == "stopped"
    runs, peak = _peak_overlap(campaign_fleet)
    assert peak <= 2
    # Targets run in id order, so the four bad VMs go first; the second failure stops the campaign
    # with at most one more run of that window under way.
    assert 2 <= runs <= 3
    assert status["counts"]["cancelled"] == 14 - runs
    assert all(campaign_fleet.runs_started(f"web-{i:02d}") == 0 for i in range(1, 11))
