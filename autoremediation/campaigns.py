"""Fleet campaigns: one remediation over many VMs, with a concurrency cap and an error budget.

A campaign is a record plus one job per target VM (``Job.campaign_id``). Its jobs are created ``planned``
WITHOUT a queue message; :func:`tick` releases them into the queue, at most ``concurrency`` in flight.

The schedule is never kept in memory: every tick derives it from the store, so a tick is idempotent and
a crashed driver is replaced by any other (the CLI with ``--resume``, the sweeper, the next job that
finishes). Two ticks racing cannot exceed the cap: a tick marks the jobs it releases (a note on the job),
then commits with a compare-and-swap on the campaign record, and sends their messages only once that
commit won. A loser withdraws its marks; a tick that reads the record after a commit sees the marks.

Job ids come from campaign id + VM + remediation, so starting or resuming a campaign twice never makes a
second job for a VM, and the run command's name (derived from the job id) never runs a script twice.
Guards (opt-in tag, cooldown, lease, breaker, ...) still run per job, in the runner.
"""

from __future__ import annotations

import logging
import math
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from . import jobs
from .errors import ConcurrencyConflict, InvalidInput, InvalidTransition, NotFound, RemediationError
from .jobs import Job
from .ports import JobStore, Queue
from .resources import VmRef, normalize

if TYPE_CHECKING:
    from .services import Services

log = logging.getLogger("autoremediation.campaigns")

RUNNING = "running"
STOPPING = "stopping"  # the error budget is spent: no new job starts, the ones in flight finish
COMPLETED = "completed"
STOPPED = "stopped"
FINAL = frozenset({COMPLETED, STOPPED})

IN_FLIGHT = frozenset({jobs.AWAITING_APPROVAL, jobs.DISPATCHING, jobs.RUNNING, jobs.VERIFYING})
ERRORS = frozenset({jobs.FAILED, jobs.TIMED_OUT})

RELEASED_NOTE = "campaign: released into the queue"
WITHDRAWN_NOTE = "campaign: release withdrawn"
# A released job still planned after this long has probably lost its message (a crash between the
# commit and the send): it is sent again. A duplicate message is harmless, the runner's CAS absorbs it.
RESEND_AFTER = timedelta(minutes=10)
MAX_TARGETS = 20_000
CAS_ATTEMPTS = 8
ACTOR = "campaign"

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$")
_LIMIT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(%?)\s*$")
_SUBSCRIPTION = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_RG_NAME = re.compile(r"^[-\w._()]{1,90}$")
_REQUEST_FIELDS = frozenset(
    {"id", "remediation", "targets", "parameters", "maxConcurrency", "maxErrors", "dryRun", "reason"}
)
_TARGET_FIELDS = frozenset({"tag", "resourceGroup", "subscription", "vmIds"})


# ---- limits ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Limit:
    """A count or a percentage of the target count, as the operator wrote it (``10`` or ``"5%"``)."""

    value: Fraction
    percent: bool

    @classmethod
    def parse(cls, raw: object, what: str, *, minimum: int) -> Limit:
        if isinstance(raw, bool) or raw is None:
            raise InvalidInput(f"{what} must be a whole number or a percentage like 10%, not {raw!r}")
        match = _LIMIT.match(str(raw))
        if not match:
            raise InvalidInput(f"{what} {str(raw)[:40]!r} must be a whole number or a percentage like 10%")
        value, percent = Fraction(match[1]), bool(match[2])
        if percent:
            if value > 100 or (minimum > 0 and value == 0):
                low = "more than 0" if minimum > 0 else "0"
                raise InvalidInput(f"{what} {str(raw).strip()} must be between {low} and 100%")
        elif value.denominator != 1 or value < minimum:
            raise InvalidInput(f"{what} {str(raw).strip()} must be a whole number of at least {minimum}")
        return cls(value, percent)

    def concurrency(self, targets: int) -> int:
        """Percentages round up, so 1% of 50 VMs still lets one run; never below 1."""
        if not self.percent:
            return max(1, int(self.value))
        return max(1, math.ceil(self.value * targets / 100))

    def errors(self, targets: int) -> int:
        """Percentages round down: 10% of 15 VMs tolerates 1 error, never 2."""
        if not self.percent:
            return int(self.value)
        return math.floor(self.value * targets / 100)

    def __str__(self) -> str:
        number = str(self.value.numerator) if self.value.denominator == 1 else str(float(self.value))
        return number + ("%" if self.percent else "")


