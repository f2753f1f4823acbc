"""Fleet campaigns: one remediation over many VMs, with a concurrency cap and an error budget.

A campaign is a record plus one job per target VM (``Job.campaign_id``). Its jobs are created ``planned``
WITHOUT a queue message; :func:`tick` releases them into the queue, at most ``concurrency`` in flight.

The schedule is never kept in memory: every tick derives it from the store, so a tick is idempotent and
a crashed driver is replaced by any other (the CLI with ``--resume``, the sweeper, the next job that
finishes). A tick reads only what it needs (the jobs in flight, the failures, a few planned ones), not
the whole campaign: it runs once per finished job. The record's ``releasing`` map names the jobs
released but not yet picked up by a worker; ticks commit it with a compare-and-swap on the record and
send the messages only after that commit won, so two racing ticks can never exceed the cap.

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
from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from . import jobs
from .errors import (
    ConcurrencyConflict,
    InvalidInput,
    InvalidTransition,
    NotFound,
    RemediationError,
)
from .jobs import Job
from .polling import next_poll_delay  # noqa: F401  (re-exported: the bench and tests use it here)
from .ports import JobStore, Queue
from .resources import VmRef, normalize

if TYPE_CHECKING:
    from .services import Services

log = logging.getLogger("autoremediation.campaigns")

CREATING = "creating"  # the record exists, its jobs are being made: nothing is released yet
RUNNING = "running"
STOPPING = "stopping"  # the error budget is spent: no new job starts, the ones in flight finish
COMPLETED = "completed"
STOPPED = "stopped"
FINAL = frozenset({COMPLETED, STOPPED})

IN_FLIGHT = frozenset({jobs.AWAITING_APPROVAL, jobs.DISPATCHING, jobs.RUNNING, jobs.VERIFYING})
ERRORS = frozenset({jobs.FAILED, jobs.TIMED_OUT})

# A released job still planned after this long has probably lost its message (a crash between the
# commit and the send): it is sent again. A duplicate message is harmless, the runner's CAS absorbs it.
RESEND_AFTER = timedelta(minutes=10)
# A campaign still ``creating`` after this long was abandoned by its creator (the longest a function
# may run): its jobs are cancelled rather than left planned forever.
CREATION_TIMEOUT = timedelta(minutes=30)
MAX_TARGETS = 20_000
MAX_CONCURRENCY = 1_000  # bounds the record's ``releasing`` map, and ARM's request rate
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
            return min(MAX_CONCURRENCY, max(1, int(self.value)))
        return min(MAX_CONCURRENCY, max(1, math.ceil(self.value * targets / 100)))

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


def start_campaign(
    services: Services, request: dict[str, Any], actor: str, actor_name: str = ""
) -> dict[str, Any]:
    """Validate, resolve targets, create the record and then the jobs, release the first jobs; the status.

    With an ``id`` that exists already, nothing new is made: the existing campaign's status comes back
    (a retried POST), after finishing its creation if an earlier request was interrupted while making
    the jobs. InvalidInput, with a clear message, on any bad input, before any write.
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
                _make_jobs(services, existing, resolve_targets(services, parsed.selector), actor)
            tick(services, parsed.campaign_id)
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
        "releasing": {},
        "version": 0,
    }
    # The record first, as ``creating``: every job then names a campaign that exists, a tick releases
    # nothing until the jobs are all made, and an interrupted creation is visible (and finished by a
    # retried request with the same id, or stopped by a tick once it is clearly abandoned).
    if store.create_campaign(record):
        _make_jobs(services, record, targets, actor)
    else:
        # Another request with the same id won the race: that one is the campaign.
        log.info("campaign %s was created concurrently", campaign_id)
    tick(services, campaign_id)
    return campaign_status(services, campaign_id)


