"""Release by chain: each campaign job names the job it releases when it ends.

At creation the campaign orders its targets by VM id and job ``k`` records ``releases`` = job
``k + c`` (``c`` the campaign's concurrency); the start releases the first ``c``. So the jobs form ``c``
chains, one job of each in flight at a time, and a freed slot is refilled the moment a job ends, by the
worker that ended it:

* :func:`on_job_finished` reads the campaign record once. Running: it sends its successor's message
  (a duplicate is harmless, the runner's compare-and-swap absorbs it). Stopping or ended: nothing.
* Only a failure writes the record: a compare-and-swap that sets the job's bit among the failures
  (idempotent) and, past ``maxErrors``, stops the campaign and cancels the jobs not started.
* The last job of a chain (no successor) looks whether any campaign job is unfinished and, if none,
  marks the campaign completed (a stopping one, stopped).

Storage per job: one record read and one queue message, whatever the campaign's size; no list, no
write, so workers never contend on the record. The queue worker calls :func:`on_job_finished` after a
job's last step, and again when a redelivered message finds the job already ended: a crash between the
end and the send heals itself. The CLI's driver calls it from the step that read a run's result, right
after the job's end is written and before its lease goes back and its run command is deleted
(``Runner.on_end``), and after the step for any other end. What a lost message could still leave (a job
released but never received) the sweeper repairs (``campaigns.tick``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from . import jobs
from .campaign_record import (
    ACTOR,
    CAS_ATTEMPTS,
    COMPLETED,
    ERRORS,
    IN_FLIGHT,
    RESEND_AFTER,
    RUNNING,
    STOPPED,
    STOPPING,
    UNFINISHED,
    change,
    failed_bit,
    with_failure,
)
from .errors import ConcurrencyConflict, InvalidTransition, NotFound
from .jobs import Job, parse_time
from .ports import JobStore

if TYPE_CHECKING:
    from .services import Services

log = logging.getLogger("autoremediation.campaigns")


def successors(job_ids: Sequence[str], concurrency: int) -> list[str | None]:
    """For jobs in release order, the job each one releases: the one ``concurrency`` places later."""
    return [job_ids[k + concurrency] if k + concurrency < len(job_ids) else None for k in range(len(job_ids))]


def on_job_finished(
    services: Services, job: Job, *, send: Callable[[str], None] | None = None
) -> dict[str, Any] | None:
    """A campaign job ended: release its successor, count it against the budget if it failed.

    Returns the campaign record as it stands after this (None for a job that is not a campaign's or
    has not ended). Safe to call again for the same job. ``send`` releases a job (its message now, by
    default; the queue worker carries the first one on itself).
    """
    send = send or services.queue.send
    if not job.campaign_id or not job.terminal:
        return None
    store = services.store
    try:
        campaign = store.get_campaign(job.campaign_id)
    except NotFound:
        log.warning("job %s names campaign %s, which does not exist", job.id, job.campaign_id)
        return None
    if campaign.get("status") == RUNNING and job.status in ERRORS:
        campaign = _count_failure(services, campaign, job)
    status = campaign.get("status")
    if status == RUNNING and job.campaign_index is None and "releasing" in campaign:
        campaign = release_legacy(services, campaign, store.list(campaign_id=job.campaign_id), send=send)
        return complete_if_done(services, campaign)
    if status == RUNNING:
        if job.releases:
            send(job.releases)
            return campaign
        return complete_if_done(services, campaign)
    if status == STOPPING:
        return settle_stopping(services, campaign)
    return campaign  # ended, or still being created (an operator ended one of its jobs)


def on_operator_end(services: Services, job: Job) -> dict[str, Any] | None:
    """An operator ended a campaign job (cancel, reject): release its successor now if it held a slot.

    A job ended while still planned held none: released or not, the chain passes through it when its
    own message or its releaser's arrives and finds it ended. Releasing here as well would put a second
    job of its chain in flight, past the campaign's concurrency.
    """
    if not job.campaign_id or not job.terminal or not job.history:
        return None
    if job.history[-1].source == jobs.PLANNED:
        return None
    return on_job_finished(services, job)


def _count_failure(services: Services, campaign: Mapping[str, Any], job: Job) -> dict[str, Any]:
    """Add ``job`` to the failures (once); past the budget, the campaign stops."""
    limit, total = int(campaign["errorLimit"]), int(campaign.get("targetCount") or 0)
    if limit >= total:
        return dict(campaign)  # more failures than targets cannot happen: nothing to count
    now = services.clock.now()
    index = job.campaign_index
    if index is None:
        # A job made without a place in the order (by hand): count the failures the slow way.
        failed = len(services.store.list(campaign_id=str(campaign["id"]), status=sorted(ERRORS)))
        if failed <= limit:
            return dict(campaign)
        return change(services.store, str(campaign["id"]), lambda c: _halted(c, failed, now), campaign)

    def edit(current: dict[str, Any]) -> dict[str, Any] | None:
        if current.get("status") != RUNNING or failed_bit(current, index):
            return None
        counted = with_failure(current, index)
        if int(counted["failedCount"]) <= limit:
            return counted
        return _halted(counted, int(counted["failedCount"]), now)

    return change(services.store, str(campaign["id"]), edit, campaign)


def _halted(campaign: dict[str, Any], failed: int, now: datetime) -> dict[str, Any] | None:
    if campaign.get("status") != RUNNING:
        return None
    reason = (
        f"{failed} VM(s) failed, more than the {campaign['errorLimit']} allowed "
        f"(maxErrors {campaign.get('maxErrors')})"
    )
    return stopping(campaign, reason, now)


def stopping(campaign: Mapping[str, Any], reason: str, now: datetime) -> dict[str, Any]:
    """The record with the campaign stopping: no job is released after this is committed."""
    log.warning("campaign %s stops: %s", campaign.get("id"), reason)
    return {
        **campaign,
        "status": STOPPING,
        "stopReason": campaign.get("stopReason") or reason,
        "updatedAt": now.isoformat(),
    }


def settle_stopping(services: Services, campaign: Mapping[str, Any]) -> dict[str, Any]:
    """Cancel the jobs a stopping campaign will not start; once none is running, it is stopped."""
    store = services.store
    campaign_id = str(campaign["id"])
    now = services.clock.now()
    unfinished = store.list(campaign_id=campaign_id, status=UNFINISHED)
    waiting = [j for j in unfinished if j.status in (jobs.PLANNED, jobs.AWAITING_APPROVAL)]
    still = cancel(store, waiting, str(campaign.get("stopReason") or "stopped"), now)
    running = [j for j in unfinished if j.status not in (jobs.PLANNED, jobs.AWAITING_APPROVAL)]
    if running or still:
        return dict(campaign)
    return _end(services, campaign, STOPPING, STOPPED)


def complete_if_done(services: Services, campaign: Mapping[str, Any]) -> dict[str, Any]:
    """The last job of a chain ended: the campaign is complete when no job of it is unfinished.

    Each chain's last job looks after its own end is stored, so the one that looks last sees every
    other end: one of them completes the campaign.
    """
    if services.store.list(campaign_id=str(campaign["id"]), status=UNFINISHED, limit=1):
        return dict(campaign)
    return _end(services, campaign, RUNNING, COMPLETED)


def _end(services: Services, campaign: Mapping[str, Any], source: str, target: str) -> dict[str, Any]:
    stamp = services.clock.now().isoformat()

    def edit(current: dict[str, Any]) -> dict[str, Any] | None:
        if current.get("status") != source:
            return None
        return {**current, "status": target, "updatedAt": stamp, "endedAt": stamp}

    ended = change(services.store, str(campaign["id"]), edit, campaign)
    if ended.get("status") == target and ended.get("endedAt") == stamp:
        log.info("campaign %s %s", campaign["id"], target)
    return ended


def cancel(store: JobStore, waiting: Sequence[Job], reason: str, now: datetime) -> list[Job]:
    """Cancel jobs not started; return those a worker took first (they finish like the others)."""
    taken: list[Job] = []
    for job in waiting:
        current = job
        for _ in range(CAS_ATTEMPTS):
            if current.terminal:
                break
            if current.status not in (jobs.PLANNED, jobs.AWAITING_APPROVAL):
                taken.append(current)
                break
            try:
                store.update(
                    jobs.transition(
                        current, jobs.CANCELLED, now=now, actor=ACTOR, reason=f"campaign stopped: {reason}"
                    )
                )
                break
            except ConcurrencyConflict:
                current = store.get(job.id)
            except InvalidTransition:
                break
    return taken


def released(campaign_jobs: Sequence[Job], started_at: datetime | None) -> list[tuple[Job, datetime | None]]:
    """The planned jobs whose release already happened, with when: a chain's first job (no job
    releases it) at the start, any other once the job that releases it has ended."""
    releaser = {j.releases: j for j in campaign_jobs if j.releases}
    found: list[tuple[Job, datetime | None]] = []
    for job in campaign_jobs:
        if job.status != jobs.PLANNED or job.campaign_index is None:
            continue  # not started, or not in a chain (see ``release_legacy``)
        before = releaser.get(job.id)
        if before is None:
            found.append((job, started_at))
        elif before.terminal:
            found.append((job, parse_time(before.updated_at)))
    return found


def release_legacy(
    services: Services,
    campaign: Mapping[str, Any],
    campaign_jobs: Sequence[Job],
    *,
    send: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """A campaign started by an earlier version, whose jobs name no successor, is released the way it
    was then: whoever repairs it (a job of it that ends, the sweeper) fills the free slots in VM id
    order, the record's ``releasing`` naming what was sent and not yet picked up. Its compare-and-swap
    keeps two repairs from filling the same slot."""
    now = services.clock.now()
    releasing = dict(campaign.get("releasing") or {})
    planned = sorted(
        (j for j in campaign_jobs if j.status == jobs.PLANNED), key=lambda j: (j.target_key, j.id)
    )
    pending = [j for j in planned if j.id in releasing]
    busy = len(pending) + sum(1 for j in campaign_jobs if j.status in IN_FLIGHT)
    fresh = [j for j in planned if j.id not in releasing][: max(0, int(campaign["concurrency"]) - busy)]
    lost = [j for j in pending if now - (parse_time(releasing[j.id]) or now) >= RESEND_AFTER]
    kept = {j.id: releasing[j.id] for j in pending}
    kept.update({j.id: now.isoformat() for j in (*fresh, *lost)})
    if kept == releasing:
        return dict(campaign)
    try:
        updated = services.store.update_campaign(
            {**campaign, "releasing": kept, "updatedAt": now.isoformat()}
        )
    except ConcurrencyConflict:
        return services.store.get_campaign(str(campaign["id"]))  # another repair filled the slots
    for job in (*fresh, *lost):
        (send or services.queue.send)(job.id)
    return updated