# ---- the request ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Selector:
    """Which VMs: every VM under ``scope`` carrying ``tags``, or exactly ``vm_ids``."""

    scope: str | None = None
    tags: tuple[tuple[str, str | None], ...] = ()
    vm_ids: tuple[str, ...] = ()

    def describe(self) -> str:
        parts = [f"{len(self.vm_ids)} listed VM(s)"] if self.vm_ids else [self.scope or "-"]
        parts += [f"tag {k}={v if v is not None else '*'}" for k, v in self.tags]
        return ", ".join(parts)


@dataclass(frozen=True)
class CampaignRequest:
    remediation: str
    selector: Selector
    parameters: dict[str, str]
    max_concurrency: Limit
    max_errors: Limit
    dry_run: bool = False
    campaign_id: str | None = None
    reason: str = ""


def parse_tag(raw: object) -> tuple[str, str | None]:
    """``K=V`` (or a bare ``K``: any value) -> (name, value)."""
    if not isinstance(raw, str) or not raw.strip() or raw.strip().startswith("="):
        raise InvalidInput(f"tag {raw!r} must look like NAME=VALUE (or NAME for any value)")
    name, sep, value = raw.partition("=")
    return name.strip(), (value.strip() if sep else None)


def _tags(raw: object) -> tuple[tuple[str, str | None], ...]:
    if raw is None:
        return ()
    if isinstance(raw, str):
        return (parse_tag(raw),)
    if isinstance(raw, Mapping):
        out = []
        for name, value in raw.items():
            if not isinstance(name, str) or not name.strip() or not isinstance(value, str | None):
                raise InvalidInput(f"targets.tag: {name!r}: {value!r} must map a tag name to a text value")
            out.append((name.strip(), value.strip() if isinstance(value, str) else None))
        return tuple(out)
    if isinstance(raw, list):
        return tuple(parse_tag(item) for item in raw)
    raise InvalidInput("targets.tag must be NAME=VALUE, a list of them, or an object of name: value")


def _subscription(raw: object) -> str:
    text = raw.strip().strip("/") if isinstance(raw, str) else ""
    if text.lower().startswith("subscriptions/"):
        text = text.split("/", 1)[1]
    if not _SUBSCRIPTION.match(text):
        raise InvalidInput(f"subscription {raw!r} is not a subscription id (a GUID)")
    return text


def _scope(targets: Mapping[str, Any], default_subscription: str | None) -> str | None:
    group = targets.get("resourceGroup")
    sub = targets.get("subscription")
    subscription = _subscription(sub) if sub is not None else None
    if group is None:
        if subscription is not None:
            return f"/subscriptions/{subscription}"
        return None
    if not isinstance(group, str) or not group.strip():
        raise InvalidInput(f"resource group {group!r} must be a name or a resource group id")
    text = group.strip().rstrip("/")
    match = re.match(r"^/subscriptions/([^/]+)/resourceGroups/([^/]+)$", text, re.IGNORECASE)
    if match:
        found = _subscription(match[1])
        if subscription is not None and found.lower() != subscription.lower():
            raise InvalidInput(f"resource group {text} is not in subscription {subscription}")
        return f"/subscriptions/{found}/resourceGroups/{match[2]}"
    if not _RG_NAME.match(text):
        raise InvalidInput(f"resource group {group!r} is not a resource group name or id")
    subscription = subscription or default_subscription
    if subscription is None:
        raise InvalidInput(
            f"resource group {text} needs a subscription: give one, or set AZURE_SUBSCRIPTION_ID"
        )
    return f"/subscriptions/{_subscription(subscription)}/resourceGroups/{text}"


