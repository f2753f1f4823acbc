"""Advances a job one step through the ports. Crash-safe at every step.

Each call to :meth:`Runner.advance` reads the job, does at most one outside action, and ends with one
compare-and-swap write. A worker killed anywhere in between leaves the job in its last written state;
the redelivered message repeats the step, and every outside action is safe to repeat:

* the per-VM lease is held by the job itself, so taking it again is a renewal;
* a control-plane step checks before it changes (an equivalent NSG rule is not added twice);
* the run command's resource name is derived from the job id, so a repeated dispatch re-attaches to
  the run it started instead of running the script again (managed mode).

A step that loses the compare-and-swap drops its message: the winner carries the job on.

A step that says "next step now" (``requeue_after == 0``) hands the caller the job it wrote, and the
caller may advance it at once with that job (``advance(job_id, after=step)``) instead of a queue round
trip and a re-read: the job is what this execution just wrote, so nothing is lost by not reading it.
When nothing comes between the guards and the run command (no control-plane step, no upload grant;
managed mode), the write that moves the job to ``dispatching`` also carries the dispatch claim: the PUT
that follows in the same execution is known to be the first (no look for an existing run command),
while a redelivered message that finds the claim without having made it looks first, as before.

The guards' history facts cost little per job: the VM's own guards run first (no storage read); then
one read of the VM's lease gives both its holder and the end of the remediation's last run there (the
cooldown; recorded on the lease when a job that ran releases it), and the lease is taken only when that
read saw it free. The breaker's failure list is read at most every ``BREAKER_FACTS_SECONDS`` per
process: a failure written by another instance counts up to that much later, one written here at once.
"""

from __future__ import annotations

import base64
import functools
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from . import jobs
from .catalog import Catalog, Remediation, env_name, script_parameter_name
from .errors import (
    Busy,
    CloudError,
    ConcurrencyConflict,
    InvalidInput,
    NotFound,
    OutcomeUnknown,
    Permanent,
    RemediationError,
    Throttled,
)
from .evidence import evidence_summary
from .jobs import Job, Transition
from .policy import GuardFacts, GuardSettings, guard_decision
from .polling import RunDurations, next_poll_delay
from .ports import (
    Clock,
    Compute,
    JobStore,
    LeaseFacts,
    RunRequest,
    RunStatus,
    Switches,
    SwitchSource,
    UploadGrants,
    VmFacts,
)
from .settings import Settings
from .switches import current_switches
from .verification import refused_run, run_record, verify

log = logging.getLogger("autoremediation.runner")
ACTOR = "worker"
MAX_RETRIES = 8
MAX_BACKOFF_SECONDS = 300.0
RUN_GRACE_SECONDS = 120
# How long a process reuses what it read of a remediation's recent failures (the breaker's facts).
BREAKER_FACTS_SECONDS = 30.0


class ControlPlaneStep(Protocol):
    """An Azure-side step of a remediation (e.g. ``nsg-allow-management``).

    It must check before it changes, so that running it twice changes Azure once; it returns what it
    did, for the job record, and raises RemediationError when it cannot be done.
    """

    def __call__(self, job: Job, vm: Mapping[str, Any], *, dry_run: bool) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Step:
    job: Job
    requeue_after: float | None  # seconds until the job needs another message; None: no message
    note: str = ""
    # The write of this step claimed the dispatch, and nothing was sent since: the next step, when it is
    # advanced with this one, sends the run command without looking for an earlier one.
    claimed_dispatch: bool = False


def guard_settings(settings: Settings) -> GuardSettings:
    return GuardSettings(
        opt_in_tag=settings.opt_in,
        allowed_scopes=settings.allowed_scopes,
        kill_switch=settings.kill_switch,
        quarantine_tag=settings.quarantine_tag,
        breaker_threshold=settings.breaker_threshold,
        breaker_window=timedelta(minutes=settings.breaker_window_minutes),
        breaker_open=timedelta(minutes=settings.breaker_open_minutes),
    )


