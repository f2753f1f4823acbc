"""What an operator can do to a job: approve or reject it. Shared by the HTTP API and the CLI."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from . import jobs
from .errors import ConcurrencyConflict, InvalidTransition
from .jobs import Job
from .ports import Clock, JobStore, Queue

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
