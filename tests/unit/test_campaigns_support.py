"""Shared by the campaign tests (no tests here): the engine on SQLite, an in-process queue, a fake Compute."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from autoremediation.ports import RunRequest, RunStatus
from autoremediation.services import Services
from autoremediation.settings import Settings
from autoremediation.store.memory_queue import InProcessQueue, ManualClock
from autoremediation.store.sqlite import SqliteJobStore
from tests.helpers.catalogs import make_catalog
from tests.helpers.fakes import SUB, FakeCompute, fixed_result, vm_facts

RG = f"/subscriptions/{SUB}/resourceGroups/rg"


class Crash(BaseException):
    """A driver killed mid-step: not an Exception, so nothing in the engine can swallow it."""


def failed_result(request: RunRequest) -> RunStatus:
    return RunStatus(
        state="failed",
        exit_code=1,
        result={"status": "not-fixed", "before": {"freePercent": 3}, "after": {"freePercent": 3}},
        started_at="2026-01-01T00:00:00+00:00",
        ended_at="2026-01-01T00:00:30+00:00",
    )


@dataclass
class TrackingCompute(FakeCompute):
    """Records how many scripts run at once, and which VMs fail; can crash after the n-th start."""

    failing: set[str] = field(default_factory=set)
    running: set[str] = field(default_factory=set)
    peak: int = 0
    crash_on_start: int | None = None
    starts: int = 0
    _track: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.outcome = self._outcome

    def _outcome(self, request: RunRequest) -> RunStatus:
        name = request.vm_id.rsplit("/", 1)[-1]
        return failed_result(request) if name in self.failing else fixed_result(request)

    def start_run(self, request: RunRequest) -> RunStatus:
        status = super().start_run(request)
        with self._track:
            self.starts += 1
            self.running.add(request.run_name)
            self.peak = max(self.peak, len(self.running))
            crash = self.crash_on_start is not None and self.starts == self.crash_on_start
        if crash:
            # The script has started on the VM; the worker dies before it records that.
            raise Crash("worker killed after the run command was created")
        # No start time of its own: the runner stamps the dispatch with its clock, whichever it is.
        return replace(status, started_at=None)

    def get_run(self, vm_id: str, run_name: str) -> RunStatus:
        status = super().get_run(vm_id, run_name)
        if status.done:
            with self._track:
                self.running.discard(run_name)
        return status

    def runs_per_vm(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for request in self.requests:
            counts[request.vm_id] = counts.get(request.vm_id, 0) + 1
        return counts


def vm_names(count: int) -> list[str]:
    return [f"vm{index:03d}" for index in range(count)]


def make_compute(count: int, **kw: Any) -> TrackingCompute:
    compute = TrackingCompute(polls_until_done=2, **kw)
    for name in vm_names(count):
        compute.add(vm_facts(name))
    return compute


class CampaignWorld:
    def __init__(self, tmp_path: Path, compute: TrackingCompute, **settings_kw: Any) -> None:
        self.tmp_path = tmp_path
        self.root = make_catalog(tmp_path / "catalog")
        self.compute = compute
        values: dict[str, Any] = {
            "catalog_dir": str(self.root),
            "poll_seconds": 10,
            "breaker_threshold": 100_000,  # the campaign's error budget is under test, not the breaker
            "subscription_id": SUB,
        }
        self.settings = replace(Settings(), **{**values, **settings_kw})
        self.clock = ManualClock()
        self.services = self.new_services()

    def new_services(self) -> Services:
        """A fresh process: new store connection, empty in-process queue, same VMs and database."""
        clock = ManualClock(self.clock.now())
        self.clock = clock
        network: Any = object()  # no test here reaches a control-plane step
        return Services(
            self.settings,
            clock=clock,
            store=SqliteJobStore(str(self.tmp_path / "jobs.db")),
            queue=InProcessQueue(clock),
            compute=self.compute,
            network=network,
        )


def request(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "remediation": "free-disk-space",
        "targets": {"resourceGroup": "rg"},
        "parameters": {"mountPoint": "/var"},
        "maxConcurrency": 4,
        "maxErrors": 2,
    }
    data.update(overrides)
    return data
