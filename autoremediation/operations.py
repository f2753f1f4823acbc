"""What an operator can do to a job: approve, reject, cancel or retry it. Shared by the API and the CLI."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from . import jobs
from .errors import ConcurrencyConflict, InvalidTransition
from .jobs import Job
from .ports import Clock, JobStore, Queue
from .step_common import keeps_its_lease
from .verification import MAY_STILL_RUN, run_record

CAS_ATTEMPTS = 5


def _expired(job: Job, now: datetime) -> bool:
    return bool(job.approval_expires_at) and now >= datetime.fromisoformat(str(job.approval_expires_at))


def _review(decision: str, actor: str, name: str, now: datetime, reason: str) -> dict[str, str]:
    return {"decision": decision, "by": actor, "name": name or actor, "at": now.isoformat(), "reason": reason}


def _label(actor: str, name: str) -> str:
    return f"{name} ({actor})" if name and name != actor else actor


def same_identity(first: str, second: str) -> bool:
    """Object ids are GUIDs, whose case carries no meaning."""
    return first.strip().lower() == second.strip().lower()


def approve(
    store: JobStore,
    queue: Queue,
    clock: Clock,
    job_id: str,
    *,
    actor: str,
    reason: str = "",
    actor_name: str = "",
) -> Job:
    """Record the approval and wake the worker; it re-checks every guard before it dispatches.

    ``actor`` is the approver's identity (an object id through the API): it must differ from the
    requester's, whoever they are (separation of duties has no exempt identity).
    """
    for _ in range(CAS_ATTEMPTS):
        job = store.get(job_id)
        now = clock.now()
        if job.status != jobs.AWAITING_APPROVAL:
            raise InvalidTransition(f"job {job_id} is {job.status}, not awaiting approval")
        if job.approved_by:
            return job
        if same_identity(actor, job.requested_by):
            raise InvalidTransition(
                f"job {job_id}: {_label(actor, actor_name)} requested it and cannot approve it too "
                "(separation of duties)"
            )
        if _expired(job, now):
            raise InvalidTransition(f"job {job_id}: the approval window closed at {job.approval_expires_at}")
        approved = jobs.note(
            replace(job, approved_by=actor, review=_review("approved", actor, actor_name, now, reason)),
            f"approved by {_label(actor, actor_name)}" + (f": {reason}" if reason else ""),
            now=now,
        )
        try:
            saved = store.update(approved)
        except ConcurrencyConflict:
            continue
        queue.send(job_id)
        return saved
    raise ConcurrencyConflict(f"job {job_id}: could not record the approval")


def reject(
    store: JobStore, clock: Clock, job_id: str, *, actor: str, reason: str = "", actor_name: str = ""
) -> Job:
    for _ in range(CAS_ATTEMPTS):
        job = store.get(job_id)
        if job.status != jobs.AWAITING_APPROVAL:
            raise InvalidTransition(f"job {job_id} is {job.status}, not awaiting approval")
        now = clock.now()
        rejected = jobs.transition(
            job,
            jobs.CANCELLED,
            now=now,
            actor=actor,
            reason=f"rejected by {_label(actor, actor_name)}" + (f": {reason}" if reason else ""),
            review=_review("rejected", actor, actor_name, now, reason),
        )
        try:
            saved = store.update(rejected)
        except ConcurrencyConflict:
            continue
        store.release_lease(job.target_key, job.id)
        return saved
    raise ConcurrencyConflict(f"job {job_id}: could not record the rejection")


# Stops a job's run command (deletes a managed one); returns what happened, in words, for the record.
# What became of a running job's run command: a line for the record, and whether it is stopped.
StopRun = Callable[[Job], tuple[str, bool]]


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
    script); without one, or when it cannot be stopped, the record says the script may run to its end,
    and the job keeps its VM to its lease's bound (``run.mayStillRun``). The job's messages find it
    cancelled and do nothing more.
    """
    for _ in range(CAS_ATTEMPTS):
        job = store.get(job_id)
        why = f"cancelled by {actor}" + (f": {reason}" if reason else "")
        jobs.cancel(job, now=clock.now(), actor=actor, reason=why)  # refuses early, before any ARM call
        stopped = True
        if job.status == jobs.RUNNING:
            if stop_run is None:
                why, stopped = why + "; the run command was not stopped: it may run to its end", False
            else:
                said, stopped = stop_run(job)
                why += "; " + said
        cancelled = jobs.cancel(job, now=clock.now(), actor=actor, reason=why)
        if not stopped:
            cancelled = replace(cancelled, run={**cancelled.run, MAY_STILL_RUN: True})
        try:
            saved = store.update(cancelled)
        except ConcurrencyConflict:
            continue
        if not keeps_its_lease(saved):
            # A run stopped part way may have changed the VM: its end is what the cooldown counts from.
            store.release_lease(job.target_key, job.id, ran=run_record(saved))
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
