"""What every step of the runner shares: its result (``Step``), the ports it works through, and the
ways a step ends: one compare-and-swap write (``_write``), ending the job and giving its VM's lease back
with the run on record (``_finish``), retrying later with back-off (``_retry_later``). Also the lease's
length and renewal, the adaptive poll delay, the kill and dry-run switches, and the breaker's facts.

The steps themselves are in ``dispatch`` (planned to a started run command) and ``collect`` (polling,
result, verification, cleanup); ``runner.Runner`` puts them together.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from . import jobs
from .catalog import Catalog, Remediation
from .errors import (
    CloudError,
    Permanent,
    RemediationError,
    Throttled,
)
from .jobs import Job, Transition, parse_time
from .policy import GuardSettings
from .polling import RunDurations, next_poll_delay
from .ports import (
    Clock,
    Compute,
    JobStore,
    RunStatus,
    Switches,
    SwitchSource,
    UploadGrants,
)
from .settings import Settings
from .switches import current_switches
from .verification import MAY_STILL_RUN, ended_at, may_still_run, refused_run, run_record

log = logging.getLogger("autoremediation.runner")
ACTOR = "worker"
MAX_RETRIES = 8
MAX_BACKOFF_SECONDS = 300.0
RUN_GRACE_SECONDS = 120


def longest_run(remediation: Remediation) -> int:
    """Seconds a run may take from its dispatch before this app gives up on it: the remediation's
    timeout and the grace after it."""
    return remediation.timeout_seconds + RUN_GRACE_SECONDS


# How long a dispatch claim made by another execution is left to it before a step takes it over: longer
# than a live execution takes from its claim to its PUT (the ARM client's retries included). An
# execution slower than that (e.g. waiting on a drained ARM budget) is met by the run command's
# re-attach by name, as any redelivery is.
CLAIM_GRACE_SECONDS = 120.0
REMEMBERED_CLAIMS = 4096  # claims this process made and has not sent yet (normally gone at once)
# How much earlier than its lease's expiry a job must have ended for the end alone to free its VM (no
# release): more than the clocks of two instances can disagree by.
LEASE_END_MARGIN_SECONDS = 60.0
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


def lease_tag_of(store: JobStore, job: Job) -> dict[str, str]:
    """The lease's tag as the job's store just took it, for the job to carry to its release (which
    may run in another instance): ``{"leaseTag": ...}``, or nothing when the store has none."""
    tag = store.lease_tag(job.target_key)
    return {"leaseTag": tag} if tag else {}


def lease_taken(store: JobStore, job: Job, now: datetime, ttl: float) -> dict[str, str]:
    """What the job records of a take or renewal of its lease at ``now``: when (``leaseAt``, for the
    next renewal), until when (``leaseUntil``: the bound the store set on its pending run) and the tag."""
    until = now + timedelta(seconds=ttl)
    return {"leaseAt": now.isoformat(), "leaseUntil": until.isoformat(), **lease_tag_of(store, job)}


def lease_left_to_end(job: Job) -> bool:
    """Whether the ended job's end alone frees its VM, its run counted from the job: the lease was
    surely still its own when it ended (its bound, as its own take or renewal set it, minus the clocks'
    margin, is after the end), so no one else took it meanwhile and the run ended within its bound. A
    lease that may have lapsed (someone may have taken the VM over), or one a job of the previous
    version took (no ``leaseUntil``), is released explicitly, with the run."""
    ahead = _bound_after_end(job)
    return ahead is not None and ahead > LEASE_END_MARGIN_SECONDS


def keeps_its_lease(job: Job) -> bool:
    """Whether the ended job holds its VM with no release: its script may still run, so it never frees
    the VM early, not even near its lease's bound: like a live job's, its lease frees the VM when it
    lapses, and its run counts to that bound (``verification.run_record``, read from the job by the
    store while the lease names it as its remediation's pending run). Only once the lease has surely
    lapsed (its end is more than the clocks' margin after the bound) is it released, which then frees
    nothing and records its run."""
    if not may_still_run(job):
        return False
    ahead = _bound_after_end(job)
    return ahead is None or -ahead <= LEASE_END_MARGIN_SECONDS


def _bound_after_end(job: Job) -> float | None:
    """Seconds from the ended job's end to its lease's bound as its own take or renewal set it
    (negative: it ended after the bound); None when either is unknown."""
    until = parse_time(job.run.get("leaseUntil"))
    ended = ended_at(job)
    if until is None or ended is None:
        return None
    return (until - ended).total_seconds()


class StepBase:
    """The state and the shared helpers of the runner's steps (see ``runner.Runner``)."""

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
        # remediation -> (read at, {job id: when it failed}) of its runs that failed lately: see
        # ``_recent_failures``.
        self._failures: dict[str, tuple[datetime, dict[str, datetime]]] = {}
        self._failures_lock = threading.Lock()
        self._failures_refresh = threading.Lock()
        # job id -> version of the write by which this process claimed the job's dispatch, until a step
        # of this process takes the claim to send the run command (see ``_take_claim``).
        self._claims: OrderedDict[str, int] = OrderedDict()
        # None: only the settings given here (unit tests); the app passes EnvironmentSwitches.
        self.switch_source = switches

    def _lease_ttl(self, remediation: Remediation) -> float:
        """Long enough to outlive the run and the longest back-off, even if a renewal is missed."""
        return max(self.settings.lease_seconds, longest_run(remediation) + MAX_BACKOFF_SECONDS)

    def _renew_lease(self, job: Job) -> Job:
        """A dispatched job renews its VM's lease once a third of it is used, so it cannot lapse under
        a live run; the time goes into the job with this step's own write (no extra write per step)."""
        ttl = self._lease_ttl(self.catalog.get(job.remediation))
        now = self.clock.now()
        taken = parse_time(job.run.get("leaseAt"))
        if taken is not None and (now - taken).total_seconds() < ttl / 3:
            return job
        if not self.store.acquire_lease(job.target_key, job.id, ttl, now, remediation=job.remediation):
            log.warning(
                "job %s: lost the lease of %s to %s",
                job.id,
                job.target,
                self.store.lease_holder(job.target_key, now),
            )
            return job
        return replace(job, run={**job.run, **lease_taken(self.store, job, now, ttl)})

    def _poll_delay(self, job: Job, polls: int) -> float:
        """Adaptive: first look just after the usual time from the dispatch to the result of this
        remediation (counted from the dispatch, as the estimate is), then tighter."""
        dispatched = parse_time(job.run.get("dispatchedAt")) if polls <= 0 else None
        elapsed = (self.clock.now() - dispatched).total_seconds() if dispatched else 0.0
        expected = self.durations.expected(job.remediation)
        return next_poll_delay(polls, self.settings.poll_seconds, expected, elapsed=elapsed)

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
        self,
        job: Job,
        target: str,
        reason: str,
        *,
        actor: str = ACTOR,
        outcome: dict[str, Any] | None = None,
        release: bool = True,
        still_running: bool = False,
    ) -> Step:
        """End the job (one write), then give its VM's lease back with its run on record. ``release``
        False: the caller knows the job does not hold the lease. ``still_running``: its script may still
        run (it could not be stopped): the job is marked so, and keeps its VM to its lease's bound."""
        now = self.clock.now()
        changes: dict[str, Any] = {}
        if outcome is not None:
            changes["outcome"] = outcome
        if still_running:
            changes["run"] = {**job.run, MAY_STILL_RUN: True}
        created = parse_time(job.created_at)
        if created:
            changes["outcome"] = {
                **changes.get("outcome", job.outcome),
                "totalSeconds": round((now - created).total_seconds(), 3),
            }
        job = self._write(jobs.transition(job, target, now=now, actor=actor, reason=reason, **changes))
        if target in (jobs.FAILED, jobs.TIMED_OUT):
            self._failed(job)
        if release:
            self._release_lease(job)
        return Step(job, None, reason)

    def _release_lease(self, job: Job) -> None:
        """Give the job's lease back early, recording its run (if it ran) for the cooldown; safe to
        repeat. (Its end frees it anyway; a release is needed only when the lease may have lapsed.) A job
        whose script may still run keeps its VM to its lease's bound: no release then."""
        if keeps_its_lease(job):
            return
        self.store.release_lease(job.target_key, job.id, ran=run_record(job), tag=job.run.get("leaseTag"))

    def _retry_later(self, job: Job, error: CloudError) -> Step:
        if isinstance(error, Permanent):
            # TLS verification, no credential, 401/403, a refusal: retrying for minutes changes nothing.
            target = jobs.FAILED if jobs.FAILED in jobs.ALLOWED[job.status] else jobs.EXPIRED
            why, running = self._abandon(job, f"{type(error).__name__}: {error}")
            return self._finish(job, target, why, still_running=running)
        attempts = job.attempts + 1
        if attempts > MAX_RETRIES:
            target = jobs.FAILED if jobs.FAILED in jobs.ALLOWED[job.status] else jobs.EXPIRED
            why, running = self._abandon(job, f"gave up after {MAX_RETRIES} retries: {error}")
            return self._finish(job, target, why, still_running=running)
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

    def _abandon(self, job: Job, reason: str) -> tuple[str, bool]:
        """Before a live run's job is closed, stop the run: the reason to record, and whether the script
        may still run (it could not be stopped: the job then keeps its VM to its lease's bound)."""
        if job.status != jobs.RUNNING:
            return reason, False
        try:
            self.compute.cancel_run(job.target, job.run["name"])
        except RemediationError as error:
            return f"{reason}; the run command could not be stopped ({error}): its outcome is unknown", True
        return f"{reason}; the run command was stopped, its outcome is unknown", False

    def _write(self, job: Job) -> Job:
        return self.store.update(job)

    def _remember_claim(self, job: Job) -> None:
        with self._failures_lock:
            self._claims[job.id] = job.version
            while len(self._claims) > REMEMBERED_CLAIMS:
                self._claims.popitem(last=False)

    def _take_claim(self, job: Job) -> bool:
        """True once for a claim this process wrote (and nothing since): the step that gets it knows that
        no run command was sent under it, by any execution. Another step, here or elsewhere, finds the
        claim taken and treats it as another execution's."""
        with self._failures_lock:
            if self._claims.get(job.id) != job.version:
                return False
            del self._claims[job.id]
            return True

    def _recent_failures(self, remediation: str, now: datetime) -> list[datetime]:
        """When runs of this remediation tried and failed lately. A run whose script refused its input
        (exit 2) changed nothing and says nothing about the remediation: counting it would let anyone who
        can send three alerts with a bogus mount point open the breaker for every VM. Skipped jobs never
        ran, so they are not listed at all.

        Read from the store at most every ``BREAKER_FACTS_SECONDS`` per remediation (a query that scans
        the jobs on Table Storage), and kept up to date with the failures this process writes: a failure
        another process writes is seen that much later, while a breaker is about many failures over many
        minutes."""

        def fresh(cached: tuple[datetime, dict[str, datetime]] | None) -> bool:
            return cached is not None and timedelta(0) <= now - cached[0] < timedelta(
                seconds=BREAKER_FACTS_SECONDS
            )

        with self._failures_lock:
            cached = self._failures.get(remediation)
        if cached is not None and fresh(cached):
            return list(cached[1].values())
        with self._failures_refresh:  # one query per process at a time; the other threads use its answer
            with self._failures_lock:
                cached = self._failures.get(remediation)
            if cached is not None and fresh(cached):
                return list(cached[1].values())
            since = now - self.guards.breaker_window - self.guards.breaker_open
            failed = self.store.list(
                remediation=remediation, status=[jobs.FAILED, jobs.TIMED_OUT], since=since
            )
            found = {j.id: parse_time(j.updated_at) for j in failed if not refused_run(j.outcome)}
            times = {job_id: at for job_id, at in found.items() if at is not None}
            with self._failures_lock:
                # A failure this process wrote while the query ran counts too: by job, so once.
                latest = self._failures.get(remediation)
                written = {k: v for k, v in (latest[1] if latest else {}).items() if k not in found}
                self._failures[remediation] = (now, {**written, **times})
                return list({**written, **times}.values())

    def _failed(self, job: Job) -> None:
        """A failure this process wrote joins its view of the breaker's facts at once."""
        if refused_run(job.outcome):
            return
        at = parse_time(job.updated_at)
        with self._failures_lock:
            cached = self._failures.get(job.remediation)
            if cached is not None and at is not None:
                self._failures[job.remediation] = (cached[0], {**cached[1], job.id: at})

    # -- implemented by the collect steps (collect.py) ----------------------------------------------

    def _collect(self, job: Job, status: RunStatus) -> Step:
        raise NotImplementedError
