"""What an operator can do to a job: approve, reject, cancel or retry it. Shared by the API and the CLI."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from . import jobs
from .errors import ConcurrencyConflict, InvalidTransition
from .jobs import Job
from .ports import Clock, JobStore, Queue

CAS_ATTEMPTS = 5
# Callers known only by a shared secret (a function key): no person to hold to separation of duties.
SHARED_IDENTITIES = frozenset({"function-key"})


def _expired(job: Job, now: datetime) -> bool:
    return bool(job.approval_expires_at) and now >= datetime.fromisoformat(str(job.approval_expires_at))


def approve(store: JobStore, queue: Queue, clock: Clock, job_id: str, *, actor: str, reason: str = "") -> Job:
    """Record the approval and wake the worker; it re-checks every guard before it dispatches."""
    for _ in range(CAS_ATTEMPTS):
        job = store.get(job_id)
        now = clock.now()
        if job.status != jobs.AWAITING_APPROVAL:
            raise InvalidTransition(f"job {job_id} is {job.status}, not awaiting approval")
        if job.approved_by:
            return job
        if actor == job.requested_by and actor not in SHARED_IDENTITIES:
            raise InvalidTransition(
                f"job {job_id}: {actor} requested it and cannot approve it too (separation of duties)"
            )
        if _expired(job, now):
            raise InvalidTransition(f"job {job_id}: the approval window closed at {job.approval_expires_at}")
        approved = jobs.note(
            replace(job, approved_by=actor),
            f"approved by {actor}" + (f": {reason}" if reason else ""),
            now=now,
        )
        try:
            saved = store.update(approved)
        except ConcurrencyConflict:
            continue
        queue.send(job_id)
        return saved
    raise ConcurrencyConflict(f"job {job_id}: could not record the approval")


def reject(store: JobStore, clock: Clock, job_id: str, *, actor: str, reason: str = "") -> Job:
    for _ in range(CAS_ATTEMPTS):
        job = store.get(job_id)
        if job.status != jobs.AWAITING_APPROVAL:
            raise InvalidTransition(f"job {job_id} is {job.status}, not awaiting approval")
        rejected = jobs.transition(
            job,
            jobs.CANCELLED,
            now=clock.now(),
            actor=actor,
            reason=f"rejected by {actor}" + (f": {reason}" if reason else ""),
        )
        try:
            saved = store.update(rejected)
        except ConcurrencyConflict:
            continue
        store.release_lease(job.target_key, job.id)
        return saved
    raise ConcurrencyConflict(f"job {job_id}: could not record the rejection")


# Stops a job's run command (deletes a managed one); returns what happened, in words, for the record.
StopRun = Callable[[Job], str]


def cancel(
    store: JobStore,
    clock: Clock,
    job_id: str,
    *,
    actor: str,
    reason: str = "",
    stop_run: StopRun | None = None,
) -> Job:
    """Stop a planned, waiting or running job, with what became of its run command on record.

    A running job's run command is stopped by ``stop_run`` (deleting a managed run command stops its
    script); without one, or when it cannot be stopped, the record says the script may run to its end.
    The job's messages find it cancelled and do nothing more.
    """
    for _ in range(CAS_ATTEMPTS):
        job = store.get(job_id)
        why = f"cancelled by {actor}" + (f": {reason}" if reason else "")
        jobs.cancel(job, now=clock.now(), actor=actor, reason=why)  # refuses early, before any ARM call
        if job.status == jobs.RUNNING:
            if stop_run is None:
                why += "; the run command was not stopped: it may run to its end"
            else:
                why += "; " + stop_run(job)
        try:
            saved = store.update(jobs.cancel(job, now=clock.now(), actor=actor, reason=why))
        except ConcurrencyConflict:
            continue
        store.release_lease(job.target_key, job.id)
        return saved
    raise ConcurrencyConflict(f"job {job_id}: could not record the cancellation")


def retry(
    store: JobStore, queue: Queue, clock: Clock, job_id: str, *, actor: str, reason: str = ""
) -> tuple[Job, bool]:
    """A new attempt of an ended job: a new job (new id, ``retry_of`` the old one), queued.

    Retrying the same job twice finds the retry it already made (False: not created now). Every guard
    is checked again with fresh VM state, as for any new job (a cooldown may skip it).
    """
    old = store.get(job_id)
    if not old.terminal:
        raise InvalidTransition(f"job {job_id} is {old.status}: cancel it first, or let it end")
    why = f"retry of {old.id} by {actor}" + (f": {reason}" if reason else "")
    new = jobs.new_job(
        idempotency_key=jobs.retry_key(old),
        remediation=old.remediation,
        condition=old.condition,
        target=old.target,
        parameters=dict(old.parameters),
        now=clock.now(),
        actor=actor,
        reason=why,
        signal_id=old.signal_id,
        signal_source=old.signal_source,
        alert_id=old.alert_id,
        dry_run=old.dry_run,
        evidence=dict(old.evidence),
        retry_of=old.id,
    )
    saved, created = store.create(new)
    if created:
        queue.send(saved.id)
    return saved, created
