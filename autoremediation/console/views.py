"""What each console page shows, read from the engine: plain data for the templates, no HTML here.

Parameters the catalog declares secret read ``(secret)`` (``Catalog.redacted``), as in the API.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from .. import jobs
from ..errors import InvalidInput, NotFound
from ..evidence import evidence_summary
from ..resources import is_arm_id

if TYPE_CHECKING:
    from ..jobs import Job
    from ..services import Services

FILTERS = ("status", "vm", "remediation", "campaign", "since")
LIST_LIMIT = 100
# A name filter reads this many recent jobs and keeps those on a VM of that name: the store filters by
# full resource id only, and an operator types names.
NAME_SCAN_LIMIT = 2000
MAX_FILTER_CHARS = 200
OUTPUT_TAIL_LINES = 40
CAMPAIGN_SCAN_LIMIT = 500


@dataclass(frozen=True)
class JobFilters:
    status: tuple[str, ...] = ()
    vm: str = ""
    remediation: str = ""
    campaign: str = ""
    since: datetime | None = None

    @property
    def active(self) -> bool:
        return bool(self.status or self.vm or self.remediation or self.campaign or self.since)

    def as_form(self) -> dict[str, str]:
        return {
            "status": ",".join(self.status),
            "vm": self.vm,
            "remediation": self.remediation,
            "campaign": self.campaign,
            "since": self.since.isoformat() if self.since else "",
        }


def parse_filters(params: Mapping[str, str], now: datetime) -> JobFilters:
    """The job list's query string; InvalidInput names the filter that cannot be read."""
    values = {name: (params.get(name) or "").strip() for name in FILTERS}
    for name, value in values.items():
        if len(value) > MAX_FILTER_CHARS or not value.isprintable():
            raise InvalidInput(f"the {name} filter is not a short line of text")
    statuses = tuple(s.strip() for s in values["status"].split(",") if s.strip())
    unknown = [s for s in statuses if s not in jobs.STATES]
    if unknown:
        raise InvalidInput(f"status {unknown[0]!r} is not one of {', '.join(jobs.STATES)}")
    return JobFilters(
        status=statuses,
        vm=values["vm"],
        remediation=values["remediation"],
        campaign=values["campaign"],
        since=_since(values["since"], now),
    )


def _since(text: str, now: datetime) -> datetime | None:
    """``24h``, ``7d``, ``90m`` or an ISO 8601 time with a zone."""
    if not text:
        return None
    units = {"m": "minutes", "h": "hours", "d": "days"}
    if text[-1:] in units and text[:-1].isdigit():
        return now - timedelta(**{units[text[-1]]: int(text[:-1])})
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"since {text!r} is not like 24h, 7d or 2026-01-31T00:00:00Z") from None
    if moment.tzinfo is None:
        raise InvalidInput(f"since {text!r} needs a time zone (like 2026-01-31T00:00:00Z)")
    return moment


def vm_name(target: str) -> str:
    return target.rstrip("/").rsplit("/", 1)[-1]


def _age(stamp: str | None, now: datetime) -> str:
    if not stamp:
        return ""
    try:
        seconds = int((now - datetime.fromisoformat(stamp)).total_seconds())
    except ValueError:
        return ""
    return _duration(seconds) + (" ago" if seconds >= 0 else " from now")


def _duration(seconds: int) -> str:
    seconds = abs(seconds)
    if seconds < 90:
        return f"{seconds}s"
    if seconds < 90 * 60:
        return f"{seconds // 60} min"
    if seconds < 36 * 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86400} d"


def _remaining(stamp: str | None, now: datetime) -> str:
    if not stamp:
        return ""
    try:
        seconds = int((datetime.fromisoformat(stamp) - now).total_seconds())
    except ValueError:
        return ""
    return "closed" if seconds <= 0 else f"in {_duration(seconds)}"