def _with_control_plane_parameters(
    given: Mapping[str, str], remediation: Remediation, records: Mapping[str, Any]
) -> dict[str, str]:
    """The job's parameters with those the control-plane steps decided (e.g. the management sources
    of the guest firewall), which always win over a request's: an empty decision removes the value."""
    parameters = dict(given)
    for record in records.values():
        decided = record.get("scriptParameters") if isinstance(record, Mapping) else None
        for name, value in (decided or {}).items():
            if name not in remediation.parameters:
                continue
            if value in (None, ""):
                parameters.pop(name, None)
            else:
                parameters[name] = remediation.parameters[name].validate(value)
    return parameters


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


class Runner:
    def __init__(
        self,
        *,
        catalog: Catalog,
        store: JobStore,
        compute: Compute,
        clock: Clock,
        settings: Settings,
        control_plane: Mapping[str, ControlPlaneStep] | None = None,
        on_transition: Callable[[Job, Transition], None] | None = None,
        upload_grants: UploadGrants | None = None,
        switches: SwitchSource | None = None,
    ) -> None:
        self.catalog = catalog
        self.store = store
        self.compute = compute
        self.clock = clock
        self.settings = settings
        self.guards = guard_settings(settings)
        self.control_plane = dict(control_plane or {})
        self.on_transition = on_transition
        self.upload_grants = upload_grants
        self.durations = RunDurations()
        # remediation -> (read at, when its runs failed lately): see ``_recent_failures``.
        self._failures: dict[str, tuple[datetime, list[datetime]]] = {}
        self._failures_lock = threading.Lock()
        # None: only the settings given here (unit tests); the app passes EnvironmentSwitches.
        self.switch_source = switches

    # -- public -----------------------------------------------------------------------------

    def advance(self, job_id: str, *, after: Step | None = None) -> Step:
        """Do the next step of the job; tell the caller when the job needs another message.

        ``after``: the step this execution just did on the job, when it said "next step now": its job
        is used as it is (it is what was written), not read again.
        """
        if after is not None and after.requeue_after == 0 and after.job.id == job_id:
            job, fresh_claim = after.job, after.claimed_dispatch
        else:
            job, fresh_claim = self.store.get(job_id), False
        if job.terminal:
            return Step(job, None, f"already {job.status}")
        if job.status in (jobs.DISPATCHING, jobs.RUNNING, jobs.VERIFYING):
            job = self._renew_lease(job)
        handlers: dict[str, Callable[[Job, Remediation], Step]] = {
            jobs.PLANNED: self._planned,
            jobs.AWAITING_APPROVAL: self._awaiting_approval,
            jobs.DISPATCHING: functools.partial(self._dispatching, fresh_claim=fresh_claim),
            jobs.RUNNING: self._running,
            jobs.VERIFYING: self._verifying,
        }
        handler = handlers[job.status]
        try:
            step = handler(job, self.catalog.get(job.remediation))
        except ConcurrencyConflict:
            current = self.store.get(job_id)
            if current.terminal:
                # E.g. cancelled (alert resolved) while this step took the lease for it: give it back.
                self.store.release_lease(current.target_key, current.id, ran=run_record(current))
            return Step(current, None, "another worker advanced this job")
        if self.on_transition is not None:
            for transition in step.job.history[len(job.history) :]:
                self.on_transition(step.job, transition)
        return step

    def give_up(self, job_id: str, reason: str) -> Job:
        """End a job the queue could not deliver any more (poison message) as failed, with the reason."""
        for _ in range(5):
            job = self.store.get(job_id)
            if job.terminal:
                return job
            target = jobs.FAILED if jobs.FAILED in jobs.ALLOWED[job.status] else jobs.EXPIRED
            try:
                step = self._finish(job, target, self._abandon(job, reason), actor="queue")
            except ConcurrencyConflict:
                continue
            if self.on_transition is not None:
                self.on_transition(step.job, step.job.history[-1])
            return step.job
        raise ConcurrencyConflict(f"job {job_id}: could not record the failure")

    # -- steps ------------------------------------------------------------------------------

    def _planned(self, job: Job, remediation: Remediation) -> Step:
        return self._decide(job, remediation, approved=False)

    def _awaiting_approval(self, job: Job, remediation: Remediation) -> Step:
        now = self.clock.now()
        expires = _parse_time(job.approval_expires_at)
        if job.approved_by is None:
            if expires is not None and now >= expires:
                return self._finish(job, jobs.EXPIRED, "no operator approved it in time", actor="sweeper")
            return Step(job, None, "waiting for an operator")
        return self._decide(job, remediation, approved=True)

    def _decide(self, job: Job, remediation: Remediation, *, approved: bool) -> Step:
        """Guards with fresh facts; then lease; then dispatching."""
        now = self.clock.now()
        switches, why = self._switches()
        if switches.kill_switch:
            return self._finish(job, jobs.SKIPPED, f"kill-switch: {why}")
        try:
            vm: VmFacts | None = self.compute.get_vm(job.target)
        except NotFound:
            vm = None
        except CloudError as error:
            return self._retry_later(job, error)
        # The VM's own guards first: a VM that is not opted in, not running, ... costs no storage read.
        facts = GuardFacts(vm=vm, now=now, approved=approved)
        decision = guard_decision(
            target=job.target,
            remediation=remediation,
            raw_parameters=job.parameters,
            facts=facts,
            settings=self.guards,
        )
        lease: LeaseFacts | None = None
        if decision.action != "skip":
            # Then the history guards: the cooldown and the lease's holder from one read of the VM's
            # lease, the breaker from this process's recent view of the failures.
            cooldown = timedelta(minutes=remediation.cooldown_minutes)
            lease = self.store.lease_facts(job.target_key, remediation.id, now, runs_since=now - cooldown)
            facts = replace(
                facts,
                last_run_ended_at=lease.last_run_ended_at,
                recent_failures=self._recent_failures(remediation.id, now),
            )
            decision = guard_decision(
                target=job.target,
                remediation=remediation,
                raw_parameters=job.parameters,
                facts=facts,
                settings=self.guards,
            )
        if decision.action == "skip":
            return self._finish(job, jobs.SKIPPED, f"{decision.guard}: {decision.reason}")
        if decision.action == "await-approval":
            if job.status == jobs.AWAITING_APPROVAL:
                return Step(job, None, "waiting for an operator")
            expires = now + timedelta(minutes=self.settings.approval_ttl_minutes)
            # The approver sees why the change is asked for (e.g. the NSG rule that blocks SSH).
            why = evidence_summary(job.evidence)
            job = self._write(
                jobs.transition(
                    job,
                    jobs.AWAITING_APPROVAL,
                    now=now,
                    actor=ACTOR,
                    reason=f"{decision.reason}: {why}" if why else decision.reason,
                    approval_required=True,
                    approval_expires_at=expires.isoformat(),
                )
            )
            return Step(job, None, "waiting for an operator")
        assert vm is not None and lease is not None  # a dispatch decision implies both were read
        holder = lease.holder
        if holder in (None, job.id):
            # One request: the store saw the entity a moment ago. Only a lost race reads the holder.
            if self.store.acquire_lease(job.target_key, job.id, self._lease_ttl(remediation), now):
                holder = job.id
            else:
                holder = self.store.lease_holder(job.target_key, now)
        if holder != job.id:
            return Step(
                job,
                max(self.settings.poll_seconds, 1.0),
                f"waiting: remediation {holder or 'another job'} holds this VM",
            )
        dry_run = job.dry_run or switches.dry_run
        run = {
            "name": jobs.run_name_for(job.id),
            "mode": self.settings.run_command_mode,
            "os": vm.os_type,
            "location": vm.location,  # the run command's PUT needs it: no second read of the VM
            "vmTags": dict(vm.tags),
            "leaseAt": now.isoformat(),
        }
        # Nothing between this write and the run command: it carries the dispatch claim, so the dispatch
        # that follows in this execution needs no write of its own. Not in classic mode, whose attempt
        # mark fails the job when it is found by a step that did not make it: that mark stays its own
        # write, right before the POST.
        claim = (
            self.settings.run_command_mode != "action"
            and not remediation.control_plane
            and not remediation.upload_to
        )
        if claim:
            run["claimedAt"] = now.isoformat()
        reason = "approved by " + job.approved_by if approved and job.approved_by else decision.reason
        job = self._write(
            jobs.transition(
                job,
                jobs.DISPATCHING,
                now=now,
                actor=ACTOR,
                reason=reason,
                parameters=dict(decision.parameters),
                dry_run=dry_run,
                run=run,
            )
        )
        return Step(job, 0.0, claimed_dispatch=claim)

    def _dispatching(self, job: Job, remediation: Remediation, *, fresh_claim: bool = False) -> Step:
        """Control-plane steps, then the run command. ``fresh_claim``: the job comes from this
        execution's own write, which claimed the dispatch; no run command was sent since."""
        now = self.clock.now()
        done = dict(job.outcome.get("controlPlane") or {})
        for name in remediation.control_plane:
            if name in done:
                continue
            step = self.control_plane.get(name)
            if step is None:
                return self._finish(job, jobs.FAILED, f"control-plane step {name} is not available here")
            checked = self._recheck_switches(job, f"control-plane step {name}")
            if isinstance(checked, Step):
                return checked
            job = checked
            try:
                record = step(
                    job, {"os": job.run.get("os"), "tags": job.run.get("vmTags", {})}, dry_run=job.dry_run
                )
            except CloudError as error:
                if error.retryable:
                    return self._retry_later(job, error)
                return self._finish(job, jobs.FAILED, f"{name}: {error}")
            except RemediationError as error:
                return self._finish(job, jobs.FAILED, f"{name}: {error}")
            if record.get("action") == "skip":
                return self._finish(
                    job,
                    jobs.SKIPPED,
                    f"{name}: {record.get('reason', 'skipped')}",
                    outcome={**job.outcome, "controlPlane": {**done, name: record}},
                )
            done[name] = record
            # Written before the guest step, so a crash never repeats a finished Azure-side change.
            job = self._write(
                replace(job, outcome={**job.outcome, "controlPlane": done}, updated_at=now.isoformat())
            )
        checked = self._recheck_switches(job, "the run command")
        if isinstance(checked, Step):
            return checked
        job = checked
        os_type = job.run["os"]
        try:
            parameters = _with_control_plane_parameters(job.parameters, remediation, done)
        except InvalidInput as error:
            return self._finish(job, jobs.FAILED, f"dispatch refused: {error}")
        plain, protected = remediation.run_parameters(parameters, os_type, dry_run=job.dry_run)
        if remediation.upload_to:
            try:
                job = self._grant_upload(job, remediation, os_type, plain, protected)
            except CloudError as error:
                if error.retryable:
                    return self._retry_later(job, error)
                return self._finish(job, jobs.FAILED, f"dispatch refused: {error}")
            except RemediationError as error:
                return self._finish(job, jobs.FAILED, f"dispatch refused: {error}")
        request = RunRequest(
            vm_id=job.target,
            run_name=job.run["name"],
            os_type=os_type,
            script=remediation.script(os_type),
            parameters=plain,
            protected_parameters=protected,
            timeout_seconds=remediation.timeout_seconds,
            # Only a step that finds a claim it did not just make (an earlier step may have sent the PUT)
            # looks first.
            may_exist=bool(job.run.get("claimedAt")) and not fresh_claim,
            location=str(job.run.get("location") or ""),
        )
        if job.run.get("mode") == "action":
            # Classic run commands leave no resource to find again: a dispatch that may have started
            # the script is never repeated. The mark is written before the POST for that reason.
            if job.run.get("attemptedAt"):
                return self._finish(
                    job,
                    jobs.FAILED,
                    "outcome unknown: an earlier classic run command dispatch ended without a result; "
                    "it is not run again (classic mode cannot re-attach)",
                )
            job = self._write(
                replace(job, run={**job.run, "attemptedAt": now.isoformat()}, updated_at=now.isoformat())
            )
        elif not fresh_claim:
            # A claim (compare-and-swap) before the PUT: a run command is deleted once its result is read,
            # so a stale duplicate of this step must stop here, not create the run command again.
            job = self._write(
                replace(job, run={**job.run, "claimedAt": now.isoformat()}, updated_at=now.isoformat())
            )
        try:
            status = self.compute.start_run(request)
        except (Busy, Throttled) as error:
            # Refused before it started (409 / 429): safe to dispatch again later, in both modes.
            job = replace(job, run={k: v for k, v in job.run.items() if k != "attemptedAt"})
            return self._retry_later(job, error)
        except OutcomeUnknown as error:
            return self._finish(
                job,
                jobs.FAILED,
                f"outcome unknown: the run command may have run; it is not sent again ({error})",
            )
        except CloudError as error:
            if error.retryable and job.run.get("mode") != "action":
                return self._retry_later(job, error)
            return self._finish(job, jobs.FAILED, f"dispatch refused: {error}")
        except RemediationError as error:  # e.g. protected parameters in classic mode
            return self._finish(job, jobs.FAILED, f"dispatch refused: {error}")
        run = {**job.run, "startedAt": status.started_at or now.isoformat(), "dispatchedAt": now.isoformat()}
        job = self._write(
            jobs.transition(
                job,
                jobs.RUNNING,
                now=now,
                actor=ACTOR,
                reason=f"run command {run['name']} started",
                run=run,
                attempts=0,
            )
        )
        if status.done:
            return self._collect(job, status)
        return Step(job, self._poll_delay(job, 0))

    def _grant_upload(
        self,
        job: Job,
        remediation: Remediation,
        os_type: str,
        plain: dict[str, str],
        protected: dict[str, str],
    ) -> Job:
        """A SAS for one blob of the app's own container, minted now: only the run command's protected
        parameters carry it (base64, so no cmd.exe metacharacter); the job records the blob URL alone."""
        if self.upload_grants is None:
            raise InvalidInput(
                f"{remediation.id} uploads to the {remediation.upload_to} container: none is configured"
            )
        vm_name = job.target.rstrip("/").rsplit("/", 1)[-1]
        blob = f"{vm_name}/{job.id}.{'zip' if os_type == 'windows' else 'tar.gz'}"
        grant = self.upload_grants.grant(blob, remediation.timeout_seconds + RUN_GRACE_SECONDS)
        rename = env_name if os_type == "linux" else script_parameter_name
        plain[rename("uploadUrl")] = grant.blob_url
        protected[rename("uploadToken")] = base64.b64encode(grant.sas.encode()).decode("ascii")
        now = self.clock.now()
        upload = {
            "container": remediation.upload_to,
            "blobUrl": grant.blob_url,
            "sasExpiresAt": grant.expires_at,
        }
        return self._write(
            replace(job, outcome={**job.outcome, "upload": upload}, updated_at=now.isoformat())
        )

    def _lease_ttl(self, remediation: Remediation) -> float:
        """Long enough to outlive the run and the longest back-off, even if a renewal is missed."""
        return max(
            self.settings.lease_seconds, remediation.timeout_seconds + RUN_GRACE_SECONDS + MAX_BACKOFF_SECONDS
        )

    def _renew_lease(self, job: Job) -> Job:
        """A dispatched job renews its VM's lease once a third of it is used, so it cannot lapse under
        a live run; the time goes into the job with this step's own write (no extra write per step)."""
        ttl = self._lease_ttl(self.catalog.get(job.remediation))
        now = self.clock.now()
        taken = _parse_time(job.run.get("leaseAt"))
        if taken is not None and (now - taken).total_seconds() < ttl / 3:
            return job
        if not self.store.acquire_lease(job.target_key, job.id, ttl, now):
            log.warning(
                "job %s: lost the lease of %s to %s",
                job.id,
                job.target,
                self.store.lease_holder(job.target_key, now),
            )
            return job
        return replace(job, run={**job.run, "leaseAt": now.isoformat()})

    def _poll_delay(self, job: Job, polls: int) -> float:
        """Adaptive: first look just after the usual run time of this remediation, then tighter."""
        return next_poll_delay(polls, self.settings.poll_seconds, self.durations.expected(job.remediation))

    def _running(self, job: Job, remediation: Remediation) -> Step:
        now = self.clock.now()
        try:
            status = self.compute.get_run(job.target, job.run["name"])
        except NotFound:
            return self._finish(job, jobs.FAILED, "the run command disappeared before it reported a result")
        except CloudError as error:
            return self._retry_later(job, error)
        if status.done:
            return self._collect(job, status)
        last = _parse_time(job.run.get("lastPolledAt"))
        if last is not None and (now - last).total_seconds() < 0.5 * self._poll_delay(
            job, int(job.run.get("polls", 0))
        ):
            # A second message chain for this job (a redelivered duplicate): let it end here.
            return Step(job, None, "duplicate poll dropped")
        started = _parse_time(job.run.get("startedAt")) or now
        deadline = started + timedelta(seconds=remediation.timeout_seconds + RUN_GRACE_SECONDS)
        if now >= deadline:
            try:
                self.compute.cancel_run(job.target, job.run["name"])
            except CloudError as error:
                log.warning("job %s: could not delete run command: %s", job.id, error)
            return self._finish(
                job,
                jobs.TIMED_OUT,
                f"no result within {remediation.timeout_seconds}s (+{RUN_GRACE_SECONDS}s)",
                outcome={**job.outcome, "executionState": status.state, "outputTail": status.output},
            )
        # A write per poll: a duplicate message for this job loses the swap and stops here.
        polls = int(job.run.get("polls", 0)) + 1
        job = replace(job, attempts=0)  # a poll that answered ends a run of transient errors
        job = self._write(
            replace(
                job,
                run={**job.run, "polls": polls, "lastPolledAt": now.isoformat()},
                updated_at=now.isoformat(),
            )
        )
        return Step(job, self._poll_delay(job, polls))

    def _collect(self, job: Job, status: RunStatus) -> Step:
        now = self.clock.now()
        outcome = {
            **job.outcome,
            "executionState": status.state,
            "exitCode": status.exit_code,
            "outputTail": status.output,
            "errorTail": status.error,
            "result": dict(status.result) if status.result is not None else None,
            "runStartedAt": status.started_at,
            "runEndedAt": status.ended_at,
        }
        started, ended = _parse_time(status.started_at), _parse_time(status.ended_at)
        if started and ended:
            outcome["runSeconds"] = round((ended - started).total_seconds(), 3)
            if status.state == "succeeded":
                self.durations.record(job.remediation, outcome["runSeconds"])
        if status.state == "timed-out":
            return self._finish(job, jobs.TIMED_OUT, "the run command timed out on the VM", outcome=outcome)
        if status.state == "canceled":
            return self._finish(job, jobs.CANCELLED, "the run command was canceled", outcome=outcome)
        verifying = jobs.transition(
            job,
            jobs.VERIFYING,
            now=now,
            actor=ACTOR,
            reason=f"run command ended: {status.state}",
            outcome=outcome,
        )
        # Verification reads only what was just collected: judge now and write both steps at once (one
        # write and one message fewer per job). A crash before the write repeats the read of the result.
        return self._delete_run(self._verifying(verifying, self.catalog.get(job.remediation)))

    def _delete_run(self, step: Step) -> Step:
        """Once its result is on record, the managed run command goes: left on the VM, its script and
        output stay readable to anyone with VM read access and pile up. A crash before this leaves it
        (the result is safe); what happened is recorded on the job."""
        job = step.job
        if job.run.get("mode") == "action":
            return step  # a classic run leaves no resource behind
        try:
            self.compute.cancel_run(job.target, job.run["name"])
            cleanup = "deleted"
        except RemediationError as error:
            log.warning("job %s: could not delete run command: %s", job.id, error)
            cleanup = f"left on the VM: {error}"
        now = self.clock.now()
        job = self._write(
            replace(job, outcome={**job.outcome, "runCommandCleanup": cleanup}, updated_at=now.isoformat())
        )
        return Step(job, step.requeue_after, step.note)

    def _verifying(self, job: Job, remediation: Remediation) -> Step:
        result = job.outcome.get("result")
        verdict = verify(
            remediation,
            exit_code=job.outcome.get("exitCode"),
            result=result if isinstance(result, Mapping) else None,
            parameters=job.parameters,
            dry_run=job.dry_run,
        )
        outcome = {**job.outcome, "verification": verdict.reason, "verified": verdict.ok and not job.dry_run}
        if verdict.refused:
            outcome["refused"] = True
        return self._finish(
            job, jobs.SUCCEEDED if verdict.ok else jobs.FAILED, verdict.reason, outcome=outcome
        )

    # -- helpers ----------------------------------------------------------------------------

    def _switches(self) -> tuple[Switches, str]:
        return current_switches(self.settings.kill_switch, self.settings.dry_run, self.switch_source)

    def _recheck_switches(self, job: Job, before: str) -> Job | Step:
        """Right before an outside action: a Step ending the job when the kill switch is on; else the
        job, turned into a dry run when dry run was switched on since it was planned."""
        switches, why = self._switches()
        if switches.kill_switch:
            return self._finish(job, jobs.SKIPPED, f"kill-switch: {why} (checked before {before})")
        if switches.dry_run and not job.dry_run:
            now = self.clock.now()
            job = jobs.note(
                replace(job, dry_run=True),
                f"dry run was switched on before {before}: this job now only reports what it would do",
                now=now,
            )
        return job

    def _finish(
        self, job: Job, target: str, reason: str, *, actor: str = ACTOR, outcome: dict[str, Any] | None = None
    ) -> Step:
        now = self.clock.now()
        changes: dict[str, Any] = {}
        if outcome is not None:
            changes["outcome"] = outcome
        created = _parse_time(job.created_at)
        if created:
            changes["outcome"] = {
                **changes.get("outcome", job.outcome),
                "totalSeconds": round((now - created).total_seconds(), 3),
            }
        job = self._write(jobs.transition(job, target, now=now, actor=actor, reason=reason, **changes))
        if target in (jobs.FAILED, jobs.TIMED_OUT):
            self._failed(job)
        self.store.release_lease(job.target_key, job.id, ran=run_record(job))
        return Step(job, None, reason)

    def _retry_later(self, job: Job, error: CloudError) -> Step:
        if isinstance(error, Permanent):
            # TLS verification, no credential, 401/403, a refusal: retrying for minutes changes nothing.
            target = jobs.FAILED if jobs.FAILED in jobs.ALLOWED[job.status] else jobs.EXPIRED
            return self._finish(job, target, self._abandon(job, f"{type(error).__name__}: {error}"))
        attempts = job.attempts + 1
        if attempts > MAX_RETRIES:
            target = jobs.FAILED if jobs.FAILED in jobs.ALLOWED[job.status] else jobs.EXPIRED
            return self._finish(
                job, target, self._abandon(job, f"gave up after {MAX_RETRIES} retries: {error}")
            )
        if isinstance(error, Throttled) and error.retry_after:
            delay = error.retry_after
        else:
            delay = min(MAX_BACKOFF_SECONDS, max(self.settings.poll_seconds, 1.0) * 2 ** (attempts - 1))
        now = self.clock.now()
        job = self._write(
            replace(
                job,
                attempts=attempts,
                updated_at=now.isoformat(),
                outcome={**job.outcome, "lastError": f"{type(error).__name__}: {error}"},
            )
        )
        return Step(job, delay, f"retry {attempts} in {delay:g}s: {error}")

    def _abandon(self, job: Job, reason: str) -> str:
        """Before a live run's job is closed, stop the run: its lease is about to be released."""
        if job.status != jobs.RUNNING:
            return reason
        try:
            self.compute.cancel_run(job.target, job.run["name"])
        except RemediationError as error:
            return f"{reason}; the run command could not be stopped ({error}): its outcome is unknown"
        return f"{reason}; the run command was stopped, its outcome is unknown"

    def _write(self, job: Job) -> Job:
        return self.store.update(job)

    def _recent_failures(self, remediation: str, now: datetime) -> list[datetime]:
        """When runs of this remediation tried and failed lately. A run whose script refused its input
        (exit 2) changed nothing and says nothing about the remediation: counting it would let anyone who
        can send three alerts with a bogus mount point open the breaker for every VM. Skipped jobs never
        ran, so they are not listed at all.

        Read from the store at most every ``BREAKER_FACTS_SECONDS`` per remediation (a query that scans
        the jobs on Table Storage), and kept up to date with the failures this process writes: a failure
        another process writes is seen that much later, while a breaker is about many failures over many
        minutes."""
        with self._failures_lock:
            cached = self._failures.get(remediation)
        if cached is not None and timedelta(0) <= now - cached[0] < timedelta(seconds=BREAKER_FACTS_SECONDS):
            return list(cached[1])
        since = now - self.guards.breaker_window - self.guards.breaker_open
        failed = self.store.list(remediation=remediation, status=[jobs.FAILED, jobs.TIMED_OUT], since=since)
        tried = [j for j in failed if not refused_run(j.outcome)]
        times = [t for t in (_parse_time(j.updated_at) for j in tried) if t is not None]
        with self._failures_lock:
            self._failures[remediation] = (now, times)
        return list(times)

    def _failed(self, job: Job) -> None:
        """A failure this process wrote joins its view of the breaker's facts at once."""
        if refused_run(job.outcome):
            return
        at = _parse_time(job.updated_at)
        with self._failures_lock:
            cached = self._failures.get(job.remediation)
            if cached is not None and at is not None:
                self._failures[job.remediation] = (cached[0], [*cached[1], at])
