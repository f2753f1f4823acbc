"""Scale figures: a campaign under ARM's throttling driven by several worker processes, many workers
killed at random, and what one successful job costs in storage operations, executions and ARM calls.

Everything runs as it would in Azure, scaled down: worker processes stand in for Function instances
(``bench.fleetworkers``), Azurite for Table and Queue Storage, the ARM emulator (in its own process) for
ARM with its token buckets on. ``python -m bench.scale '{...}'`` prints one JSON object of measurements;
with ``BENCH_STORAGE_DETAIL=1`` the storage figure also counts requests per table and queue.
"""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import yaml

from .common import FIXED, ROOT, SUB, Emulator, Figure, azurite, emulator, vm_group
from .fleetworkers import pool, worker_env

KINDS = ("reads", "writes", "deletes")
ARM = {"reads": (250, 25.0), "writes": (200, 10.0), "deletes": (200, 10.0)}


def _fleet(
    folder: Path, groups: list[dict[str, Any]], scale: float
) -> tuple[Path, dict[str, tuple[int, float]]]:
    limits = {kind: (size, refill * scale) for kind, (size, refill) in ARM.items()}
    doc = {
        "subscriptions": [{"id": SUB, "resourceGroups": groups}],
        "throttling": {k: {"capacity": s, "refillPerSecond": r} for k, (s, r) in limits.items()},
    }
    path = folder / "fleet.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path, limits


def _limits_setting(limits: dict[str, tuple[int, float]]) -> str:
    return ",".join(f"{kind}={size}/{refill:g}" for kind, (size, refill) in limits.items())


def _throttling(fleet: Emulator) -> dict[str, dict[str, int]]:
    data: dict[str, dict[str, int]] = fleet.admin("GET", "/_admin/throttling")
    return data


def _wait_until(done: Any, deadline_seconds: float, what: str) -> float:
    started = time.monotonic()
    while not done():
        if time.monotonic() - started > deadline_seconds:
            raise RuntimeError(f"{what} did not end within {deadline_seconds:.0f} s")
        time.sleep(0.2)  # polling the store for the end, not timing anything
    return time.monotonic() - started


def throttled_campaign(config: dict[str, Any], storage: str, folder: Path) -> dict[str, Any]:
    """A campaign of ``vms`` VMs; ARM's buckets scaled by ``scale``; ``processes`` workers."""
    from autoremediation import campaigns
    from autoremediation.services import Services
    from autoremediation.settings import Settings

    vms, concurrency, run_seconds = config["vms"], config["concurrency"], config["run_seconds"]
    group = vm_group("rg-throttled", "vm-{index:05d}", vms, {"durationSeconds": run_seconds, "result": FIXED})
    fleet_file, limits = _fleet(folder, [group], config["scale"])
    with emulator(fleet_file) as fleet:
        env = worker_env(
            storage=storage,
            arm_endpoint=fleet.base_url,
            ca_bundle=fleet.ca_bundle,
            subscription=SUB,
            name=f"thr{uuid.uuid4().hex[:8]}",
            extra={"REMEDIATION_ARM_LIMITS": _limits_setting(limits), "REMEDIATION_POLL_SECONDS": "1"},
        )
        services = Services(Settings.from_env(env))
        with pool(env, folder / "thr", config["processes"], config["threads"]) as workers:
            _wait_until(workers.ready, 120, "the worker processes' start")
            before = _throttling(fleet)
            counted = dict(config.get("_parent_counts") or {}).get("storage", 0)
            clock = time.monotonic()
            started = campaigns.start_campaign(
                services,
                {
                    "remediation": "free-disk-space",
                    "targets": {"resourceGroup": "rg-throttled"},
                    "parameters": {"mountPoint": "/var"},
                    "maxConcurrency": concurrency,
                    "maxErrors": "100%",
                },
                actor="bench",
            )
            # What the process that started the campaign spent: listing the VMs, creating the jobs,
            # releasing the first ones. Watching for the end below is the bench's own, not the jobs' cost.
            parent_ops = dict(config.get("_parent_counts") or {}).get("storage", 0) - counted
            start_seconds = time.monotonic() - clock
            _wait_until(
                # One point read of the campaign record: a status scan of every job each time would
                # load the storage emulator the workers are measured on.
                lambda: services.store.get_campaign(started["id"]).get("status") in campaigns.FINAL,
                config["deadline"],
                "the throttled campaign",
            )
            seconds = time.monotonic() - clock
        after = _throttling(fleet)
        status = campaigns.campaign_status(services, started["id"])
        runs = fleet.admin("GET", "/_admin/runs")["runsStarted"]
    used = {k: after["taken"][k] - before["taken"][k] for k in KINDS}
    refused = sum(after["refused"][k] - before["refused"][k] for k in KINDS)
    # The fastest any client could go: each kind's requests past a full bucket at its refill rate,
    # and the campaign's waves of ``concurrency`` runs.
    bucket_bounds = {k: max(0.0, used[k] - limits[k][0]) / limits[k][1] for k in KINDS}
    wave_bound = math.ceil(vms / concurrency) * run_seconds
    bound = max([wave_bound, *bucket_bounds.values()])
    return {
        "seconds": seconds,
        "bound": bound,
        "binding": max(bucket_bounds, key=lambda k: bucket_bounds[k])
        if bound > wave_bound
        else "concurrency",
        "used": used,
        "refused": refused,
        "status": status["status"],
        "succeeded": status["counts"]["succeeded"],
        "twice": sum(1 for n in runs.values() if n > 1),
        "limits": {k: list(v) for k, v in limits.items()},
        "worker_storage_ops": workers.totals.get("storage", 0),
        "worker_steps": workers.totals.get("steps", 0),
        "worker_errors": workers.totals.get("errors", 0),
        "worker_totals": workers.totals,
        "parent_storage_ops": parent_ops,
        "start_seconds": start_seconds,
    }


