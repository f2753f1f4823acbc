"""Intake throughput (parse, route, create the job, enqueue), and an alert storm: one job per VM."""

from __future__ import annotations

import json
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

from autoremediation.planning import Planner
from autoremediation.services import Services
from autoremediation.settings import Settings
from autoremediation.store.memory_queue import InProcessQueue

from .common import ROOT, Figure, azurite

SAMPLES = ROOT / "samples"
ALERT = SAMPLES / "disk-full-alert.json"
ALERT_GUID = "6a1f4e2c-9b3d-4c8e-a7f1-2d5b8c0e4f19"
VM_NAME = "vm-linux-disk"


def _alert(alert_key: str, vm: str = VM_NAME) -> Any:
    text = ALERT.read_text(encoding="utf-8")
    return json.loads(text.replace(ALERT_GUID, alert_key).replace(VM_NAME, vm))


def _sqlite_services(folder: Path) -> Services:
    settings = replace(Settings(), sqlite_path=str(folder / "jobs.db"))
    return Services(settings, queue=InProcessQueue())


def _rate(services: Services, alerts: int) -> float:
    payloads = [_alert(f"bench-{uuid.uuid4().hex}") for _ in range(alerts)]
    services.intake.submit(_alert("warm-up"), actor="bench")
    started = time.perf_counter()
    for payload in payloads:
        result = services.intake.submit(payload, actor="bench")
        assert result.jobs and result.jobs[0].created, "every distinct alert makes a job"
    return alerts / (time.perf_counter() - started)


def _parse_route_rate(rounds: int) -> tuple[float, float]:
    """(plans per second over samples/, JSON decodes per second of the same texts)."""
    services = Services(Settings(), queue=InProcessQueue())
    planner = Planner(services.catalog, services.routes)  # no detector: NSG samples only note it
    texts = [p.read_text(encoding="utf-8") for p in sorted(SAMPLES.glob("*.json"))]
    started = time.perf_counter()
    for _ in range(rounds):
        for text in texts:
            planner.plan_payload(json.loads(text))
    routed = rounds * len(texts) / (time.perf_counter() - started)
    started = time.perf_counter()
    for _ in range(rounds):
        for text in texts:
            json.loads(text)
    decoded = rounds * len(texts) / (time.perf_counter() - started)
    return routed, decoded


def figures(alerts: int, storm_alerts: int, storm_vms: int, with_azurite: bool = True) -> list[Figure]:
    out: list[Figure] = []
    routed, decoded = _parse_route_rate(max(1, alerts // 8))
    out.append(
        Figure(
            "parse_route_alerts_per_s",
            round(routed),
            round(decoded),
            "-",
            "every payload in samples/ planned (parse + route + static policy), no detectors; "
            "baseline = json.loads alone",
        )
    )
    with tempfile.TemporaryDirectory() as folder:
        sqlite_rate = _rate(_sqlite_services(Path(folder)), alerts)
    out.append(
        Figure(
            "intake_alerts_per_s",
            round(sqlite_rate, 1),
            round(routed),
            "-",
            f"{alerts} distinct disk-full alerts through Intake.submit on SQLite + in-process queue; "
            "baseline = parse + route alone",
        )
    )
    if with_azurite:
        with azurite() as connection:
            if connection is None:
                out.append(
                    Figure(
                        "intake_alerts_per_s_azurite",
                        None,
                        round(sqlite_rate, 1),
                        "-",
                        "Azurite not installed (npm ci)",
                        note="skipped",
                    )
                )
            else:
                suffix = uuid.uuid4().hex[:8]
                settings = replace(
                    Settings(),
                    job_store="table",
                    storage_connection_string=connection,
                    queue_name=f"bench-{suffix}",
                    table_prefix=f"bench{suffix}",
                )
                rate = _rate(Services(settings), max(20, alerts // 4))
                out.append(
                    Figure(
                        "intake_alerts_per_s_azurite",
                        round(rate, 1),
                        round(sqlite_rate, 1),
                        "-",
                        f"{max(20, alerts // 4)} distinct alerts on Table Storage + Storage Queue (Azurite, "
                        "in memory); baseline = the SQLite figure",
                    )
                )
    with tempfile.TemporaryDirectory() as folder:
        services = _sqlite_services(Path(folder))
        per_vm = storm_alerts // storm_vms
        payloads = [_alert(f"storm-{v}", f"vm-{v:04d}") for v in range(storm_vms)]
        started = time.perf_counter()
        for _ in range(per_vm):
            for payload in payloads:  # redeliveries of each VM's alert, interleaved like a real storm
                services.intake.submit(payload, actor="bench")
        seconds = time.perf_counter() - started
        made = len(services.store.list())
    out.append(
        Figure(
            f"storm_{storm_alerts}_alerts_{storm_vms}_vms_jobs",
            made,
            storm_vms,
            f"== {storm_vms}",
            f"{per_vm} deliveries of one alert per VM over {storm_vms} VMs; baseline = VMs",
        )
    )
    out.append(
        Figure(
            "storm_seconds",
            round(seconds, 2),
            round(storm_alerts / sqlite_rate, 2),
            "<= baseline",
            "wall time of the storm; baseline = the same count of distinct alerts at intake_alerts_per_s",
        )
    )
    return out
