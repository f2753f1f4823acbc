"""Many Function instances on one queue, killed at random: no VM runs its script twice, no job is lost.

Jobs from one operator request, each on a VM of its own. Four worker processes (``bench.fleetworkers``:
what the queue trigger does, in a loop) share Azurite's Table store and Storage Queue and the ARM
emulator, nothing else. Every job's message is delivered twice, and a worker is killed with SIGKILL
(mid-step, mid-PUT, wherever it is) and replaced at the start and as 15, 30 and 45 % of the jobs have
ended. The emulator counts the scripts it really started on each VM.
"""

from __future__ import annotations

import random
import time
import uuid
from pathlib import Path

import pytest

from autoremediation import jobs
from autoremediation.services import Services
from autoremediation.settings import Settings
from bench.common import FIXED, SUB, emulator, vm_group, write_fleet
from bench.fleetworkers import pool, worker_env

pytestmark = [pytest.mark.azurite, pytest.mark.fleet, pytest.mark.slow]

VMS = 60
WORKERS = 4
DEADLINE_SECONDS = 300
KILL_AT = (0.0, 0.15, 0.3, 0.45)  # a worker dies when this share of the jobs has ended


def test_workers_killed_at_random_run_every_vm_once_and_lose_no_job(
    azurite_connection_string: str, tmp_path: Path
) -> None:
    fleet_file = write_fleet(
        tmp_path, [vm_group("rg-many", "vm-{index:03d}", VMS, {"durationSeconds": 0.5, "result": FIXED})]
    )
    with emulator(fleet_file) as fleet:
        env = worker_env(
            storage=azurite_connection_string,
            arm_endpoint=fleet.base_url,
            ca_bundle=fleet.ca_bundle,
            subscription=SUB,
            name=f"many{uuid.uuid4().hex[:8]}",
            extra={"REMEDIATION_POLL_SECONDS": "0.5"},
        )
        services = Services(Settings.from_env(env))
        targets = [
            f"/subscriptions/{SUB}/resourceGroups/rg-many/providers/Microsoft.Compute/virtualMachines/vm-{i:03d}"
            for i in range(1, VMS + 1)  # the fleet numbers VMs from 1
        ]
        request: dict[str, object] = {
            "remediation": "free-disk-space",
            "parameters": {"mountPoint": "/var"},
            "dryRun": False,
        }
        request.update(targets=targets, requestId=f"many-{uuid.uuid4().hex}", reason="many workers")
        made = services.intake.submit(request, actor="test")
        ids = [a.job.id for a in made.jobs]
        assert len(ids) == VMS
        for job_id in ids:
            services.queue.send(job_id)  # every message delivered twice
        rng = random.Random(20261129)
        started = time.monotonic()
        with pool(env, tmp_path, processes=WORKERS) as workers:
            while True:
                found = [services.store.get(job_id) for job_id in ids]
                ended = sum(1 for j in found if j.terminal)
                while workers.killed < len(KILL_AT) and ended >= KILL_AT[workers.killed] * VMS:
                    workers.kill_one(rng.randrange(WORKERS))
                if ended == VMS:
                    break
                elapsed = time.monotonic() - started
                assert elapsed < DEADLINE_SECONDS, f"{ended} of {VMS} jobs ended after {elapsed:.0f} s"
                time.sleep(0.25)  # polling the store for progress, not timing anything
        runs = fleet.admin("GET", "/_admin/runs")["runsStarted"]

    assert workers.killed == 4
    # Each job's end first: a job that ended without its VM's script shows its state and reason.
    unsucceeded = [(j.id, j.status, j.history[-1].reason) for j in found if j.status != jobs.SUCCEEDED]
    assert unsucceeded == []
    assert len(runs) == VMS, f"every VM ran its script: {sorted({t[-6:] for t in targets} - set(runs))}"
    assert [name for name, count in runs.items() if count > 1] == [], "a VM ran its script twice"
    assert all(j.history[-1].reason for j in found)