def many_workers(config: dict[str, Any], storage: str, folder: Path) -> dict[str, Any]:
    """``jobs`` jobs on as many VMs, every message twice, workers SIGKILLed and replaced as jobs end."""
    from autoremediation.services import Services
    from autoremediation.settings import Settings

    count = config["jobs"]
    group = vm_group(
        "rg-many", "vm-{index:04d}", count, {"durationSeconds": config["run_seconds"], "result": FIXED}
    )
    fleet_file, _ = _fleet(folder, [group], 1000.0)  # throttling far above what this run sends
    with emulator(fleet_file) as fleet:
        env = worker_env(
            storage=storage,
            arm_endpoint=fleet.base_url,
            ca_bundle=fleet.ca_bundle,
            subscription=SUB,
            name=f"many{uuid.uuid4().hex[:8]}",
            extra={"REMEDIATION_POLL_SECONDS": "1", "REMEDIATION_ARM_LIMITS": "off"},
        )
        services = Services(Settings.from_env(env))
        ids: list[str] = []
        targets = [
            f"/subscriptions/{SUB}/resourceGroups/rg-many/providers/Microsoft.Compute/virtualMachines/vm-{i:04d}"
            for i in range(1, count + 1)  # the fleet numbers VMs from 1
        ]
        for first in range(0, count, 50):
            made = services.intake.submit(
                {
                    "remediation": "free-disk-space",
                    "targets": targets[first : first + 50],
                    "parameters": {"mountPoint": "/var"},
                    "requestId": f"bench-{uuid.uuid4().hex}",
                    "reason": "many workers",
                    "dryRun": False,
                },
                actor="bench",
            )
            ids += [a.job.id for a in made.jobs]
        for job_id in ids:
            services.queue.send(job_id)  # a duplicate of every message
        rng = random.Random(20261129)
        kill_at = [i / (config["kills"] + 1) for i in range(config["kills"])]
        with pool(env, folder / "many", config["processes"], config["threads"]) as workers:

            def ended() -> bool:
                done = sum(1 for job_id in ids if services.store.get(job_id).terminal)
                while workers.killed < len(kill_at) and done >= kill_at[workers.killed] * count:
                    workers.kill_one(rng.randrange(config["processes"]))
                return done == count

            seconds = _wait_until(ended, config["deadline"], "the many-workers run")
            killed = workers.killed
        final = [services.store.get(job_id) for job_id in ids]
        runs = fleet.admin("GET", "/_admin/runs")["runsStarted"]
    return {
        "seconds": seconds,
        "jobs": count,
        "killed": killed,
        "twice": sum(1 for n in runs.values() if n > 1),
        "lost": sum(1 for job in final if not job.terminal or not job.history[-1].reason),
        "succeeded": sum(1 for job in final if job.status == "succeeded"),
    }