def _vm_ids(raw: object) -> tuple[str, ...]:
    if not isinstance(raw, list) or not raw:
        raise InvalidInput("targets.vmIds must be a non-empty list of VM resource ids")
    seen: dict[str, str] = {}
    for index, item in enumerate(raw):
        ref = VmRef.parse(item) if isinstance(item, str) else None
        if ref is None:
            raise InvalidInput(f"targets.vmIds[{index}]: {str(item)[:200]!r} is not a VM resource id")
        seen.setdefault(ref.key, ref.id)
    if len(seen) > MAX_TARGETS:
        raise InvalidInput(f"targets.vmIds lists {len(seen)} VMs; a campaign takes at most {MAX_TARGETS}")
    return tuple(seen.values())


def parse_request(request: object, services: Services) -> CampaignRequest:
    """Check a campaign request (the API body, or the CLI's arguments in the same shape)."""
    if not isinstance(request, Mapping):
        raise InvalidInput("a campaign request must be a JSON object")
    unknown = sorted(set(request) - _REQUEST_FIELDS)
    if unknown:
        raise InvalidInput(f"unknown field {unknown[0]!r} (known: {', '.join(sorted(_REQUEST_FIELDS))})")
    remediation_id = request.get("remediation")
    if not isinstance(remediation_id, str) or not remediation_id.strip():
        raise InvalidInput("remediation is required: the id of a catalog remediation")
    remediation = services.catalog.get(remediation_id.strip())

    targets = request.get("targets")
    if not isinstance(targets, Mapping) or not targets:
        raise InvalidInput("targets is required: an object with tag, resourceGroup, subscription or vmIds")
    unknown = sorted(set(targets) - _TARGET_FIELDS)
    if unknown:
        raise InvalidInput(
            f"targets: unknown field {unknown[0]!r} (known: {', '.join(sorted(_TARGET_FIELDS))})"
        )
    tags = _tags(targets.get("tag"))
    if "vmIds" in targets:
        if len(targets) > 1:
            raise InvalidInput("targets.vmIds cannot be combined with tag, resourceGroup or subscription")
        selector = Selector(vm_ids=_vm_ids(targets["vmIds"]))
    else:
        scope = _scope(targets, services.settings.subscription_id)
        if scope is None:
            if not tags:
                raise InvalidInput("targets needs a tag, a resourceGroup, a subscription or vmIds")
            if services.settings.subscription_id is None:
                raise InvalidInput(
                    "a tag needs a subscription to search: give one, or set AZURE_SUBSCRIPTION_ID"
                )
            scope = f"/subscriptions/{_subscription(services.settings.subscription_id)}"
        selector = Selector(scope=scope, tags=tags)

    raw_parameters = request.get("parameters") or {}
    if not isinstance(raw_parameters, Mapping):
        raise InvalidInput("parameters must be an object of name: value")
    parameters = _check_parameters(remediation, raw_parameters)

    if "maxConcurrency" not in request:
        raise InvalidInput("maxConcurrency is required: a number of VMs or a percentage like 10%")
    if "maxErrors" not in request:
        raise InvalidInput("maxErrors is required: a number of failed VMs or a percentage like 5%")
    concurrency = Limit.parse(request["maxConcurrency"], "maxConcurrency", minimum=1)
    errors = Limit.parse(request["maxErrors"], "maxErrors", minimum=0)

    dry_run = request.get("dryRun", False)
    if not isinstance(dry_run, bool):
        raise InvalidInput(f"dryRun must be true or false, not {dry_run!r}")
    campaign_id = request.get("id")
    if campaign_id is not None and (not isinstance(campaign_id, str) or not _ID.match(campaign_id)):
        raise InvalidInput(
            f"id {campaign_id!r} must be 1-100 letters, digits, '.', '_', ':' or '-', starting with a "
            "letter or digit"
        )
    reason = request.get("reason", "")
    if not isinstance(reason, str) or len(reason) > 500:
        raise InvalidInput("reason must be text of at most 500 characters")
    return CampaignRequest(
        remediation=remediation.id,
        selector=selector,
        parameters=parameters,
        max_concurrency=concurrency,
        max_errors=errors,
        dry_run=dry_run,
        campaign_id=campaign_id,
        reason=reason.strip(),
    )