def _make_jobs(services: Services, record: Mapping[str, Any], targets: Sequence[str], actor: str) -> None:
    """Create one planned job per target (existing ones are kept), then mark the campaign running."""
    store = services.store
    campaign_id = str(record["id"])
    remediation = services.catalog.get(str(record["remediation"]))
    created = _time(record.get("createdAt")) or services.clock.now()
    for index, target in enumerate(targets):
        store.create(
            jobs.new_job(
                idempotency_key=idempotency_key(campaign_id, target, remediation.id),
                remediation=remediation.id,
                condition=remediation.conditions[0] if remediation.conditions else "campaign",
                target=target,
                parameters=dict(record.get("parameters") or {}),
                # A microsecond apart, newest first in target order: the store lists planned jobs in
                # the order the campaign releases them, so a tick reads only the next few.
                now=created - timedelta(microseconds=index),
                actor=actor,
                requested_by_name=str(record.get("requestedByName") or ""),
                reason=str(record.get("reason") or f"campaign {campaign_id}"),
                signal_id=campaign_id,
                signal_source="campaign",
                campaign_id=campaign_id,
                dry_run=bool(record.get("dryRun")),
            )
        )
    for _ in range(CAS_ATTEMPTS):
        current = store.get_campaign(campaign_id)
        if current.get("status") != CREATING:
            return  # finished (or stopped) by someone else meanwhile
        try:
            store.update_campaign(
                {**current, "status": RUNNING, "updatedAt": services.clock.now().isoformat()}
            )
            return
        except ConcurrencyConflict:
            continue


def _time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


# ---- the schedule, derived from the store ---------------------------------------------------------


@dataclass
class Schedule:
    """The campaign's jobs, classified: the full picture, for the status API and the CLI."""

    waiting: int = 0  # planned, not released: no queue message
    in_flight: int = 0  # released (planned with a message on its way), awaiting approval, dispatching, ...
    succeeded: int = 0
    failed: int = 0  # failed + timed out: what the error budget counts
    skipped: int = 0
    cancelled: int = 0  # cancelled + expired
    total: int = 0

    @classmethod
    def of(cls, campaign_jobs: Sequence[Job], released: Iterable[str]) -> Schedule:
        released_ids = set(released)
        schedule = cls(total=len(campaign_jobs))
        for job in campaign_jobs:
            if job.status == jobs.PLANNED:
                if job.id in released_ids:
                    schedule.in_flight += 1
                else:
                    schedule.waiting += 1
            elif job.status in IN_FLIGHT:
                schedule.in_flight += 1
            elif job.status == jobs.SUCCEEDED:
                schedule.succeeded += 1
            elif job.status in ERRORS:
                schedule.failed += 1
            elif job.status == jobs.SKIPPED:
                schedule.skipped += 1
            else:
                schedule.cancelled += 1
        return schedule

    def counts(self) -> dict[str, int]:
        return {
            "total": self.total,
            "planned": self.waiting,
            "inFlight": self.in_flight,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "skipped": self.skipped,
            "cancelled": self.cancelled,
        }


def _public(services: Services, campaign: Mapping[str, Any]) -> dict[str, Any]:
    record = {k: v for k, v in campaign.items() if k != "releasing"}
    if "parameters" in record:
        record["parameters"] = services.catalog.redacted(
            str(record.get("remediation", "")), record["parameters"]
        )
    return record


def campaign_status(services: Services, campaign_id: str) -> dict[str, Any]:
    """The campaign record with every count, from its jobs; NotFound when there is no such campaign."""
    if not isinstance(campaign_id, str) or not _ID.match(campaign_id):
        raise NotFound(f"no campaign {str(campaign_id)[:100]!r}")
    campaign = services.store.get_campaign(campaign_id)
    schedule = Schedule.of(services.store.list(campaign_id=campaign_id), campaign.get("releasing") or {})
    record = _public(services, campaign)
    counts = schedule.counts()
    record["counts"] = counts
    done = counts["total"] - counts["planned"] - counts["inFlight"]
    record["done"] = done
    record["progress"] = round(done / counts["total"], 4) if counts["total"] else 1.0
    return record


