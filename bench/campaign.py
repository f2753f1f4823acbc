"""Campaign figures, measured in a child process (its peak RSS is the worker's) against the ARM emulator.

``python -m bench.campaign '{"vms": 1000, ...}'`` prints one JSON object of measurements.
"""

from __future__ import annotations

import json
import math
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

from .common import (
    FIXED,
    NOT_FIXED,
    ROOT,
    SUB,
    Emulator,
    Figure,
    emulator,
    memory_folder,
    vm_group,
    write_fleet,
)

_VM_IN_PATH = re.compile(
    r"/resourceGroups/([^/]+)/providers/Microsoft\.Compute/virtualMachines/([^/]+)(/.*)?$", re.I
)


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _rss_now_mb() -> float:
    return _status_mb("VmRSS")


def _restart_peak() -> bool:
    """Start the process's peak RSS again from now (Linux: ``clear_refs`` 5), so that what earlier
    figures of the same run held does not count as the campaign's; False where that is not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _peak_mb(restarted: bool) -> float:
    if restarted:
        return _status_mb("VmHWM")
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _services(fleet: Emulator, folder: Path, name: str, poll: float) -> Any:
    from autoremediation.azure.compute import AzureCompute
    from autoremediation.services import Services
    from autoremediation.settings import Settings
    from autoremediation.store.memory_queue import InProcessQueue
    from autoremediation.store.sqlite import SqliteJobStore

    settings = replace(
        Settings(arm_endpoint=fleet.base_url, arm_ca_bundle=fleet.ca_bundle),
        sqlite_path=str(folder / f"{name}.db"),
        subscription_id=SUB,
        poll_seconds=poll,
        breaker_threshold=1_000_000,  # the campaign's error budget is what is measured
    )
    return Services(
        settings,
        store=SqliteJobStore(settings.sqlite_path),
        queue=InProcessQueue(),
        compute=AzureCompute(settings, polling_interval=0),
    )


def _run(
    services: Any, group: str, concurrency: int, max_errors: int, workers: int
) -> tuple[dict[str, Any], float]:
    from autoremediation import campaigns
    from autoremediation.campaign_drive import drive

    started = time.perf_counter()
    status = campaigns.start_campaign(
        services,
        {
            "remediation": "free-disk-space",
            "targets": {"resourceGroup": group},
            "parameters": {"mountPoint": "/var"},
            "maxConcurrency": concurrency,
            "maxErrors": max_errors,
        },
        actor="bench",
    )
    start_seconds = time.perf_counter() - started
    status = {**drive(services, status["id"], workers=workers), "startSeconds": start_seconds}
    return status, time.perf_counter() - started


def _calls_by_vm(calls: list[tuple[str, str]], group: str) -> tuple[int, Counter[str], int, Counter[str]]:
    """(list calls, calls per VM besides status polls, status polls, run command PUTs per VM)."""
    lists = 0
    per_vm: Counter[str] = Counter()
    puts: Counter[str] = Counter()
    polls = 0
    for method, path in calls:
        match = _VM_IN_PATH.search(path)
        if match is None:
            if method == "GET" and path.lower().endswith(
                f"/resourcegroups/{group}/providers/microsoft.compute/virtualmachines"
            ):
                lists += 1
            continue
        if match[1].lower() != group.lower():
            continue
        vm, rest = match[2], (match[3] or "")
        if method == "PUT" and "/runcommands/" in rest.lower():
            puts[vm] += 1
        elif method == "GET" and "/runcommands/" in rest.lower() and puts[vm]:
            polls += 1  # a read of the run after it was created: a status poll
            continue
        per_vm[vm] += 1
    return lists, per_vm, polls, puts


def measure(config: dict[str, Any]) -> dict[str, Any]:
    from autoremediation.campaigns import next_poll_delay

    vms, concurrency, run_seconds = config["vms"], config["concurrency"], config["run_seconds"]
    serial_vms, fail_vms = config["serial_vms"], config["fail_vms"]
    fail_concurrency, fail_errors, workers = (
        config["fail_concurrency"],
        config["fail_errors"],
        config["workers"],
    )
    # The runner polls every poll_seconds; set to where next_poll_delay puts the first poll of a run
    # whose duration is known, so one poll usually finds it done.
    poll = next_poll_delay(0, 15, run_seconds)
    out: dict[str, Any] = {"poll_seconds": poll, "workers": workers}
    # The SQLite file on a RAM disk, as for intake_alerts_per_s: the figure is the engine's scheduling, not
    # this machine's disk (each write would wait for an fsync; in Azure the store is Table Storage).
    with tempfile.TemporaryDirectory(dir=memory_folder()) as tmp:
        folder = Path(tmp)
        fixed = {"durationSeconds": run_seconds, "result": FIXED}
        failed = {"durationSeconds": run_seconds, "exitCode": 1, "result": NOT_FIXED}
        fleet_file = write_fleet(
            folder,
            [
                vm_group("rg-bench", "vm-{index:05d}", vms, fixed),
                vm_group("rg-serial", "serial-{index:03d}", serial_vms, fixed),
                vm_group("rg-fail", "fail-{index:04d}", fail_vms, failed),
            ],
        )
        with emulator(fleet_file) as fleet:
            services = _services(fleet, folder, "bench", poll)
            _ = services.runner  # imports and clients made before the baseline RSS
            out["rss_before_mb"] = _rss_now_mb()
            restarted = _restart_peak()
            status, wall = _run(services, "rg-bench", concurrency, 0, workers)
            out["rss_peak_mb"] = _peak_mb(restarted)
            out.update(
                campaign_status=status["status"], campaign_counts=status["counts"], campaign_seconds=wall
            )
            out["start_seconds"] = status["startSeconds"]
            lists, per_vm, polls, puts = _calls_by_vm(fleet.calls(), "rg-bench")
            out["arm_calls_per_vm"] = (lists + sum(per_vm.values())) / vms
            out["arm_polls_per_vm"] = polls / vms
            out["vms_run_twice"] = sum(1 for n in puts.values() if n > 1)
            out["vms_run"] = len(puts)

            serial = _services(fleet, folder, "serial", poll)
            status, serial_wall = _run(serial, "rg-serial", 1, 0, 1)
            out["serial_seconds"] = serial_wall
            out["serial_status"] = status["status"]

            stopper = _services(fleet, folder, "fail", poll)
            status, _ = _run(stopper, "rg-fail", fail_concurrency, fail_errors, workers)
            _, _, _, fail_puts = _calls_by_vm(fleet.calls(), "rg-fail")
            out["fail_status"] = status["status"]
            out["fail_runs"] = len(fail_puts)
            out["fail_window"] = fail_errors + fail_concurrency
    out["ideal_seconds"] = math.ceil(vms / concurrency) * run_seconds
    return out


def _where() -> str:
    return "on a RAM disk" if memory_folder() else "on this machine's disk (no RAM disk here)"


def figures(config: dict[str, Any]) -> list[Figure]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.campaign", json.dumps(config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError("campaign benchmark failed: " + (done.stderr.strip().splitlines() or ["?"])[-1])
    m = json.loads(done.stdout.strip().splitlines()[-1])
    vms, c, run_s = config["vms"], config["concurrency"], config["run_seconds"]
    setup = (
        f"{vms} fleet VMs, simulated {run_s:g} s run command, concurrency {c}, {m['workers']} worker "
        f"threads, poll every {m['poll_seconds']:g} s, SQLite {_where()}, emulator in its own process"
    )
    serial_estimate = m["serial_seconds"] / config["serial_vms"] * vms
    complete = m["campaign_status"] == "completed" and m["campaign_counts"]["succeeded"] == vms
    return [
        Figure(
            "campaign_ratio_to_ideal",
            round(m["campaign_seconds"] / m["ideal_seconds"], 3),
            m["ideal_seconds"],
            "<= 1.10",
            f"{setup}; wall time from the request to the last job / (ceil(N/c) x run time) (baseline, s); "
            f"{m['start_seconds']:.1f} s of it to list the VMs and create the jobs",
            note="" if complete else f"campaign ended {m['campaign_status']}: {m['campaign_counts']}",
        ),
        Figure(
            "campaign_speedup_vs_serial",
            round(serial_estimate / m["campaign_seconds"], 2),
            round(serial_estimate, 1),
            "-",
            f"baseline = a concurrency-1 loop over {config['serial_vms']} VMs, extrapolated to {vms} (s)",
        ),
        Figure(
            "campaign_vms_run_twice",
            m["vms_run_twice"],
            0,
            "== 0",
            f"VMs with more than one run command PUT in the emulator's call log ({m['vms_run']} VMs ran)",
        ),
        Figure(
            "arm_calls_per_vm",
            round(m["arm_calls_per_vm"], 2),
            2,
            "<= 5",
            "emulator call log of the campaign, VM listing included, status polls excluded "
            f"({m['arm_polls_per_vm']:.2f} polls per VM); baseline = read the VM + PUT the run "
            "(+ DELETE the run command once its result is read)",
        ),
        Figure(
            "campaign_stop_within_window",
            int(m["fail_status"] == "stopped" and m["fail_runs"] <= m["fail_window"]),
            m["fail_window"],
            "== 1",
            f"{config['fail_vms']} VMs whose script fails, concurrency {config['fail_concurrency']}, "
            f"maxErrors {config['fail_errors']}: {m['fail_runs']} ran; "
            "1 when that is within maxErrors + concurrency (baseline)",
        ),
        Figure(
            "worker_peak_rss_mb",
            round(m["rss_peak_mb"], 1),
            round(m["rss_before_mb"], 1),
            "-",
            "peak RSS of the process that drove the campaign, from its start (the peak restarted there, "
            "so earlier figures of the run do not count); "
            "baseline = its RSS with the engine loaded, before the campaign",
        ),
    ]


if __name__ == "__main__":
    print(json.dumps(measure(json.loads(sys.argv[1]))))
