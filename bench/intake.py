"""Intake throughput (parse, route, create the job, enqueue), and an alert storm: one job per VM."""

from __future__ import annotations

import json
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

from localfleet.alerting import parse_time
from localfleet.fleetfile import load_fleet

from autoremediation.errors import NotFound
from autoremediation.planning import Planner
from autoremediation.ports import AlertRecord, AlertRuleRecord
from autoremediation.services import Services
from autoremediation.settings import Settings
from autoremediation.store.memory_queue import InProcessQueue, ManualClock

from .common import ROOT, Figure, azurite

SAMPLES = ROOT / "samples"
ALERT = SAMPLES / "disk-full-alert.json"
ALERT_GUID = "6a1f4e2c-9b3d-4c8e-a7f1-2d5b8c0e4f19"
VM_NAME = "vm-linux-disk"


DEMO = load_fleet()
RULE = next(r.id for r in DEMO.alert_rules if r.id.endswith("/disk-full-linux"))


class _AzureMonitor:
    """Azure Monitor in memory: the demo fleet's alerts plus each alert the benchmark makes up, so intake
    figures measure the engine, not a network (alert_confirmation_ms measures the real client)."""

    def __init__(self) -> None:
        self.alerts = {
            a.id.lower(): AlertRecord(
                a.id,
                a.rule,
                a.target,
                a.monitor_condition,
                fired_at=parse_time(a.fired),
                signal_type=a.signal_type or "",
                context=dict(a.context),
            )
            for a in DEMO.alerts
        }
        self.rules = {
            r.id.lower(): AlertRuleRecord(r.id, dict(r.custom_properties), r.enabled, tuple(r.scopes))
            for r in DEMO.alert_rules
        }

    def add(self, payload: Any, vm: str) -> None:
        essentials = payload["data"]["essentials"]
        group = f"/subscriptions/{DEMO.subscription}/resourceGroups/rg-demo"
        target = f"{group}/providers/Microsoft.Compute/virtualMachines/{vm}"
        # Azure Monitor records the alert's context as the sample carries it (the rule's query and rows).
        self.alerts[essentials["alertId"].lower()] = AlertRecord(
            essentials["alertId"],
            RULE,
            target,
            "Fired",
            fired_at=parse_time(essentials["firedDateTime"]),
            signal_type=essentials["signalType"],
            context={k: v for k, v in payload["data"]["alertContext"].items() if k != "properties"},
        )

    def get_alert(self, alert_id: str) -> AlertRecord:
        try:
            return self.alerts[alert_id.lower()]
        except KeyError:
            raise NotFound(alert_id) from None

    def get_rule(self, rule_id: str) -> AlertRuleRecord:
        return self.rules[rule_id.lower()]

    def change_state(self, alert_id: str, new_state: str, comment: str) -> None:
        return None


MONITOR = _AzureMonitor()


def _alert(alert_key: str, vm: str = VM_NAME) -> Any:
    text = ALERT.read_text(encoding="utf-8")
    payload = json.loads(text.replace(ALERT_GUID, alert_key).replace(VM_NAME, vm))
    MONITOR.add(payload, vm)
    return payload


def _services(settings: Settings, **parts: Any) -> Services:
    """The engine as deployed, with the demo deployment's trusted rules and clock, Azure Monitor in memory."""
    trusted = replace(settings, trusted_alert_rules=tuple(r.id for r in DEMO.alert_rules if r.deployed))
    return Services(trusted, alerts=MONITOR, clock=ManualClock(parse_time(DEMO.now or "")), **parts)


def _sqlite_services(folder: Path) -> Services:
    settings = replace(Settings(), sqlite_path=str(folder / "jobs.db"))
    return _services(settings, queue=InProcessQueue())


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
    services = _services(Settings(), queue=InProcessQueue())
    # No detector: NSG samples only note it. Alerts are confirmed through the in-memory Azure Monitor.
    planner = Planner(services.catalog, services.routes, gate=services.gate)
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
                rate = _rate(_services(settings), max(20, alerts // 4))
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
    out.append(_confirmation_figure(max(5, alerts // 10)))
    return out


def _confirmation_figure(rounds: int) -> Figure:
    """What confirming an alert costs over HTTPS with the real clients: the alert, then its rule."""
    from statistics import median

    from localfleet.server import FleetServer

    from autoremediation.azure import clients
    from autoremediation.azure.alerts import AzureAlerts
    from autoremediation.azure.compute import AzureCompute
    from autoremediation.provenance import AlertGate, ProvenanceSettings
    from autoremediation.signals import parse

    [signal] = parse(json.loads(ALERT.read_text(encoding="utf-8")))
    with FleetServer(sandbox=False) as fleet:
        settings = Settings(arm_endpoint=fleet.base_url, arm_ca_bundle=fleet.ca_bundle)
        clock = ManualClock(parse_time(DEMO.now or ""))
        gate = AlertGate(AzureAlerts(settings), ProvenanceSettings(trusted_rules=(RULE,)), clock)
        compute = AzureCompute(settings)
        vm = signal.targets[0].id
        gate.verdict(signal), compute.get_vm(vm)  # warm connections
        confirm, read_vm = [], []
        for _ in range(rounds):
            started = time.perf_counter()
            assert gate.verdict(signal).refusal is None
            confirm.append(time.perf_counter() - started)
            started = time.perf_counter()
            compute.get_vm(vm)
            read_vm.append(time.perf_counter() - started)
        clients.clear_cache()
    return Figure(
        "alert_confirmation_ms",
        round(median(confirm) * 1000, 2),
        round(median(read_vm) * 1000, 2),
        "-",
        f"median of {rounds} AlertGate.verdict on the sample alert (Alerts Management GET + alert rule GET, "
        "real SDK over HTTPS to the local fleet); baseline = one AzureCompute.get_vm in ms",
    )
