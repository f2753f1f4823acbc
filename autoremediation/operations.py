"""What an operator can do to a job: approve or reject it. Shared by the HTTP API and the CLI."""

from __future__ import annotations

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
