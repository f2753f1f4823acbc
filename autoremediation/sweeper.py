"""The sweeper: the housekeeping a timer runs every few minutes, as plain functions over the ports.

Six chores (one only with notifications), each safe to repeat and independent of the others (one
failing does not stop the rest):

* expired per-VM leases are deleted, but for those that hold the cooldown's records (an expired lease
  never blocks its VM, the sweep only keeps the table small);
* stuck jobs get a new queue message: a job in flight whose last write is older than its state can
  legitimately stay quiet has lost its message (a crash between write and send, a message deleted by
  hand). The runner's compare-and-swap absorbs the duplicate if the old message was only slow;
* approvals that ran out are advanced, so the runner moves the job to ``expired`` at once;
* approvals about to run out are announced once (when notifications are configured);
* terminal jobs older than the retention period are deleted;
* every campaign with unfinished jobs gets a repair (``campaigns.tick``): a job released but still
  planned long after (its message lost) gets its message again, and a campaign whose last report was
  lost is stopped or completed. Each campaign is repaired on its own: one that fails is reported and
  the next is still repaired. Planned jobs naming a campaign that does not exist would never be
  released by anyone: they are cancelled.

How long is "stuck" follows from how the worker behaves: between two writes a job waits at most for
its next poll or back-off delay, plus the queue's visibility timeout when a delivery fails. A
dispatch in classic (action) mode blocks inside one invocation until the script ends, so for
``dispatching`` the bound is the host's function timeout instead.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from . import jobs
from .errors import ConcurrencyConflict, InvalidTransition, NotFound, RemediationError
from .jobs import Job, parse_time
from .ports import Clock, JobStore, Queue
from .runner import MAX_BACKOFF_SECONDS, Step
from .settings import Settings

log = logging.getLogger("autoremediation.sweeper")

# These mirror host.json (tests keep them equal): the queue's visibility timeout and the longest an
# invocation may run before the host stops it.
VISIBILITY_TIMEOUT_SECONDS = 30.0
FUNCTION_TIMEOUT_SECONDS = 30 * 60.0

# States in which a job always has a queue message on its way (awaiting-approval only once approved).
IN_FLIGHT = (jobs.PLANNED, jobs.DISPATCHING, jobs.RUNNING, jobs.VERIFYING)

Advance = Callable[[str], Step]
Tick = Callable[[str], object]
Ended = Callable[[Job], object]


class SweepIncomplete(RemediationError):
    """At least one chore of a sweep failed; the others ran. The message lists what failed."""

    def __init__(self, message: str, report: SweepReport) -> None:
        super().__init__(message)
        self.report = report


@dataclass(frozen=True)
class SweepPolicy:
    """When a job counts as stuck, and how long ended jobs are kept."""

    quiet_limit: timedelta  # planned, running, verifying, approved-but-waiting
    dispatch_limit: timedelta  # dispatching: a classic run command blocks one invocation
    retention: timedelta

    @classmethod
    def from_settings(cls, settings: Settings) -> SweepPolicy:
        visibility = VISIBILITY_TIMEOUT_SECONDS
        longest_wait = max(3 * settings.poll_seconds, MAX_BACKOFF_SECONDS)
        return cls(
            quiet_limit=timedelta(seconds=longest_wait + visibility),
            dispatch_limit=timedelta(seconds=FUNCTION_TIMEOUT_SECONDS + visibility),
            retention=timedelta(days=settings.retention_days),
        )


@dataclass(frozen=True)
class SweepReport:
    at: str
    leases_deleted: int = 0
    requeued: tuple[str, ...] = ()
    expired: tuple[str, ...] = ()
    jobs_deleted: int = 0
    campaigns: tuple[str, ...] = ()
    orphans_cancelled: tuple[str, ...] = ()
    errors: tuple[str, ...] = field(default_factory=tuple)
    approvals_announced: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "leasesDeleted": self.leases_deleted,
            "requeued": list(self.requeued),
            "expired": list(self.expired),
            "jobsDeleted": self.jobs_deleted,
            "campaignsTicked": list(self.campaigns),
            "orphansCancelled": list(self.orphans_cancelled),
            "errors": list(self.errors),
            "approvalsAnnounced": list(self.approvals_announced),
        }


def _quiet_since(job: Job) -> datetime | None:
    return parse_time(job.updated_at) or parse_time(job.created_at)


def is_stuck(job: Job, now: datetime, policy: SweepPolicy, lease_holder: str | None) -> bool:
    """Whether ``job`` has been quiet longer than its state allows and nothing explains the silence."""
    if job.status == jobs.AWAITING_APPROVAL:
        if not job.approved_by:
            return False  # waits for a person, with no message: the approval chore handles expiry
    elif job.status not in IN_FLIGHT:
        return False
    if job.status == jobs.PLANNED and job.campaign_id:
        # Campaign jobs wait unqueued until the job before them releases them; the campaign's repair
        # re-sends lost ones.
        return False
    quiet = _quiet_since(job)
    if quiet is None:
        return True
    limit = policy.dispatch_limit if job.status == jobs.DISPATCHING else policy.quiet_limit
    if now - quiet < limit:
        return False
    # A planned job waiting for another job's lease polls without writing: it is not lost, and a
    # second message would only double its polling until the lease frees.
    return not (job.status == jobs.PLANNED and lease_holder not in (None, job.id))


def requeue_stuck(store: JobStore, queue: Queue, now: datetime, policy: SweepPolicy) -> list[str]:
    """Send a message for every stuck job; return their ids."""
    candidates = store.list(status=[*IN_FLIGHT, jobs.AWAITING_APPROVAL])
    requeued = []
    for job in candidates:
        # The VM's holder is read only for a planned job quiet past its limit (what may explain it).
        stuck = is_stuck(job, now, policy, None)
        if stuck and job.status == jobs.PLANNED:
            stuck = is_stuck(job, now, policy, store.lease_holder(job.target_key, now))
        if stuck:
            queue.send(job.id)
            requeued.append(job.id)
            log.warning("job %s quiet in %s since %s: sent a new message", job.id, job.status, job.updated_at)
    return requeued


def expire_approvals(
    store: JobStore, queue: Queue, advance: Advance, now: datetime, ended: Ended | None = None
) -> list[str]:
    """Advance every unapproved job whose approval window closed; the runner expires it.

    ``ended`` hears of each job that ended so (a campaign job's end releases the next one).
    """
    expired = []
    for job in store.list(status=jobs.AWAITING_APPROVAL):
        deadline = parse_time(job.approval_expires_at)
        if job.approved_by or deadline is None or now < deadline:
            continue
        step = advance(job.id)
        if step.requeue_after is not None:
            queue.send(job.id, step.requeue_after)
        if step.job.status == jobs.EXPIRED:
            expired.append(job.id)
        if step.job.terminal and ended is not None:
            ended(step.job)
    return expired


# How long before its approval window closes an unapproved job is announced (once). Longer than the
# sweeper's five-minute period, so every approval is seen inside its warning window at least once.
APPROVAL_WARNING = timedelta(minutes=15)
APPROVAL_WARNING_NOTE = "approval expiry announced"
Warn = Callable[[Job], None]


def warn_expiring_approvals(
    store: JobStore, now: datetime, warn: Warn, window: timedelta = APPROVAL_WARNING
) -> list[str]:
    """Announce each unapproved job whose window closes within ``window``, once: the note that says so
    is written (compare-and-swap) before the announcement, so two sweepers never both announce it."""
    warned = []
    for job in store.list(status=jobs.AWAITING_APPROVAL):
        deadline = parse_time(job.approval_expires_at)
        if job.approved_by or deadline is None or not now < deadline <= now + window:
            continue
        if any(note.endswith(APPROVAL_WARNING_NOTE) for note in job.notes):
            continue
        try:
            noted = store.update(jobs.note(job, APPROVAL_WARNING_NOTE, now=now))
        except ConcurrencyConflict:
            continue  # changed meanwhile (approved, or announced by another sweeper): look next time
        warn(noted)
        warned.append(job.id)
    return warned


@dataclass(frozen=True)
class CampaignTicks:
    """What the campaign chore did: the campaigns ticked, orphan jobs cancelled, per-campaign errors."""

    ticked: tuple[str, ...] = ()
    orphans_cancelled: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()


ORPHAN_ACTOR = "sweeper"


def tick_campaigns(store: JobStore, tick: Tick, now: datetime | None = None) -> CampaignTicks:
    """Tick every campaign that still has unfinished jobs, each on its own.

    A tick that fails is logged and reported, and the next campaign is ticked all the same. When the
    campaign record does not exist, its planned jobs (which only that campaign would ever release) are
    cancelled; ``now`` stamps those transitions (their last update when not given).
    """
    unfinished = store.list(status=[*IN_FLIGHT, jobs.AWAITING_APPROVAL])
    campaign_ids = sorted({job.campaign_id for job in unfinished if job.campaign_id})
    ticked: list[str] = []
    orphans: list[str] = []
    errors: list[str] = []
    for campaign_id in campaign_ids:
        try:
            tick(campaign_id)
            ticked.append(campaign_id)
        except NotFound as error:
            if _campaign_exists(store, campaign_id):
                errors.append(f"campaign {campaign_id}: NotFound: {error}")
                log.error("sweeper: campaign %s: %s", campaign_id, error)
                continue
            orphans += cancel_orphans(store, campaign_id, now)
        except Exception as error:  # one broken campaign must not stop the others
            errors.append(f"campaign {campaign_id}: {type(error).__name__}: {error}")
            log.exception("sweeper: ticking campaign %s failed", campaign_id)
    return CampaignTicks(tuple(ticked), tuple(orphans), tuple(errors))


def _campaign_exists(store: JobStore, campaign_id: str) -> bool:
    try:
        store.get_campaign(campaign_id)
    except NotFound:
        return False
    return True


def cancel_orphans(store: JobStore, campaign_id: str, now: datetime | None = None) -> list[str]:
    """Cancel the planned jobs of a campaign that has no record; return their ids.

    Such jobs have no queue message and no campaign to release them (e.g. a creation interrupted
    before the record was written): without this they would stay planned forever. Jobs already
    dispatched are left to finish.
    """
    cancelled = []
    reason = f"campaign {campaign_id} does not exist, so nothing will ever release this job"
    for job in store.list(campaign_id=campaign_id, status=jobs.PLANNED):
        current = job
        for _ in range(8):
            if current.status != jobs.PLANNED:
                break
            at = now or _quiet_since(current)
            if at is None:
                break
            try:
                store.update(
                    jobs.transition(current, jobs.CANCELLED, now=at, actor=ORPHAN_ACTOR, reason=reason)
                )
            except ConcurrencyConflict:
                current = store.get(job.id)
                continue
            except InvalidTransition:
                break
            cancelled.append(job.id)
            log.warning("sweeper: job %s cancelled: %s", job.id, reason)
            break
    return cancelled


def sweep(
    store: JobStore,
    queue: Queue,
    clock: Clock,
    policy: SweepPolicy,
    advance: Advance,
    tick: Tick | None = None,
    warn: Warn | None = None,
    ended: Ended | None = None,
) -> SweepReport:
    """Run every chore once. Raises SweepIncomplete (after running the others) if a chore failed."""
    now = clock.now()
    results: dict[str, Any] = {}
    errors: list[str] = []
    chores: Mapping[str, Callable[[], Any]] = {
        "leases": lambda: store.sweep_leases(now),
        "stuck": lambda: requeue_stuck(store, queue, now, policy),
        "approvals": lambda: expire_approvals(store, queue, advance, now, ended),
        "retention": lambda: store.delete_jobs(now - policy.retention),
    }
    if warn is not None:
        chores = {**chores, "approval-warnings": lambda: warn_expiring_approvals(store, now, warn)}
    if tick is not None:
        chores = {**chores, "campaigns": lambda: tick_campaigns(store, tick, now)}
    for name, chore in chores.items():
        try:
            results[name] = chore()
        except RemediationError as error:
            errors.append(f"{name}: {type(error).__name__}: {error}")
            log.error("sweeper: %s failed: %s", name, error)
    campaigns: CampaignTicks = results.get("campaigns", CampaignTicks())
    if campaigns.errors:
        log.error("sweeper: %d campaign(s) could not be ticked", len(campaigns.errors))
    errors += [f"campaigns: {text}" for text in campaigns.errors]
    report = SweepReport(
        at=now.isoformat(),
        leases_deleted=results.get("leases", 0),
        requeued=tuple(results.get("stuck", ())),
        expired=tuple(results.get("approvals", ())),
        jobs_deleted=results.get("retention", 0),
        campaigns=campaigns.ticked,
        orphans_cancelled=campaigns.orphans_cancelled,
        errors=tuple(errors),
        approvals_announced=tuple(results.get("approval-warnings", ())),
    )
    if errors:
        raise SweepIncomplete("; ".join(errors), report)
    return report