def _check_parameters(remediation: Any, given: Mapping[str, Any]) -> dict[str, str]:
    """Bad values fail the whole request now, not one skipped job per VM later."""
    problems: list[RemediationError] = []
    for os_type in remediation.os_types:
        try:
            remediation.resolve_parameters(given, os_type)
        except InvalidInput as error:
            problems.append(error)
    if problems and len(problems) == len(remediation.os_types):
        raise problems[0]
    return {name: remediation.parameters[name].validate(value) for name, value in given.items()}


# ---- targets --------------------------------------------------------------------------------------


def _tag_matches(tags: Mapping[str, str], wanted: Iterable[tuple[str, str | None]]) -> bool:
    # Azure tag names are case-insensitive; values are compared the same way the opt-in guard does.
    lowered = {k.lower(): (v or "").strip().lower() for k, v in tags.items()}
    for name, value in wanted:
        if name.lower() not in lowered:
            return False
        if value is not None and lowered[name.lower()] != value.lower():
            return False
    return True


def resolve_targets(services: Services, selector: Selector) -> list[str]:
    """The VM ids a selector names, listed through ARM (one list call per scope), sorted and unique."""
    if selector.vm_ids:
        return sorted(selector.vm_ids, key=normalize)
    assert selector.scope is not None
    found = {
        normalize(vm.id): vm.id
        for vm in services.compute.list_vms(selector.scope)
        if _tag_matches(vm.tags, selector.tags)
    }
    if len(found) > MAX_TARGETS:
        raise InvalidInput(
            f"{selector.describe()} matches {len(found)} VMs; a campaign takes at most {MAX_TARGETS}"
        )
    return [found[key] for key in sorted(found)]


def idempotency_key(campaign_id: str, vm_id: str, remediation: str) -> str:
    return f"campaign:{campaign_id}:{normalize(vm_id)}:{remediation}"


# ---- starting -------------------------------------------------------------------------------------


def start_campaign(services: Services, request: dict[str, Any], actor: str) -> dict[str, Any]:
    """Validate, resolve targets, create the jobs and the record, release the first jobs; the status.

    With an ``id`` that exists already, nothing new is made: the existing campaign's status comes back
    (a retried POST). InvalidInput, with a clear message, on any bad input, before any write.
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
            return tick(services, parsed.campaign_id)
    campaign_id = parsed.campaign_id or f"campaign-{uuid.uuid4().hex[:16]}"
    targets = resolve_targets(services, parsed.selector)
    if not targets:
        raise InvalidInput(f"no VM matches the targets ({parsed.selector.describe()})")
    remediation = services.catalog.get(parsed.remediation)
    now = services.clock.now()
    reason = parsed.reason or f"campaign {campaign_id}"
    # Jobs first, record last: the record is the commit point. A crash in between leaves jobs without a
    # message that never run; starting again with the same id finds them (same idempotency keys).
    for target in targets:
        store.create(
            jobs.new_job(
                idempotency_key=idempotency_key(campaign_id, target, remediation.id),
                remediation=remediation.id,
                condition=remediation.conditions[0] if remediation.conditions else "campaign",
                target=target,
                parameters=dict(parsed.parameters),
                now=now,
                actor=actor,
                reason=reason,
                signal_id=campaign_id,
                signal_source="campaign",
                campaign_id=campaign_id,
                dry_run=parsed.dry_run,
            )
        )
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
        "reason": reason,
        "createdAt": now.isoformat(),
        "updatedAt": now.isoformat(),
        "status": RUNNING,
        "stopReason": "",
        "version": 0,
    }
    if not store.create_campaign(record):
        # Another request with the same id won the race: that one is the campaign.
        log.info("campaign %s was created concurrently", campaign_id)
    return tick(services, campaign_id)


# ---- the schedule, derived from the store ---------------------------------------------------------


def _released_at(job: Job) -> datetime | None:
    """When the campaign released this planned job, if its latest campaign note is a release."""
    for text in reversed(job.notes):
        stamp, _, rest = text.partition(" ")
        if rest == RELEASED_NOTE:
            try:
                return datetime.fromisoformat(stamp)
            except ValueError:
                return None
        if rest == WITHDRAWN_NOTE:
            return None
    return None


@dataclass
class Schedule:
    """The campaign's jobs, classified."""

    waiting: list[Job] = field(default_factory=list)  # planned, not released: no queue message
    released: list[Job] = field(default_factory=list)  # planned, released: a message is on its way
    active: list[Job] = field(default_factory=list)  # awaiting approval, dispatching, running, verifying
    succeeded: int = 0
    failed: int = 0  # failed + timed out: what the error budget counts
    skipped: int = 0
    cancelled: int = 0  # cancelled + expired
    total: int = 0

    @classmethod
    def of(cls, campaign_jobs: Sequence[Job]) -> Schedule:
        schedule = cls(total=len(campaign_jobs))
        for job in sorted(campaign_jobs, key=lambda j: (j.target_key, j.id)):
            if job.status == jobs.PLANNED:
                (schedule.released if _released_at(job) is not None else schedule.waiting).append(job)
            elif job.status in IN_FLIGHT:
                schedule.active.append(job)
            elif job.status == jobs.SUCCEEDED:
                schedule.succeeded += 1
            elif job.status in ERRORS:
                schedule.failed += 1
            elif job.status == jobs.SKIPPED:
                schedule.skipped += 1
            else:
                schedule.cancelled += 1
        return schedule

    @property
    def in_flight(self) -> int:
        return len(self.released) + len(self.active)

    def counts(self) -> dict[str, int]:
        return {
            "total": self.total,
            "planned": len(self.waiting),
            "inFlight": self.in_flight,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "skipped": self.skipped,
            "cancelled": self.cancelled,
        }