@dataclass
class _View:
    """What one tick reads: a few small queries, never the whole campaign (ticks run per finished job)."""

    active: list[Job]  # awaiting approval, dispatching, running, verifying
    released: dict[str, tuple[Job, str]]  # released, still planned: id -> (job, when released)
    errors: int

    @property
    def in_flight(self) -> int:
        return len(self.active) + len(self.released)


def _read(store: JobStore, campaign_id: str, campaign: Mapping[str, Any]) -> _View:
    active = store.list(campaign_id=campaign_id, status=sorted(IN_FLIGHT))
    errors = len(store.list(campaign_id=campaign_id, status=sorted(ERRORS)))
    released: dict[str, tuple[Job, str]] = {}
    listed = {job.id for job in active}
    # A released job a worker already holds is in the list above; the others are read in one batch.
    releasing = {k: v for k, v in (campaign.get("releasing") or {}).items() if k not in listed}
    for job_id, job in store.get_many(list(releasing)).items():
        at = releasing[job_id]
        if job.status == jobs.PLANNED:
            released[job_id] = (job, at)
        elif job.status in IN_FLIGHT and job_id not in listed:
            # A worker picked it up after the list above was read: it is in neither answer unless
            # counted here, and a slot it holds would be handed to another job.
            active.append(job)
            listed.add(job_id)
    return _View(active, released, errors)


def tick(services: Services, campaign_id: str) -> dict[str, Any]:
    """Advance the campaign from what the store says now; safe to call any time, from anywhere.

    Returns the campaign record with the scheduler's counts (``inFlight``, ``failed``);
    :func:`campaign_status` has every count. The record's ``releasing`` lists the jobs released and
    not yet picked up by a worker: the compare-and-swap that writes it is what serialises ticks.
    """
    store = services.store
    for _ in range(CAS_ATTEMPTS):
        campaign = store.get_campaign(campaign_id)
        if campaign.get("status") in FINAL:
            return _tick_result(services, campaign)
        now = services.clock.now()
        if campaign.get("status") == CREATING:
            created = _time(campaign.get("createdAt"))
            if created is not None and now - created < CREATION_TIMEOUT:
                return _tick_result(services, campaign)  # its creator is still making the jobs
            try:
                return _abandon(services, campaign, now)
            except ConcurrencyConflict:
                continue
        view = _read(store, campaign_id, campaign)
        stamp = now.isoformat()
        limit, concurrency = int(campaign["errorLimit"]), int(campaign["concurrency"])
        stop = campaign.get("stopRequested") or {}
        over = view.errors > limit or bool(stop)
        release: list[Job] = []
        cancel: list[Job] = []
        if over:
            cancel = store.list(campaign_id=campaign_id, status=jobs.PLANNED)
            cancel += [j for j in view.active if j.status == jobs.AWAITING_APPROVAL]
        else:
            room = max(0, concurrency - view.in_flight)
            if room:
                candidates = store.list(
                    campaign_id=campaign_id, status=jobs.PLANNED, limit=room + len(view.released)
                )
                fresh = sorted((j for j in candidates if j.id not in view.released), key=_order)
                release = fresh[:room]
        resend = [job for job, at in view.released.values() if now - _parse(at, now) >= RESEND_AFTER]
        releasing = {job_id: at for job_id, (_, at) in view.released.items()}
        releasing.update({job.id: stamp for job in (*release, *resend)})
        if over:
            releasing = {}

        status, stop_reason = RUNNING, campaign.get("stopReason", "")
        if over:
            stop_reason = stop_reason or (
                f"stopped by {stop.get('by')}: {stop.get('reason')}"
                if stop
                else f"{view.errors} VM(s) failed, more than the {limit} allowed "
                f"(maxErrors {campaign['maxErrors']})"
            )
            still_running = [j for j in view.active if j.status != jobs.AWAITING_APPROVAL]
            status = STOPPING if still_running else STOPPED
        elif (
            not release
            and not view.in_flight
            and not store.list(campaign_id=campaign_id, status=jobs.PLANNED, limit=1)
        ):
            status = COMPLETED
        scheduler = {"inFlight": view.in_flight + len(release), "failed": view.errors}
        unchanged = (
            status == campaign.get("status")
            and releasing == (campaign.get("releasing") or {})
            and scheduler == campaign.get("scheduler")
        )
        if unchanged:
            return _tick_result(services, campaign)
        updated = {
            **campaign,
            "status": status,
            "stopReason": stop_reason,
            "releasing": releasing,
            "scheduler": scheduler,
            "updatedAt": stamp,
        }
        if status in FINAL:
            updated["endedAt"] = stamp
        try:
            campaign = store.update_campaign(updated)
        except ConcurrencyConflict:
            continue  # another tick committed first: read again and decide with what it did
        # Committed: these jobs are ours to send. A crash before the send leaves them in ``releasing``,
        # where RESEND_AFTER finds them.
        _send(services.queue, [*release, *resend])
        _cancel(store, cancel, stop_reason, now)
        return _tick_result(services, campaign)
    # Every attempt lost to a concurrent tick: each of those did this tick's work.
    return _tick_result(services, store.get_campaign(campaign_id))