def measure(config: dict[str, Any]) -> dict[str, Any]:
    import threading

    from .fleetworkers import count_storage_requests

    parent = {"storage": 0}
    count_storage_requests(parent, threading.Lock())
    with azurite() as storage, tempfile.TemporaryDirectory() as tmp:
        if storage is None:
            raise RuntimeError("Azurite is not installed (npm ci)")
        folder = Path(tmp)
        throttled = throttled_campaign({**config["throttled"], "_parent_counts": parent}, storage, folder)
        return {"throttled": throttled, "many": many_workers(config["many"], storage, folder)}


def figures(config: dict[str, Any]) -> list[Figure]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.scale", json.dumps(config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError("scale benchmark failed: " + (done.stderr.strip().splitlines() or ["?"])[-1])
    m = json.loads(done.stdout.strip().splitlines()[-1])
    t, many = m["throttled"], m["many"]
    tc, mc = config["throttled"], config["many"]
    limits = ", ".join(f"{k} {s}/{r:g} per s" for k, (s, r) in t["limits"].items())
    setup = (
        f"{tc['vms']} VMs, concurrency {tc['concurrency']}, {tc['run_seconds']:g} s runs, "
        f"{tc['processes']} worker processes x {tc['threads']} threads on Azurite, ARM buckets {limits} "
        f"(ARM's sizes, refill x{tc['scale']:g})"
    )
    jobs_done = max(1, t["succeeded"])
    storage_ops = t["worker_storage_ops"] + t["parent_storage_ops"]
    arm_calls = sum(t["used"].values())
    detail = {
        k.removeprefix("storage "): v for k, v in t["worker_totals"].items() if k.startswith("storage ")
    }
    return [
        Figure(
            "storage_ops_per_job",
            round(storage_ops / jobs_done, 1),
            None,
            "<= 12",
            f"{setup}; Table and Queue requests (the storage bill's unit) of the workers and of the process "
            f"that listed the VMs and created the jobs, per succeeded job ({t['succeeded']})"
            + (f"; by table/queue: {detail}" if detail else ""),
        ),
        Figure(
            "executions_per_job",
            round(t["worker_steps"] / jobs_done, 2),
            None,
            "-",
            f"{setup}; queue-trigger executions (each advances its job while a step is due now, and "
            "when it ends a campaign job, the job that one releases; duplicates included) per succeeded job",
        ),
        Figure(
            "arm_calls_per_job",
            round(arm_calls / jobs_done, 2),
            None,
            "-",
            f"{setup}; ARM requests the emulator counted (reads, writes, deletes) per succeeded job: "
            f"{t['used']}",
        ),
        Figure(
            "throttled_campaign_ratio",
            round(t["seconds"] / t["bound"], 3) if t["bound"] else None,
            round(t["bound"], 1),
            "<= 1.10",
            f"{setup}; wall time / the bound the buckets and the concurrency set for the requests made "
            f"({t['binding']} bound; used {t['used']}); {t['start_seconds']:.1f} s of it to list the VMs, "
            "create the jobs and release the first",
            note="" if t["status"] == "completed" else f"campaign ended {t['status']}",
        ),
        Figure(
            "throttled_campaign_429s",
            t["refused"],
            0,
            "== 0",
            f"{setup}; requests the emulator answered 429 during the campaign",
        ),
        Figure(
            "multiprocess_vms_run_twice",
            many["twice"],
            0,
            "== 0",
            f"{mc['jobs']} jobs, every message twice, {mc['processes']} worker processes on Azurite, "
            f"{many['killed']} killed with SIGKILL at random points and replaced; VMs whose script the "
            "emulator started more than once",
        ),
        Figure(
            "multiprocess_jobs_lost",
            many["lost"],
            0,
            "== 0",
            f"the same run: jobs not ended, or ended without a reason ({many['succeeded']} succeeded "
            f"in {many['seconds']:.0f} s)",
        ),
    ]


if __name__ == "__main__":
    print(json.dumps(measure(json.loads(sys.argv[1]))))