def _status(campaign: Mapping[str, Any], counts: Mapping[str, int]) -> dict[str, Any]:
    record = dict(campaign)
    record["counts"] = dict(counts)
    total = counts["total"]
    done = total - counts["planned"] - counts["inFlight"]
    record["done"] = done
    record["progress"] = round(done / total, 4) if total else 1.0
    return record


def campaign_status(services: Services, campaign_id: str) -> dict[str, Any]:
    """The campaign record with live counts from its jobs; NotFound when there is no such campaign."""
    if not isinstance(campaign_id, str) or not _ID.match(campaign_id):
        raise NotFound(f"no campaign {str(campaign_id)[:100]!r}")
    campaign = services.store.get_campaign(campaign_id)
    return _status(campaign, Schedule.of(services.store.list(campaign_id=campaign_id)).counts())


def tick(services: Services, campaign_id: str) -> dict[str, Any]:
    """Advance the campaign from what the store says now; safe to call any time, from anywhere."""
    store, queue = services.store, services.queue
    for _ in range(CAS_ATTEMPTS):
        campaign = store.get_campaign(campaign_id)
        schedule = Schedule.of(store.list(campaign_id=campaign_id))
        if campaign.get("status") in FINAL:
            return _status(campaign, schedule.counts())
        now = services.clock.now()
        over = schedule.failed > int(campaign["errorLimit"])
        release: list[Job] = []
        cancel: list[Job] = []
        if over:
            cancel = [*schedule.waiting, *schedule.released]
            cancel += [j for j in schedule.active if j.status == jobs.AWAITING_APPROVAL]
        else:
            room = max(0, int(campaign["concurrency"]) - schedule.in_flight)
            release = schedule.waiting[:room]
        resend = [j for j in schedule.released if now - (_released_at(j) or now) >= RESEND_AFTER]

        status, stop_reason = RUNNING, campaign.get("stopReason", "")
        if over:
            stop_reason = stop_reason or (
                f"{schedule.failed} VM(s) failed, more than the {campaign['errorLimit']} allowed "
                f"(maxErrors {campaign['maxErrors']})"
            )
            still_running = [j for j in schedule.active if j.status != jobs.AWAITING_APPROVAL]
            status = STOPPING if still_running else STOPPED
        elif not schedule.waiting and not schedule.in_flight:
            status = COMPLETED
        counts = schedule.counts()
        if not release and status == campaign.get("status") and counts == campaign.get("counts"):
            _send(queue, resend)
            _cancel(store, cancel, stop_reason, now)
            return _status(campaign, counts)

        marked = _mark(store, release, now)
        if marked:
            counts = {
                **counts,
                "planned": counts["planned"] - len(marked),
                "inFlight": counts["inFlight"] + len(marked),
            }
        updated = {
            **campaign,
            "status": status,
            "stopReason": stop_reason,
            "counts": counts,
            "updatedAt": now.isoformat(),
        }
        if status in FINAL:
            updated["endedAt"] = now.isoformat()
        try:
            campaign = store.update_campaign(updated)
        except ConcurrencyConflict:
            _withdraw(store, marked, now)
            continue
        _send(queue, [*marked, *resend])
        if cancel:
            _cancel(store, cancel, stop_reason, now)
            return campaign_status(services, campaign_id)
        return _status(campaign, counts)
    # Every attempt lost to a concurrent tick: each of those ticks did this tick's work.
    return campaign_status(services, campaign_id)


