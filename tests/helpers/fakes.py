"""In-memory stand-ins for the Compute and Alerts ports, for unit tests of the core (runner, intake, ...)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from autoremediation.errors import NotFound
from autoremediation.ports import AlertRecord, AlertRuleRecord, RunRequest, RunStatus, SystemClock, VmFacts
from autoremediation.provenance import AlertGate, ProvenanceSettings, Verdict
from autoremediation.resources import normalize
from autoremediation.signals.model import Signal

SUB = "00000000-0000-0000-0000-00000000000a"


def vm_id(name: str, rg: str = "rg") -> str:
    return f"/subscriptions/{SUB}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/{name}"


def vm_facts(name: str, **kw: Any) -> VmFacts:
    values: dict[str, Any] = dict(
        id=vm_id(name),
        name=name,
        location="westeurope",
        os_type="linux",
        power_state="running",
        agent_ready=True,
        tags={"autoremediation": "enabled"},
    )
    values.update(kw)
    return VmFacts(**values)


def fixed_result(request: RunRequest) -> RunStatus:
    return RunStatus(
        state="succeeded",
        exit_code=0,
        output="cleaned\nREMEDIATION_RESULT {...}",
        result={"status": "fixed", "before": {"freePercent": 3}, "after": {"freePercent": 40}},
        started_at="2026-01-01T00:00:00+00:00",
        ended_at="2026-01-01T00:00:30+00:00",
    )


@dataclass
class FakeCompute:
    """VMs in a dict; a run becomes done after ``polls_until_done`` reads; errors can be queued."""

    vms: dict[str, VmFacts] = field(default_factory=dict)
    outcome: Callable[[RunRequest], RunStatus] = fixed_result
    polls_until_done: int = 1
    errors: dict[str, list[Exception]] = field(default_factory=dict)
    executions: Counter[str] = field(default_factory=Counter)
    requests: list[RunRequest] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    calls: Counter[str] = field(default_factory=Counter)
    _runs: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, facts: VmFacts) -> VmFacts:
        self.vms[normalize(facts.id)] = facts
        return facts

    def _maybe_fail(self, method: str) -> None:
        queued = self.errors.get(method)
        if queued:
            raise queued.pop(0)

    def get_vm(self, vm_id: str) -> VmFacts:
        self.calls["get_vm"] += 1
        self._maybe_fail("get_vm")
        try:
            return self.vms[normalize(vm_id)]
        except KeyError:
            raise NotFound(f"VM {vm_id} not found") from None

    def list_vms(self, scope: str) -> list[VmFacts]:
        return [v for k, v in self.vms.items() if k.startswith(normalize(scope) + "/")]

    def start_run(self, request: RunRequest) -> RunStatus:
        self.calls["start_run"] += 1
        self._maybe_fail("start_run")
        key = (normalize(request.vm_id), request.run_name)
        with self._lock:
            if key not in self._runs:  # a second dispatch of the same name re-attaches
                self._runs[key] = {"request": request, "polls": 0}
                self.executions[request.run_name] += 1
                self.requests.append(request)
        return RunStatus(state="running", started_at="2026-01-01T00:00:00+00:00")

    def get_run(self, vm_id: str, run_name: str) -> RunStatus:
        self.calls["get_run"] += 1
        self._maybe_fail("get_run")
        run = self._runs.get((normalize(vm_id), run_name))
        if run is None:
            raise NotFound(f"run command {run_name} not found")
        with self._lock:
            run["polls"] += 1
            if run["polls"] < self.polls_until_done:
                return RunStatus(state="running", started_at="2026-01-01T00:00:00+00:00")
        return self.outcome(run["request"])

    def cancel_run(self, vm_id: str, run_name: str) -> None:
        self._maybe_fail("cancel_run")
        self.cancelled.append(run_name)
        self._runs.pop((normalize(vm_id), run_name), None)


class TrustingGate(AlertGate):
    """A gate that takes every alert as Azure Monitor confirmed it, body custom properties included: for
    core tests about routing, intake and the runner, not about provenance (tests/unit/test_provenance.py)."""

    def __init__(self, max_jobs: int = 1000) -> None:
        super().__init__(None, ProvenanceSettings(max_jobs=max_jobs), SystemClock())

    def verdict(self, signal: Signal, *, fresh: bool = False) -> Verdict:
        return Verdict(signal)


@dataclass
class FakeAlerts:
    """``ports.Alerts`` in memory: what Azure Monitor records, and every state change asked of it."""

    alerts: dict[str, AlertRecord] = field(default_factory=dict)
    rules: dict[str, AlertRuleRecord] = field(default_factory=dict)
    changes: list[tuple[str, str, str]] = field(default_factory=list)
    failure: Exception | None = None
    reads: int = 0
    rule_reads: int = 0

    def add(self, record: AlertRecord, rule: AlertRuleRecord | None = None) -> None:
        self.alerts[record.id.lower()] = record
        if rule is not None:
            self.rules[rule.id.lower()] = rule

    def resolve(self, alert_id: str, at: str) -> None:
        from dataclasses import replace

        from autoremediation.provenance import parse_time

        record = self.alerts[alert_id.lower()]
        self.alerts[alert_id.lower()] = replace(
            record, monitor_condition="Resolved", resolved_at=parse_time(at)
        )

    def get_alert(self, alert_id: str) -> AlertRecord:
        self.reads += 1
        if self.failure is not None:
            raise self.failure
        try:
            return self.alerts[alert_id.lower()]
        except KeyError:
            raise NotFound(f"alert {alert_id}") from None

    def get_rule(self, rule_id: str) -> AlertRuleRecord:
        self.rule_reads += 1
        if self.failure is not None:
            raise self.failure
        try:
            return self.rules[rule_id.lower()]
        except KeyError:
            raise NotFound(f"rule {rule_id}") from None

    def change_state(self, alert_id: str, new_state: str, comment: str) -> None:
        if self.failure is not None:
            raise self.failure
        self.changes.append((alert_id, new_state, comment))


def alerts_from_fleet(spec: Any) -> FakeAlerts:
    """A FakeAlerts holding what a fleet file declares (the demo fleet: the alerts of samples/)."""
    from localfleet.alerting import parse_time

    fake = FakeAlerts()
    for rule in spec.alert_rules:
        fake.rules[rule.id.lower()] = AlertRuleRecord(
            rule.id, dict(rule.custom_properties), rule.enabled, tuple(rule.scopes)
        )
    for alert in spec.alerts:
        fake.alerts[alert.id.lower()] = AlertRecord(
            id=alert.id,
            rule_id=alert.rule,
            target_resource=alert.target,
            monitor_condition=alert.monitor_condition,
            alert_state=alert.state,
            fired_at=parse_time(alert.fired),
            resolved_at=parse_time(alert.resolved) if alert.resolved else None,
            monitor_service=alert.monitor_service
            or ("Log Analytics" if "scheduledqueryrules" in alert.rule.lower() else "Platform"),
            signal_type=alert.signal_type or "",
            context=dict(alert.context),
        )
    return fake
