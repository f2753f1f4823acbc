"""Payload -> signals -> findings -> decisions: what ``remediate plan`` shows and intake acts on.

Nothing here executes anything. Detectors (conditions that need a look at Azure) are passed in as a
callable, so the planner stays pure and the CLI or the Function App chooses local fleet or Azure.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .catalog import ALERT, OPERATOR, Catalog
from .errors import SignalError
from .frozen import build
from .policy import Decision, plan_decision
from .ports import AlertRecord
from .provenance import DEFAULT_MAX_JOBS, AlertGate, fan_out_refusal, target_refusal
from .resources import normalize
from .routing import Finding, Route, RouteTable, route_table
from .signals import parse
from .signals.alerts import is_alert, read_alert_claim
from .signals.model import Signal
from .signals.refs import vm_of

# (detector name, signal) -> (findings, notes). Raises RemediationError when Azure cannot be read.
Detect = Callable[[str, Signal], tuple[Sequence[Finding], Sequence[str]]]


@dataclass(frozen=True)
class Plan:
    finding: Finding
    decision: Decision
    # Runtime guards this plan could not evaluate (see ``preview``); None: only static checks were asked.
    unchecked: tuple[str, ...] | None = None
    unchecked_why: str = ""

    @property
    def idempotency_key(self) -> str:
        return idempotency_key(self.finding)

    def to_dict(self) -> dict[str, Any]:
        shown = (
            dict(self.decision.parameters)
            if self.decision.action != "skip"
            else dict(self.finding.parameters)
        )
        return {
            "signal": self.finding.signal.id,
            "condition": self.finding.condition,
            "target": self.finding.target.id,
            "remediation": self.finding.remediation,
            "parameters": shown,
            "decision": self.decision.action,
            "reason": self.decision.reason,
            "guard": self.decision.guard,
            "route": self.finding.route,
            # What the detector saw (for nsg-lockout: the blocking rule, where it sits, what was unsure).
            "evidence": dict(self.finding.evidence),
            **(
                {}
                if self.unchecked is None
                else {"unchecked": list(self.unchecked), "uncheckedWhy": self.unchecked_why or None}
            ),
        }


@dataclass(frozen=True)
class Note:
    signal: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"signal": self.signal, "message": self.message}


@dataclass(frozen=True)
class PlanReport:
    signals: tuple[Signal, ...] = ()
    plans: tuple[Plan, ...] = ()
    notes: tuple[Note, ...] = field(default_factory=tuple)
    refused: tuple[str, ...] = ()  # ids of signals that may make no job (and may cancel none)
    # Alert signals (as delivered) confirmed on this process's recent read of the alert, not a fresh
    # one (``Verdict.remembered``): intake admits them only for jobs that exist, else plans them afresh.
    remembered: tuple[Signal, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "signals": [s.summary() for s in self.signals],
            "plans": [p.to_dict() for p in self.plans],
            "notes": [n.to_dict() for n in self.notes],
        }

    def __add__(self, other: PlanReport) -> PlanReport:
        return PlanReport(
            self.signals + other.signals,
            self.plans + other.plans,
            self.notes + other.notes,
            self.refused + other.refused,
            self.remembered + other.remembered,
        )


# One ARM write reaches the app twice: as an Event Grid resource event and as an activity-log alert.
# Both carry the write's correlation id; without one, intake coalesces on the written resource within
# this window (an activity-log alert follows its write within minutes).
CHANGE_WINDOW_SECONDS = 900
CHANGE_ROUTE_PREFIX = "detector:"


def change_of(signal: Signal) -> dict[str, str] | None:
    """The ARM write a resource-write signal reports: its correlation id, the written resource and when.

    None for signals that report no write (metric and log alerts, manual requests).
    """
    if signal.source not in ("event", "alert") or not signal.operation_name:
        return None
    if not signal.operation_name.lower().endswith("/write"):
        return None
    return {
        "correlationId": str(signal.extra.get("correlationId") or ""),
        "resource": signal.resource_id or "",
        "operation": signal.operation_name,
        "at": signal.time or "",
    }


def idempotency_key(finding: Finding) -> str:
    """Duplicate deliveries of one signal give the same key, so the same job id.

    Alerts: the normalised Azure alert id + "fired" + VM + remediation + condition: one job per
    (alert, VM, remediation, condition) however often, and with whatever body, the alert is posted
    (its parameters come from Azure's record, see provenance); events: event id + VM + remediation
    (+ parameters); manual: request id + VM + remediation. A Resolved notification maps to the key of
    its Fired one, so it finds (or pre-empts) the same job.

    A detector finding about an ARM write (an NSG rule written) is keyed on the write instead of the
    delivery: "change" + the write's correlation id + VM + remediation. The Event Grid event and the
    activity-log alert for that write then make one job, whichever arrives first, race-free. A write
    signal without a correlation id keeps its delivery key; intake coalesces it by resource and time
    (``CHANGE_WINDOW_SECONDS``).
    """
    signal = finding.signal
    change = change_of(signal) if finding.route.startswith(CHANGE_ROUTE_PREFIX) else None
    if change and change["correlationId"]:
        remediation = finding.remediation or finding.condition
        return "|".join(["change", change["correlationId"].lower(), finding.target.key, remediation])
    if signal.source == "alert":
        return "|".join(
            [
                signal.source,
                alert_key(signal.id),
                "fired",
                finding.target.key,
                finding.remediation or finding.condition,
                finding.condition,
            ]
        )
    parts = [signal.source, signal.id, finding.target.key, finding.remediation or finding.condition]
    if signal.source != "manual" and finding.parameters:
        parts.append(json.dumps(dict(finding.parameters), sort_keys=True))
    return "|".join(parts)


def alert_key(alert_id: str) -> str:
    """An Azure alert id as jobs store it: ARM ids compare case-insensitively, a trailing '/' is noise."""
    return normalize(alert_id)


class Planner:
    """Routes and decides. ``gate`` confirms alerts with Azure Monitor; without one, no alert can be
    confirmed and every alert is refused (fail closed). ``max_jobs`` bounds the jobs one alert or
    event may make (manual requests come from an authenticated operator and are not bounded here)."""

    def __init__(
        self,
        catalog: Catalog,
        routes: Sequence[Route],
        detect: Detect | None = None,
        gate: AlertGate | None = None,
        max_jobs: int | None = None,
    ) -> None:
        self.catalog = catalog
        self.routes = tuple(routes)
        self._table: RouteTable | None = None
        self.detect = detect
        self.gate = gate
        self.max_jobs = (
            max_jobs if max_jobs is not None else gate.settings.max_jobs if gate else DEFAULT_MAX_JOBS
        )

    def plan_payload(self, payload: object) -> PlanReport:
        """Parse (SignalError on bad input) and plan every signal of one payload."""
        if type(self.gate) is AlertGate and type(payload) is dict and is_alert(payload):
            # AlertGate routes a confirmed alert on Azure's record of it, never on its body: the body is
            # read as far as provenance needs, the rest only when the body itself is reported. (Another
            # gate may route the signal it is given: it gets the whole body, as plan_signal gives it.)
            try:
                claim = read_alert_claim(payload)
            except RecursionError:  # as parse says it
                raise SignalError("payload is nested too deeply") from None
            return self._plan(claim.claim, claim.signal, fresh=False)
        return self.plan_signals(parse(payload))

    def plan_signals(self, signals: Sequence[Signal]) -> PlanReport:
        if len(signals) == 1:  # an alert or a manual request: one signal, its report as it is
            return self.plan_signal(signals[0])
        report = PlanReport()
        for signal in signals:
            report = report + self.plan_signal(signal)
        return report

    def plan_signal(self, signal: Signal, *, fresh: bool = False) -> PlanReport:
        """Plan one signal. ``fresh``: confirm an alert with a new read of Azure Monitor, never with
        this process's recent read of it."""
        return self._plan(signal, None, fresh=fresh)

    def _route_table(self) -> RouteTable:
        """``route_table(self.routes, self.catalog)``, kept while both stay the same objects."""
        table, routes = self._table, self.routes
        if table is None or table.routes is not routes or table.catalog is not self.catalog:
            table = route_table(routes, self.catalog)
            self._table = table if type(routes) is tuple else None  # a list may change: never kept
        return table

    def _plan(self, signal: Signal, delivered: Callable[[], Signal] | None, *, fresh: bool) -> PlanReport:
        """``plan_signal``; ``delivered``: for an alert's claim (see ``read_alert_claim``), the whole
        body, reported instead of the claim when the alert is refused or confirmed on a remembered read."""
        record = None
        remembered: tuple[Signal, ...] = ()
        is_alert = signal.source == "alert"
        if is_alert:
            if self.gate is None:
                refusal = f"provenance: nothing here can confirm alert {signal.id} with Azure Monitor"
                return _report((signal,), (), (_note(signal.id, refusal),), (signal.id,), ())
            # ProvenanceUnavailable: fail closed, the caller retries
            verdict = self.gate.verdict(signal, fresh=fresh)
            if verdict.refusal is not None:
                body = delivered() if delivered is not None else signal
                return _report((body,), (), (_note(body.id, verdict.refusal),), (body.id,), ())
            if verdict.remembered:
                remembered = (delivered() if delivered is not None else signal,)
            signal, record = verdict.signal, verdict.record
            gate_notes = verdict.notes
        else:
            gate_notes = ()
        routing = self._route_table().route(signal)  # route_signal(signal, self.routes, self.catalog)
        signal_id = signal.id
        texts = (*gate_notes, *routing.notes) if gate_notes else routing.notes
        notes = [_note(signal_id, text) for text in texts] if texts else []
        findings = list(routing.findings)
        if routing.detector:
            if self.detect is None:
                notes.append(_note(signal_id, f"{routing.detector} needs Azure to decide; no detector here"))
            else:
                found, detector_notes = self.detect(routing.detector, signal)
                findings += found
                notes += [_note(signal_id, text) for text in detector_notes]
        if is_alert:
            findings, dropped = _on_target(findings, record)
            notes += [_note(signal_id, text) for text in dropped]
        if signal.source != "manual":
            # Counted in jobs, not rows: findings with one key are one job (for an alert, _on_target
            # kept one finding per key already).
            count = len(findings)
            too_many = fan_out_refusal(count, self.max_jobs)
            if too_many is not None:
                return _report((signal,), (), (*notes, _note(signal_id, too_many)), (signal_id,), ())
        plans = []
        catalog, state = self.catalog, signal.state
        for finding in findings:
            remediation = catalog.get(finding.remediation or "")
            parameters = finding.parameters
            given, claimed = finding.origins, OPERATOR if finding.signal.source == "manual" else ALERT
            origins = {name: given.get(name) or claimed for name in parameters}  # finding.origin_of
            decision = plan_decision(remediation, parameters, state=state, origins=origins)
            plans.append(
                build(
                    Plan, {"finding": finding, "decision": decision, "unchecked": None, "unchecked_why": ""}
                )
            )
        return _report((signal,), tuple(plans), tuple(notes), (), remembered)


def _note(signal: str, message: str) -> Note:
    return build(Note, {"signal": signal, "message": message})


def _report(
    signals: tuple[Signal, ...],
    plans: tuple[Plan, ...],
    notes: tuple[Note, ...],
    refused: tuple[str, ...],
    remembered: tuple[Signal, ...],
) -> PlanReport:
    """``PlanReport(...)`` built once per signal (see frozen.build)."""
    return build(
        PlanReport,
        {"signals": signals, "plans": plans, "notes": notes, "refused": refused, "remembered": remembered},
    )


def _on_target(findings: Sequence[Finding], record: AlertRecord | None) -> tuple[list[Finding], list[str]]:
    """Findings on the alert's own target, one per job key; the others as ``provenance:`` notes.

    A finding for another VM is no job at all (not even a skipped one), so it neither fills the job
    store nor counts toward the per-alert limit. A detector's VMs come from ARM reads of the resource
    Azure recorded (see AlertGate), so they are not the alert's target by id and are kept.
    """
    kept: list[Finding] = []
    notes: list[str] = []
    keys: set[str] | None = None  # the kept findings' job keys, worked out once a second one is kept
    recorded = vm_of(record.target_resource) if record is not None else None
    for finding in findings:
        if finding.route.startswith("detector:") or (
            recorded is not None and recorded.key == finding.target.key
        ):
            off_target = None  # what target_refusal says of the alert's own target, without parsing it again
        else:
            off_target = target_refusal(finding.target, record)
        if off_target is not None:
            if off_target not in notes:
                notes.append(off_target)
            continue
        if not kept:  # the first finding kept is no duplicate: its key is needed only against a second
            kept.append(finding)
            continue
        if keys is None:
            keys = {idempotency_key(kept[0])}
        key = idempotency_key(finding)
        if key not in keys:  # several rows of one alert for one VM make one job, the first row's
            keys.add(key)
            kept.append(finding)
    return kept, notes