def _flat(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    """A nested record as ``(path, text)`` rows, for evidence and script measurements."""
    if isinstance(value, Mapping):
        rows: list[tuple[str, str]] = []
        for key, item in value.items():
            rows += _flat(item, f"{prefix}.{key}" if prefix else str(key))
        return rows
    if isinstance(value, list | tuple):
        if all(not isinstance(v, Mapping | list | tuple) for v in value):
            return [(prefix, ", ".join(str(v) for v in value))]
        rows = []
        for index, item in enumerate(value):
            rows += _flat(item, f"{prefix}[{index}]")
        return rows
    return [(prefix, "" if value is None else str(value))]


def summary(services: Services, job: Job, now: datetime) -> dict[str, Any]:
    remediation = services.catalog.remediations.get(job.remediation)
    return {
        "id": job.id,
        "status": job.status,
        "remediation": job.remediation,
        "title": remediation.title if remediation else job.remediation,
        "risk": remediation.risk if remediation else "unknown",
        "condition": job.condition,
        "vm": vm_name(job.target),
        "target": job.target,
        "requestedBy": job.requested_by,  # an object id: separation of duties compares these
        "requestedByName": job.requested_by_name or job.requested_by,
        "reason": job.reason,
        "created": job.created_at,
        "age": _age(job.created_at, now),
        "updated": job.updated_at,
        "dryRun": job.dry_run,
        "campaign": job.campaign_id or "",
        "expires": job.approval_expires_at or "",
        "expiresIn": _remaining(job.approval_expires_at, now),
        "approvedBy": job.approved_by or "",
        "approvedByName": (job.review.get("name") if job.review else "") or job.approved_by or "",
        "parameters": services.catalog.redacted(job.remediation, job.parameters),
        "why": evidence_summary(job.evidence),  # the sentence the CLI and the approval request show
        "evidence": _flat(job.evidence),
        "awaiting": job.status == jobs.AWAITING_APPROVAL and not job.approved_by,
    }


def pending_approvals(services: Services) -> list[dict[str, Any]]:
    now = services.clock.now()
    waiting = services.store.list(status=jobs.AWAITING_APPROVAL, limit=LIST_LIMIT)
    # Oldest first: the one closest to expiring is the one to look at.
    return [summary(services, job, now) for job in reversed(waiting) if not job.approved_by]


def job_list(services: Services, filters: JobFilters) -> list[dict[str, Any]]:
    now = services.clock.now()
    query: dict[str, Any] = {"limit": LIST_LIMIT}
    if filters.status:
        query["status"] = list(filters.status)
    if filters.remediation:
        query["remediation"] = filters.remediation
    if filters.campaign:
        query["campaign_id"] = filters.campaign
    if filters.since:
        query["since"] = filters.since
    found: Sequence[Job]
    if filters.vm and is_arm_id(filters.vm):
        found = services.store.list(target=filters.vm, **query)
    elif filters.vm:
        wanted = filters.vm.lower()
        scanned = services.store.list(**{**query, "limit": NAME_SCAN_LIMIT})
        found = [j for j in scanned if wanted in vm_name(j.target).lower()][:LIST_LIMIT]
    else:
        found = services.store.list(**query)
    return [summary(services, job, now) for job in found]


def job_detail(services: Services, job_id: str) -> dict[str, Any]:
    job = services.store.get(job_id)
    now = services.clock.now()
    data = summary(services, job, now)
    outcome = dict(job.outcome)
    result = outcome.get("result") if isinstance(outcome.get("result"), Mapping) else {}
    tail = str(outcome.get("outputTail") or "")
    data.update(
        history=[
            {"at": t.at, "from": t.source or "", "to": t.target, "actor": t.actor, "reason": t.reason}
            for t in job.history
        ],
        notes=list(job.notes),
        scriptStatus=str(result.get("status", "")) if result else "",
        before=_flat(result.get("before") or {}) if result else [],
        after=_flat(result.get("after") or {}) if result else [],
        outcome=[
            (key, str(value))
            for key, value in outcome.items()
            if key not in {"result", "outputTail"} and not isinstance(value, Mapping | list)
        ],
        controlPlane=_flat(outcome.get("controlPlane") or {}),
        outputTail="\n".join(tail.splitlines()[-OUTPUT_TAIL_LINES:]),
    )
    return data


def campaigns(services: Services) -> list[dict[str, Any]]:
    """The campaigns of recent jobs, newest first, with their counts."""
    from ..campaigns import campaign_status

    seen: dict[str, None] = {}
    for job in services.store.list(limit=CAMPAIGN_SCAN_LIMIT):
        if job.campaign_id:
            seen.setdefault(job.campaign_id, None)
    found = []
    for campaign_id in seen:
        try:
            found.append(campaign_view(campaign_status(services, campaign_id)))
        except NotFound:
            continue
    return found


def campaign_view(record: Mapping[str, Any]) -> dict[str, Any]:
    counts = dict(record.get("counts") or {})
    return {
        "id": str(record.get("id", "")),
        "status": str(record.get("status", "")),
        "remediation": str(record.get("remediation", "")),
        "progressPercent": round(float(record.get("progress") or 0) * 100),
        "done": int(record.get("done") or 0),
        "total": int(counts.get("total") or 0),
        "failed": int(counts.get("failed") or 0),
        "errorLimit": record.get("errorLimit", ""),
        "maxErrors": str(record.get("maxErrors", "")),
        "concurrency": record.get("concurrency", ""),
        "stopReason": str(record.get("stopReason", "")),
        "counts": sorted((str(k), str(v)) for k, v in counts.items()),
        "stoppable": record.get("status") in {"running", "creating"},
    }