def stop_campaign(services: Services, campaign_id: str, *, actor: str, reason: str) -> dict[str, Any]:
    """An operator's stop: no VM starts after it, planned and waiting jobs are cancelled, the ones
    running finish. Recorded on the campaign with who and why; the tick that follows does the stopping."""
    if not isinstance(campaign_id, str) or not _ID.match(campaign_id):
        raise NotFound(f"no campaign {str(campaign_id)[:100]!r}")
    store = services.store
    for _ in range(CAS_ATTEMPTS):
        campaign = store.get_campaign(campaign_id)
        if campaign.get("status") in FINAL or campaign.get("stopRequested"):
            break
        now = services.clock.now().isoformat()
        try:
            store.update_campaign(
                {**campaign, "stopRequested": {"by": actor, "at": now, "reason": reason}, "updatedAt": now}
            )
        except ConcurrencyConflict:
            continue
        log.info("campaign %s: stop requested by %s: %s", campaign_id, actor, reason)
        break
    else:
        raise ConcurrencyConflict(f"campaign {campaign_id}: could not record the stop")
    return tick(services, campaign_id)


def _abandon(services: Services, campaign: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """Stop a campaign whose creation was interrupted; its jobs were never released, so none ran."""
    store = services.store
    planned = store.list(campaign_id=campaign["id"], status=jobs.PLANNED)
    reason = (
        f"creation was interrupted after {len(planned)} of {campaign.get('targetCount', '?')} jobs were "
        "made; nothing was released: start a new campaign"
    )
    stamp = now.isoformat()
    stopped = store.update_campaign(
        {**campaign, "status": STOPPED, "stopReason": reason, "updatedAt": stamp, "endedAt": stamp}
    )
    log.warning("campaign %s: %s", campaign["id"], reason)
    _cancel(store, planned, reason, now)
    return _tick_result(services, stopped)


def _tick_result(services: Services, campaign: Mapping[str, Any]) -> dict[str, Any]:
    record = _public(services, campaign)
    record["counts"] = dict(campaign.get("scheduler") or {})
    return record


def _order(job: Job) -> tuple[str, str]:
    """Release order: by VM id, so an operator can tell which VMs go first."""
    return (job.target_key, job.id)


def _parse(stamp: str, default: datetime) -> datetime:
    try:
        return datetime.fromisoformat(stamp)
    except (TypeError, ValueError):
        return default


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
    the run command of the same name instead of starting the script again. Returns the full status.
    """
    campaign = services.store.get_campaign(campaign_id)
    if campaign.get("status") not in FINAL:
        view = _read(services.store, campaign_id, campaign)
        waiting = [j for j in view.active if j.status != jobs.AWAITING_APPROVAL]
        _send(services.queue, [*(job for job, _ in view.released.values()), *waiting])
    tick(services, campaign_id)
    return campaign_status(services, campaign_id)