def _mark(store: JobStore, release: Sequence[Job], now: datetime) -> list[Job]:
    marked = []
    for job in release:
        try:
            marked.append(store.update(jobs.note(job, RELEASED_NOTE, now=now)))
        except ConcurrencyConflict:
            continue  # someone else changed it (cancelled it, another tick): not ours to send
    return marked


def _withdraw(store: JobStore, marked: Sequence[Job], now: datetime) -> None:
    for job in marked:
        current = job
        for _ in range(CAS_ATTEMPTS):
            if current.status != jobs.PLANNED or _released_at(current) is None:
                break
            try:
                store.update(jobs.note(current, WITHDRAWN_NOTE, now=now))
                break
            except ConcurrencyConflict:
                current = store.get(job.id)


def _send(queue: Queue, released: Sequence[Job]) -> None:
    for job in released:
        queue.send(job.id)


def _cancel(store: JobStore, planned: Sequence[Job], reason: str, now: datetime) -> None:
    for job in planned:
        current = job
        for _ in range(CAS_ATTEMPTS):
            if current.status not in (jobs.PLANNED, jobs.AWAITING_APPROVAL):
                break  # a worker took it first: it finishes like the others in flight
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


def on_job_finished(services: Services, job: Job) -> dict[str, Any] | None:
    """A campaign job reached a terminal state: its slot is free, so the campaign moves on."""
    if not job.campaign_id or not job.terminal:
        return None
    try:
        return tick(services, job.campaign_id)
    except NotFound:
        log.warning("job %s names campaign %s, which does not exist", job.id, job.campaign_id)
        return None


def resume(services: Services, campaign_id: str) -> dict[str, Any]:
    """Re-send a message for every released, unfinished job (a new process with an empty in-process queue).

    Duplicates are harmless: the runner's compare-and-swap drops the loser, and a dispatch re-attaches to
    the run command of the same name instead of starting the script again.
    """
    campaign = services.store.get_campaign(campaign_id)
    schedule = Schedule.of(services.store.list(campaign_id=campaign_id))
    if campaign.get("status") not in FINAL:
        _send(
            services.queue,
            [*schedule.released, *(j for j in schedule.active if j.status != jobs.AWAITING_APPROVAL)],
        )
    return tick(services, campaign_id)


def next_poll_delay(polls: int, base: float, expected: float | None) -> float:
    """How long to wait before poll number ``polls + 1`` of a run command.

    With an expected run time (e.g. the median of the campaign's finished runs), the first poll lands
    just after it, then polls tighten to ``base / 4`` so a run that ends a little late is seen soon;
    without one, polls back off from ``base / 4`` to ``base`` (short scripts finish fast; long ones do
    not need a GET every few seconds). Never below 0.25 s or above ``base``, except the first wait.
    """
    if base <= 0:
        return 0.0
    floor = min(base, 0.25)
    if expected is not None and expected > 0:
        if polls <= 0:
            return max(floor, expected * 1.05)
        return max(floor, base / 4)
    return max(floor, min(base, base / 4 * 2 ** max(polls, 0)))
