"""Intake: payload -> plans -> jobs (created once per idempotency key) -> queue messages.

Shared by the alert webhook, the Event Grid trigger, the operator API and the CLI. It answers fast:
no run command is started here, only the job records and one queue message per new job.

Alert lifecycle: a Resolved notification cancels that alert's jobs not yet dispatched and is noted on
the others. Resolved may arrive before Fired (Event Grid and webhooks do not keep order): then the
job is created already cancelled, so the late Fired finds it and does nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from . import jobs
from .errors import ConcurrencyConflict
from .jobs import Job
from .planning import CHANGE_ROUTE_PREFIX, CHANGE_WINDOW_SECONDS, Plan, Planner, PlanReport, alert_key
from .ports import Clock, JobStore, Queue
from .signals.model import Signal

CAS_ATTEMPTS = 5


@dataclass(frozen=True)
class Admitted:
    job: Job
    created: bool


@dataclass(frozen=True)
class IntakeResult:
    report: PlanReport
    jobs: tuple[Admitted, ...] = ()
    resolved: tuple[str, ...] = field(default_factory=tuple)  # ids of jobs a Resolved cancelled or noted

    def to_dict(self) -> dict[str, Any]:
        data = self.report.to_dict()
        data["jobs"] = [
            {
                "id": a.job.id,
                "status": a.job.status,
                "target": a.job.target,
                "remediation": a.job.remediation,
                "created": a.created,
            }
            for a in self.jobs
        ]
        data["resolvedJobs"] = list(self.resolved)
        return data


class Intake:
    def __init__(self, planner: Planner, store: JobStore, queue: Queue, clock: Clock) -> None:
        self.planner = planner
        self.store = store
        self.queue = queue
        self.clock = clock

    def submit(
        self, payload: object, *, actor: str, campaign_id: str | None = None, dry_run: bool = False
    ) -> IntakeResult:
        """Parse and admit one payload. SignalError / UnknownRemediation for bad input, before any write.

        ``dry_run`` makes every job a dry run with its own idempotency key, so a later real run of the
        same payload is not taken for a duplicate of the rehearsal.
        """
        report = self.planner.plan_payload(payload)
        return self.admit(report, actor=actor, campaign_id=campaign_id, dry_run=dry_run)

    def admit(
        self, report: PlanReport, *, actor: str, campaign_id: str | None = None, dry_run: bool = False
    ) -> IntakeResult:
        admitted: list[Admitted] = []
        resolved: list[str] = []
        report, known = self._recall(report, dry_run)
        for plan in report.plans:
            signal = plan.finding.signal
            if signal.source == "alert" and signal.state == "resolved":
                if plan.decision.guard != "provenance":  # a Resolved for another VM cancels nothing
                    resolved += self._resolve_plan(plan, actor)
                continue
            job = known.get(_job_id(plan, dry_run))
            if job is not None:  # a duplicate delivery confirmed on a remembered read: its job exists
                admitted.append(Admitted(self._link_alert(job, plan), False))
                continue
            admitted.append(self._admit(plan, actor, campaign_id, dry_run))
        for signal in report.signals:
            if signal.id in report.refused:
                continue  # an unconfirmed Resolved must not cancel the confirmed alert's jobs
            if signal.source == "alert" and signal.state == "resolved":
                resolved += self._resolve_alert(signal, actor, already=set(resolved))
        return IntakeResult(report, tuple(admitted), tuple(dict.fromkeys(resolved)))

    # -- admission ------------------------------------------------------------------------------

    def _recall(self, report: PlanReport, dry_run: bool) -> tuple[PlanReport, dict[str, Job]]:
        """The jobs of plans confirmed on a remembered read of their alert (``PlanReport.remembered``).

        Such a plan stands only for a job that exists already: a duplicate delivery, answered without
        asking Azure Monitor again. When any job of that alert is missing (a first delivery that failed
        half-way, say), the alert is planned again on a fresh read and admitted as usual.
        """
        known: dict[str, Job] = {}
        for delivered in report.remembered:
            key = alert_key(delivered.id)
            plans = [p for p in report.plans if alert_key(p.finding.signal.id) == key]
            wanted = [_job_id(p, dry_run) for p in plans]
            found = self.store.get_many(wanted) if wanted else {}
            if all(job_id in found for job_id in wanted):
                known.update(found)
                continue
            fresh = self.planner.plan_signal(delivered, fresh=True)
            report = _without_alert(report, key) + fresh
        return report, known

    def _new_job(self, plan: Plan, actor: str, campaign_id: str | None, rehearsal: bool = False) -> Job:
        finding, signal = plan.finding, plan.finding.signal
        manual = signal.manual
        return jobs.new_job(
            idempotency_key=plan.idempotency_key + ("|dry-run" if rehearsal else ""),  # as _job_id
            remediation=finding.remediation or "",
            condition=finding.condition,
            target=finding.target.id,
            parameters=dict(finding.parameters),
            now=self.clock.now(),
            actor=manual.requested_by if manual else actor,
            requested_by_name=manual.requested_by_name if manual else "",
            reason=(manual.reason if manual else "") or _describe(signal),
            signal_id=signal.id,
            signal_source=signal.source,
            alert_id=alert_key(signal.id) if signal.source == "alert" else None,
            campaign_id=campaign_id,
            dry_run=rehearsal or (bool(manual.dry_run) if manual else False),
            evidence=dict(finding.evidence),
        )

    def _same_change(self, plan: Plan) -> Job | None:
        """A job made within the window for the same ARM write, VM and remediation.

        The deterministic key (``planning.idempotency_key``) already joins the Event Grid event and the
        activity-log alert of one write when both carry its correlation id. This catches the rest: one
        of them without a correlation id, matched on the written resource within
        ``CHANGE_WINDOW_SECONDS``. Two writes with different correlation ids are two changes.
        """
        finding = plan.finding
        change = finding.evidence.get("change") if finding.route.startswith(CHANGE_ROUTE_PREFIX) else None
        if not isinstance(change, dict) or not change.get("resource"):
            return None
        since = self.clock.now() - timedelta(seconds=CHANGE_WINDOW_SECONDS)
        resource = str(change["resource"]).lower().rstrip("/")
        correlation = str(change.get("correlationId") or "").lower()
        for job in self.store.list(target=finding.target.id, remediation=finding.remediation, since=since):
            if job.id == jobs.job_id_for(plan.idempotency_key):
                return None  # the same delivery (or the same write): create() finds it
            earlier = job.evidence.get("change") if isinstance(job.evidence, dict) else None
            # A rehearsal (dry run) changed nothing: it is not the change's job.
            if not isinstance(earlier, dict) or job.dry_run:
                continue
            other = str(earlier.get("correlationId") or "").lower()
            if correlation and other:
                if correlation == other:
                    return job
                continue
            if _same_resource(str(earlier.get("resource", "")), resource):
                return job
        return None

    def _admit(self, plan: Plan, actor: str, campaign_id: str | None, rehearsal: bool = False) -> Admitted:
        same = None if rehearsal else self._same_change(plan)
        if same is not None:
            return Admitted(self._link_alert(same, plan), False)
        job, created = self.store.create(self._new_job(plan, actor, campaign_id, rehearsal))
        if not created:
            return Admitted(self._link_alert(job, plan), False)
        if plan.decision.action == "skip":
            # Known bad before any Azure call (e.g. a parameter fails its pattern): on record, never queued.
            job = self.store.update(
                jobs.transition(
                    job,
                    jobs.SKIPPED,
                    now=self.clock.now(),
                    actor=actor,
                    reason=f"{plan.decision.guard}: {plan.decision.reason}",
                )
            )
            return Admitted(job, True)
        self.queue.send(job.id)
        return Admitted(job, True)

    def _link_alert(self, job: Job, plan: Plan) -> Job:
        """The activity-log alert of a change whose job the Event Grid event made: recorded on the job,
        so whatever follows the alert (its lifecycle, write-back) finds the one job."""
        signal = plan.finding.signal
        if signal.source != "alert" or job.alert_id is not None or job.signal_id == signal.id:
            return job
        for _ in range(CAS_ATTEMPTS):
            linked = jobs.note(
                replace(job, alert_id=alert_key(signal.id)),
                f"the same change also arrived as alert {signal.id}",
                now=self.clock.now(),
            )
            try:
                return self.store.update(linked)
            except ConcurrencyConflict:
                job = self.store.get(job.id)
                if job.alert_id is not None:
                    return job
        return job

    # -- alert lifecycle ------------------------------------------------------------------------

    def _resolve_plan(self, plan: Plan, actor: str) -> list[str]:
        """The job of the Fired notification for this finding: cancel, note, or pre-empt it."""
        job, created = self.store.create(self._new_job(plan, actor, None))
        return [self._apply_resolved(job.id, actor, first=created)]

    def _resolve_alert(self, signal: Signal, actor: str, already: set[str]) -> list[str]:
        return [
            self._apply_resolved(job.id, actor, first=False)
            for job in self.store.list(alert_id=alert_key(signal.id))
            if job.id not in already
        ]

    def _apply_resolved(self, job_id: str, actor: str, *, first: bool) -> str:
        for _ in range(CAS_ATTEMPTS):
            job = self.store.get(job_id)
            now = self.clock.now()
            if job.status in (jobs.PLANNED, jobs.AWAITING_APPROVAL):
                reason = (
                    "the alert resolved before its Fired notification arrived"
                    if first
                    else "the alert resolved before the remediation was dispatched"
                )
                updated = jobs.transition(job, jobs.CANCELLED, now=now, actor=actor, reason=reason)
            elif any(n.endswith("the alert resolved") for n in job.notes):
                return job.id
            else:
                updated = jobs.note(job, "the alert resolved", now=now)
            try:
                self.store.update(updated)
                return job.id
            except ConcurrencyConflict:
                continue
        raise ConcurrencyConflict(f"job {job_id}: could not record the resolved alert")


def _job_id(plan: Plan, rehearsal: bool) -> str:
    return jobs.job_id_for(plan.idempotency_key + ("|dry-run" if rehearsal else ""))


def _without_alert(report: PlanReport, key: str) -> PlanReport:
    """The report less everything about one alert (by its normalised id)."""
    return PlanReport(
        tuple(s for s in report.signals if alert_key(s.id) != key),
        tuple(p for p in report.plans if alert_key(p.finding.signal.id) != key),
        tuple(n for n in report.notes if alert_key(n.signal) != key),
        tuple(r for r in report.refused if alert_key(r) != key),
        tuple(s for s in report.remembered if alert_key(s.id) != key),
    )


def _same_resource(one: str, other: str) -> bool:
    """The same written resource: equal ids, or an NSG and one of its rules (one delivery may name the
    NSG where the other names the rule); two different rules are two writes."""
    a, b = one.lower().rstrip("/"), other.lower().rstrip("/")
    if a == b:
        return True
    marker = "/securityrules/"
    if marker in a and marker in b:
        return False
    return bool(a) and a.split(marker)[0] == b.split(marker)[0]


def _describe(signal: Signal) -> str:
    if signal.source == "alert":
        return f"alert {signal.rule or signal.type}"
    if signal.source == "event":
        return f"event {signal.type} on {signal.resource_id or '-'}"
    return "manual request"
