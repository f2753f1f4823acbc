"""Fleet campaigns: one remediation over many VMs, with a concurrency cap and an error budget.

A campaign is a record plus one job per target VM (``Job.campaign_id``), created ``planned`` WITHOUT a
queue message, in VM id order; each job names the job it releases when it ends, ``concurrency``
places later, and the start releases the first ``concurrency`` (``campaign_chain``). A freed slot is
refilled at once by the worker that freed it, with one record read and one message: no schedule is
kept anywhere, so no driver is needed and a crashed one is missed by nobody.

The modules: ``campaign_request`` checks a request and finds the VMs; this module starts, stops,
resumes and repairs a campaign; ``campaign_chain`` releases; ``campaign_record`` holds the states and
the error budget; ``campaign_counts`` counts the jobs for the API, the CLI and the console.

Job ids come from campaign id + VM + remediation, so starting or resuming a campaign twice never makes a
second job for a VM, and the run command's name (derived from the job id) never runs a script twice.
Guards (opt-in tag, cooldown, lease, breaker, ...) still run per job, in the runner.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from . import jobs
from .campaign_chain import (
    cancel,
    complete_if_done,
    on_job_finished,
    release_legacy,
    released,
    settle_stopping,
    stopping,
    successors,
)
from .campaign_counts import Schedule, campaign_status, status_of
from .campaign_record import (
    CAS_ATTEMPTS,
    COMPLETED,
    CREATING,
    CREATION_TIMEOUT,
    ERRORS,
    FINAL,
    IN_FLIGHT,
    RESEND_AFTER,
    RUNNING,
    STOPPED,
    STOPPING,
    change,
    stop_reason,
)
from .campaign_request import (
    MAX_CONCURRENCY,
    MAX_TARGETS,
    CampaignRequest,
    Limit,
    Selector,
    check_campaign_id,
    idempotency_key,
    parse_request,
    parse_tag,
    resolve_targets,
)
from .errors import ConcurrencyConflict, InvalidInput, NotFound
from .jobs import Job, parse_time
from .polling import next_poll_delay  # noqa: F401  (re-exported: the bench and tests use it here)
from .resources import normalize

if TYPE_CHECKING:
    from .services import Services

__all__ = [
    "CAS_ATTEMPTS",
    "COMPLETED",
    "CREATING",
    "CREATION_TIMEOUT",
    "FINAL",
    "MAX_CONCURRENCY",
    "MAX_TARGETS",
    "RESEND_AFTER",
    "RUNNING",
    "STOPPED",
    "STOPPING",
    "CampaignRequest",
    "Limit",
    "Schedule",
    "Selector",
    "campaign_status",
    "idempotency_key",
    "on_job_finished",
    "parse_request",
    "parse_tag",
    "resolve_targets",
    "resume",
    "start_campaign",
    "stop_campaign",
    "tick",
]

log = logging.getLogger("autoremediation.campaigns")


# ---- starting -------------------------------------------------------------------------------------


def start_campaign(
    services: Services, request: dict[str, Any], actor: str, actor_name: str = ""
) -> dict[str, Any]:
    """Validate, resolve targets, create the record and then the jobs, release the first jobs; the status.

    With an ``id`` that exists already, nothing new is made: the existing campaign's status comes back
    (a retried POST), after finishing its creation if an earlier request was interrupted while making
    the jobs (for the VMs that request resolved: other targets now are refused). InvalidInput, with a
    clear message, on any bad input, before any write.
    """
    parsed = parse_request(request, services)
    store = services.store
    if parsed.campaign_id is not None:
        try:
            existing = store.get_campaign(parsed.campaign_id)
        except NotFound:
            existing = None
        if existing is not None:
            if existing.get("remediation") != parsed.remediation:
                raise InvalidInput(
                    f"campaign {parsed.campaign_id} exists already for {existing.get('remediation')}"
                )
            if existing.get("status") == CREATING:
                targets = resolve_targets(services, parsed.selector)
                _check_same_targets(services, existing, targets)
                made = _make_jobs(services, existing, targets, actor)
                _begin(services, existing, made)
            return campaign_status(services, parsed.campaign_id)
    campaign_id = parsed.campaign_id or f"campaign-{uuid.uuid4().hex[:16]}"
    targets = resolve_targets(services, parsed.selector)
    if not targets:
        raise InvalidInput(f"no VM matches the targets ({parsed.selector.describe()})")
    remediation = services.catalog.get(parsed.remediation)
    now = services.clock.now()
    reason = parsed.reason or f"campaign {campaign_id}"
    record = {
        "id": campaign_id,
        "remediation": remediation.id,
        "parameters": dict(parsed.parameters),
        "targets": parsed.selector.describe(),
        "targetCount": len(targets),
        "maxConcurrency": str(parsed.max_concurrency),
        "maxErrors": str(parsed.max_errors),
        "concurrency": parsed.max_concurrency.concurrency(len(targets)),
        "errorLimit": parsed.max_errors.errors(len(targets)),
        "dryRun": parsed.dry_run,
        "requestedBy": actor,
        "requestedByName": actor_name or actor,
        "reason": reason,
        "createdAt": now.isoformat(),
        "updatedAt": now.isoformat(),
        "status": CREATING,
        "stopReason": "",
        "failedCount": 0,
        "version": 0,
    }
    # The record first, as ``creating``: every job then names a campaign that exists, nothing is
    # released until the jobs are all made, and an interrupted creation is visible (and finished by a
    # retried request with the same id, or stopped by the sweeper once it is clearly abandoned).
    if not store.create_campaign(record):
        # Another request with the same id won the race: that one is the campaign.
        log.info("campaign %s was created concurrently", campaign_id)
        return campaign_status(services, campaign_id)
    made = _make_jobs(services, record, targets, actor)
    # Counted from the jobs just made, as they were written: listing them again would read them all back.
    return status_of(services, _begin(services, record, made), made)


def _check_same_targets(services: Services, record: Mapping[str, Any], targets: Sequence[str]) -> None:
    """A retried request finishes an interrupted creation only for the VMs the first one resolved.

    The jobs made so far name their place in the release order, and each names the job it releases:
    with another set of VMs (one created or deleted since, a retried body with other ids) the jobs still
    to make would chain differently from those made, releasing some jobs twice and others never. The
    retry then changes nothing; the request that made the record (if it still runs) finishes it, or the
    sweeper stops it once abandoned."""
    expected = int(record.get("targetCount") or 0)
    campaign_id = str(record["id"])
    remediation = str(record["remediation"])
    keys = [normalize(target) for target in targets]
    # The chain the retry would write: a made job must sit at its place and release the same job.
    chain = successors(
        [jobs.job_id_for(idempotency_key(campaign_id, target, remediation)) for target in targets],
        int(record["concurrency"]),
    )
    moved = [
        job
        for job in services.store.list(campaign_id=campaign_id)
        if job.campaign_index is not None
        and (
            job.campaign_index >= len(keys)
            or keys[job.campaign_index] != job.target_key
            or chain[job.campaign_index] != job.releases
        )
    ]
    if len(targets) == expected and not moved:
        return
    minutes = int(CREATION_TIMEOUT.total_seconds() // 60)
    differ = f" ({len(moved)} of the jobs made would sit or chain differently)" if moved else ""
    raise InvalidInput(
        f"campaign {record['id']} was being created for {expected} VM(s) and its targets now name "
        f"{len(targets)}{differ}: it cannot "
        f"be finished with other targets; if its creation was interrupted, it is stopped {minutes} minutes "
        "after it began: start a new campaign"
    )


def _make_jobs(
    services: Services, record: Mapping[str, Any], targets: Sequence[str], actor: str
) -> list[Job]:
    """Create one planned job per target (existing ones are kept), each naming the job it releases;
    return them as stored, in release order (the start releases the first ``concurrency``)."""
    store = services.store
    campaign_id = str(record["id"])
    remediation = services.catalog.get(str(record["remediation"]))
    created = parse_time(record.get("createdAt")) or services.clock.now()
    keys = [idempotency_key(campaign_id, target, remediation.id) for target in targets]
    ids = [jobs.job_id_for(key) for key in keys]
    concurrency = int(record["concurrency"])
    chain = successors(ids, concurrency)
    made = store.create_many(
        [
            jobs.new_job(
                idempotency_key=key,
                remediation=remediation.id,
                condition=remediation.conditions[0] if remediation.conditions else "campaign",
                target=target,
                parameters=dict(record.get("parameters") or {}),
                # A microsecond apart, newest first in target order: the store lists a campaign's
                # jobs in the order they are released.
                now=created - timedelta(microseconds=index),
                actor=actor,
                requested_by_name=str(record.get("requestedByName") or ""),
                reason=str(record.get("reason") or f"campaign {campaign_id}"),
                signal_id=campaign_id,
                signal_source="campaign",
                campaign_id=campaign_id,
                campaign_index=index,
                releases=releases,
                dry_run=bool(record.get("dryRun")),
            )
            for index, (target, key, releases) in enumerate(zip(targets, keys, chain, strict=True))
        ]
    )
    return [job for job, _ in made]


def _begin(services: Services, record: Mapping[str, Any], made: Sequence[Job]) -> dict[str, Any]:
    """Mark the campaign running and send its first jobs; only the request that made it running sends
    (a crash in between leaves them to the sweeper, after RESEND_AFTER). Returns the record."""
    stamp = services.clock.now().isoformat()

    def edit(current: dict[str, Any]) -> dict[str, Any] | None:
        if current.get("status") != CREATING:
            return None  # finished (or stopped) by someone else meanwhile
        return {**current, "status": RUNNING, "startedAt": stamp, "updatedAt": stamp}

    begun = change(services.store, str(record["id"]), edit)
    if begun.get("status") == RUNNING and begun.get("startedAt") == stamp:
        for job in made[: int(record["concurrency"])]:
            services.queue.send(job.id)
    return begun


# ---- stopping, resuming, repairing ----------------------------------------------------------------


def stop_campaign(services: Services, campaign_id: str, *, actor: str, reason: str) -> dict[str, Any]:
    """An operator's stop: no VM starts after it, planned and waiting jobs are cancelled, the ones
    running finish. Recorded on the campaign with who and why."""
    check_campaign_id(campaign_id)
    now = services.clock.now()

    def edit(current: dict[str, Any]) -> dict[str, Any] | None:
        if current.get("status") in FINAL or current.get("stopRequested"):
            return None
        if current.get("status") == STOPPING:  # already stopping on errors: who asked is kept too
            return {**current, "stopRequested": {"by": actor, "at": now.isoformat(), "reason": reason}}
        asked = {**current, "stopRequested": {"by": actor, "at": now.isoformat(), "reason": reason}}
        return stopping(asked, stop_reason(asked), now)

    campaign = change(services.store, campaign_id, edit)
    if campaign.get("stopRequested", {}).get("by") == actor:
        log.info("campaign %s: stop requested by %s: %s", campaign_id, actor, reason)
    if campaign.get("status") == STOPPING:
        settle_stopping(services, campaign)
    return campaign_status(services, campaign_id)


def tick(services: Services, campaign_id: str, resend_after: timedelta = RESEND_AFTER) -> dict[str, Any]:
    """The sweeper's pass over one campaign: repair what a lost message or a crash could leave.

    A released job still planned ``resend_after`` after its release gets its message again; failures
    past the budget that were never counted stop the campaign; a stopping campaign's waiting jobs are
    cancelled; a campaign with nothing unfinished is marked as ended; an abandoned creation is
    stopped. Safe to call any time, from anywhere. Returns the full status.
    """
    store = services.store
    campaign = store.get_campaign(check_campaign_id(campaign_id))
    now = services.clock.now()
    if campaign.get("status") == CREATING:
        created = parse_time(campaign.get("createdAt"))
        if created is None or now - created >= CREATION_TIMEOUT:
            campaign = _abandon(services, campaign, now)
        return campaign_status(services, campaign_id)
    if campaign.get("status") in FINAL:
        return campaign_status(services, campaign_id)
    campaign_jobs = store.list(campaign_id=campaign_id)
    if campaign.get("status") == RUNNING:
        failed = sum(1 for job in campaign_jobs if job.status in ERRORS)
        if failed > int(campaign["errorLimit"]):
            reason = (
                f"{failed} VM(s) failed, more than the {campaign['errorLimit']} allowed "
                f"(maxErrors {campaign.get('maxErrors')})"
            )
            campaign = change(
                store,
                campaign_id,
                lambda c: stopping(c, reason, now) if c.get("status") == RUNNING else None,
                campaign,
            )
    if campaign.get("status") == RUNNING and "releasing" in campaign:
        campaign = release_legacy(services, campaign, campaign_jobs)
    if campaign.get("status") == RUNNING:
        started = parse_time(campaign.get("startedAt")) or parse_time(campaign.get("createdAt"))
        for job, at in released(campaign_jobs, started):
            if at is None or now - at >= resend_after:
                log.warning("campaign %s: job %s released but still planned: sent again", campaign_id, job.id)
                services.queue.send(job.id)
        if not any(job.status == jobs.PLANNED or job.status in IN_FLIGHT for job in campaign_jobs):
            campaign = complete_if_done(services, campaign)
    if campaign.get("status") == STOPPING:
        campaign = settle_stopping(services, campaign)
    if campaign.get("status") in FINAL:
        return campaign_status(services, campaign_id)
    return status_of(services, campaign, campaign_jobs)


def resume(services: Services, campaign_id: str) -> dict[str, Any]:
    """Send a message for every released, unfinished job now (a new process with an empty in-process
    queue), then repair what else needs it. Returns the full status.

    Duplicates are harmless: the runner's compare-and-swap drops the loser, and a dispatch re-attaches to
    the run command of the same name instead of starting the script again.
    """
    campaign = services.store.get_campaign(check_campaign_id(campaign_id))
    if campaign.get("status") not in FINAL:
        working = [
            job
            for job in services.store.list(campaign_id=campaign_id, status=sorted(IN_FLIGHT))
            if job.status != jobs.AWAITING_APPROVAL
        ]
        for job in working:
            services.queue.send(job.id)
    return tick(services, campaign_id, resend_after=timedelta(0))


def _abandon(services: Services, campaign: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """Stop a campaign whose creation was interrupted; its jobs were never released, so none ran."""
    store = services.store
    planned = store.list(campaign_id=str(campaign["id"]), status=jobs.PLANNED)
    reason = (
        f"creation was interrupted after {len(planned)} of {campaign.get('targetCount', '?')} jobs were "
        "made; nothing was released: start a new campaign"
    )
    stamp = now.isoformat()
    try:
        stopped = store.update_campaign(
            {**campaign, "status": STOPPED, "stopReason": reason, "updatedAt": stamp, "endedAt": stamp}
        )
    except ConcurrencyConflict:
        return store.get_campaign(str(campaign["id"]))  # finished or stopped meanwhile: look next time
    log.warning("campaign %s: %s", campaign["id"], reason)
    cancel(store, planned, reason, now)
    return stopped
