"""``remediate plan`` like ``run``: the runtime guards evaluated on fresh facts, without changing anything.

``plan_decision`` knows only what the payload and the catalog say. When ARM can be read, the plan also
runs ``policy.guard_decision`` (kill switch, scope, opt-in, quarantine, power state, agent, OS, cooldown,
circuit breaker) on the VM as ARM reports it and on the job history the store holds, exactly as the
runner does at ``planned``. What could not be read is named in ``Plan.unchecked`` and never assumed
to pass: a plan that says ``dispatch`` with an empty ``unchecked`` is what ``run`` would do now
(approval aside).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from . import jobs
from .catalog import Catalog, Remediation
from .errors import NotFound, RemediationError
from .jobs import parse_time
from .planning import PlanReport
from .policy import GuardFacts, GuardSettings, guard_decision
from .ports import Compute, JobStore, LeaseFacts, VmFacts
from .resources import normalize
from .verification import refused_run

VM_GUARDS = ("opt-in", "quarantine", "vm-running", "agent-ready", "os")
HISTORY_GUARDS = ("cooldown", "circuit-breaker")
RUNTIME_GUARDS = ("kill-switch", "scope", *VM_GUARDS, *HISTORY_GUARDS)


@dataclass(frozen=True)
class History:
    last_run_ended_at: datetime | None
    recent_failures: Sequence[datetime]


class _NoJobs:
    """The history of a job store that was never written: nothing ran, nothing failed."""

    def last_outcome(self, target: str, remediation: str) -> None:
        return None

    def lease_facts(self, key: str, remediation: str, now: datetime, *, runs_since: datetime) -> LeaseFacts:
        return LeaseFacts(holder=None)

    def list(self, **filters: object) -> list[jobs.Job]:
        return []


NO_JOBS: Any = _NoJobs()


def read_history(
    store: JobStore, target: str, remediation: Remediation, guards: GuardSettings, now: datetime
) -> History:
    """What the runner's cooldown and breaker look at, where the runner reads them: the cooldown from the
    run recorded on the VM's lease (which outlives the jobs' retention), the failures from the jobs."""
    cooldown = timedelta(minutes=remediation.cooldown_minutes)
    lease = store.lease_facts(normalize(target), remediation.id, now, runs_since=now - cooldown)
    since = now - guards.breaker_window - guards.breaker_open
    failed = store.list(remediation=remediation.id, status=[jobs.FAILED, jobs.TIMED_OUT], since=since)
    tried = [j for j in failed if not refused_run(j.outcome)]  # as the runner: a refused input is no failure
    failures = [t for t in (parse_time(j.updated_at) for j in tried) if t is not None]
    return History(lease.last_run_ended_at, failures)


def static_only(report: PlanReport, why: str) -> PlanReport:
    """Mark every plan's runtime guards as not evaluated, with the reason."""
    plans = tuple(
        p if p.decision.skipped else replace(p, unchecked=RUNTIME_GUARDS, unchecked_why=why)
        for p in report.plans
    )
    return replace(report, plans=plans)


def with_runtime_guards(
    report: PlanReport,
    catalog: Catalog,
    compute: Compute,
    store: JobStore | None,
    guards: GuardSettings,
    now: datetime,
) -> PlanReport:
    """Each plan decided as the runner would decide it now; what could not be read is listed."""
    plans = []
    vms: dict[str, VmFacts | RemediationError | None] = {}
    for plan in report.plans:
        if plan.decision.skipped:  # a static skip (bad parameter, resolved alert) stands as it is
            plans.append(plan)
            continue
        remediation = catalog.get(plan.finding.remediation or "")
        target = plan.finding.target.id
        if target.lower() not in vms:
            try:
                vms[target.lower()] = compute.get_vm(target)
            except NotFound:
                vms[target.lower()] = None
            except RemediationError as error:
                vms[target.lower()] = error
        vm = vms[target.lower()]
        if isinstance(vm, RemediationError):
            # Kill switch and scope need no VM: a "no" from them stands; the rest is unchecked.
            early = guard_decision(
                target=target,
                remediation=remediation,
                raw_parameters=plan.finding.parameters,
                facts=GuardFacts(vm=None, now=now),
                settings=guards,
            )
            if early.guard in ("kill-switch", "scope"):
                plans.append(replace(plan, decision=early, unchecked=(), unchecked_why=""))
            else:
                why = f"the VM could not be read from ARM ({vm})"
                plans.append(replace(plan, unchecked=RUNTIME_GUARDS[2:], unchecked_why=why))
            continue
        unchecked: tuple[str, ...] = ()
        why = ""
        history = History(None, ())
        if store is None:
            unchecked, why = HISTORY_GUARDS, "no job store to read the history from"
        else:
            try:
                history = read_history(store, target, remediation, guards, now)
            except RemediationError as error:
                unchecked, why = HISTORY_GUARDS, f"the job history could not be read ({error})"
        decision = guard_decision(
            target=target,
            remediation=remediation,
            raw_parameters=plan.finding.parameters,
            facts=GuardFacts(
                vm=vm,
                now=now,
                last_run_ended_at=history.last_run_ended_at,
                recent_failures=tuple(history.recent_failures),
            ),
            settings=guards,
        )
        plans.append(replace(plan, decision=decision, unchecked=unchecked, unchecked_why=why))
    return replace(report, plans=tuple(plans))
