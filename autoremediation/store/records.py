"""What every job store agrees on: ids, sortable time keys, the size bound and the list filters.

Both adapters serialise a job the same way and answer ``list`` with the same predicate, so a job
round-trips identically whichever store holds it and the contract tests hold for both.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from ..errors import InvalidInput
from ..jobs import Job
from ..resources import normalize
from ..verification import ran_script as ran_script  # what both stores index as RanScript

# Ids become Table Storage keys and file-system-free SQLite keys: keep them to characters that need no
# escaping anywhere (Table keys forbid / \ # ? and control characters).
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$")

# A Table entity holds at most 1 MiB, strings count two bytes a character: 384,000 ASCII characters of
# JSON leave room for the indexed properties. SQLite uses the same bound so both stores keep the same job.
MAX_BODY_CHARS = 384_000
# Output and error tails in ``run`` / ``outcome`` (and detector ``evidence``) are what grows without
# bound; their strings are cut to this many trailing characters first when a job would not fit.
TAIL_CHARS = 16_384
_TRUNCATED = "[truncated {n} characters]\n"
# The free-form parts of a job that hold what scripts and detectors said.
_GROWING = tuple(name for name in ("run", "outcome", "evidence") if name in Job.__dataclass_fields__)


def check_id(value: object, what: str = "job") -> str:
    if not isinstance(value, str) or not _ID.match(value):
        raise InvalidInput(
            f"{what} id {value!r} is not valid: use 1-200 letters, digits, '.', '_', ':' or '-', "
            "starting with a letter or digit"
        )
    return value


def check_lease(key: object, holder: object) -> None:
    if not isinstance(key, str) or not key:
        raise InvalidInput(f"lease key {key!r} must be a non-empty string")
    if not isinstance(holder, str) or not holder:
        raise InvalidInput(f"lease holder {holder!r} must be a non-empty string")


def check_lease_take(key: object, holder: object, ttl_seconds: float) -> None:
    """What every store checks before it takes a lease: its key, its holder and a TTL above 0 s."""
    check_lease(key, holder)
    if not ttl_seconds > 0:  # NaN too
        raise InvalidInput(f"lease ttl {ttl_seconds!r} must be more than 0 seconds")


def is_valid_id(value: object) -> bool:
    return isinstance(value, str) and bool(_ID.match(value))


def as_utc(moment: datetime) -> datetime:
    """Naive datetimes are taken as UTC: the engine only ever makes aware UTC ones."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def time_key(moment: datetime) -> str:
    """A fixed-width UTC text that sorts like the instant: ``isoformat`` drops zero microseconds and
    keeps offsets, so raw job timestamps do not compare correctly as strings."""
    return as_utc(moment).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: str, *, field: str, job_id: str) -> datetime:
    try:
        return as_utc(datetime.fromisoformat(value))
    except (TypeError, ValueError):
        raise InvalidInput(f"job {job_id}: {field}={value!r} is not an ISO 8601 timestamp") from None


def created_key(job: Job) -> str:
    return time_key(parse_time(job.created_at, field="created_at", job_id=job.id))


def updated_key(job: Job) -> str:
    """When the job last changed; a record that never set ``updated_at`` changed when it was made."""
    if not job.updated_at:
        return created_key(job)
    return time_key(parse_time(job.updated_at, field="updated_at", job_id=job.id))


def _cut(text: str, keep: int) -> str:
    if len(text) <= keep:
        return text
    return _TRUNCATED.format(n=len(text) - keep) + text[-keep:]


def _bounded_tails(value: Any, keep: int) -> Any:
    if isinstance(value, str):
        return _cut(value, keep)
    if isinstance(value, dict):
        return {k: _bounded_tails(v, keep) for k, v in value.items()}
    if isinstance(value, list):
        return [_bounded_tails(v, keep) for v in value]
    return value


def encode_job(job: Job) -> tuple[Job, str]:
    """The job as it will be stored (tails cut if it was too big) and its JSON text (ASCII only).

    ASCII JSON makes every character one UTF-16 unit, so the Table adapter can split it by length.
    Raises InvalidInput when the job is too big even with short tails (e.g. an endless history).
    """
    text = _dumps(job.to_dict(), job.id)
    keep = TAIL_CHARS
    while len(text) > MAX_BODY_CHARS and keep >= 256:
        job = replace(job, **{name: _bounded_tails(getattr(job, name), keep) for name in _GROWING})
        text = _dumps(job.to_dict(), job.id)
        keep //= 4
    if len(text) > MAX_BODY_CHARS:
        raise InvalidInput(
            f"job {job.id} is too large to store ({len(text)} characters of JSON, at most {MAX_BODY_CHARS})"
        )
    return job, text


def decode_job(text: str) -> Job:
    return Job.from_dict(json.loads(text))


def encode_document(document: Mapping[str, Any], what: str) -> str:
    text = _dumps(dict(document), what)
    if len(text) > MAX_BODY_CHARS:
        raise InvalidInput(f"{what} is too large to store ({len(text)} characters, at most {MAX_BODY_CHARS})")
    return text


def _dumps(data: Any, what: str) -> str:
    try:
        return json.dumps(data, ensure_ascii=True, separators=(",", ":"), sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{what} cannot be stored: {exc}") from None


def campaign_id_of(campaign: Mapping[str, Any]) -> str:
    if not isinstance(campaign, Mapping):
        raise InvalidInput(f"a campaign must be a mapping, not {type(campaign).__name__}")
    return check_id(campaign.get("id"), "campaign")


def campaign_version_of(campaign: Mapping[str, Any]) -> int:
    version = campaign.get("version", 0)
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise InvalidInput(f"campaign {campaign.get('id')!r}: version {version!r} is not a whole number >= 0")
    return version


@dataclass(frozen=True)
class JobFilter:
    """The ``list`` filters, normalised once; ``matches`` is the authority both stores answer with."""

    target_key: str | None = None
    statuses: frozenset[str] | None = None
    remediation: str | None = None
    alert_id: str | None = None
    campaign_id: str | None = None
    since_key: str | None = None
    limit: int | None = None

    @classmethod
    def of(
        cls,
        *,
        target: str | None = None,
        status: str | Sequence[str] | None = None,
        remediation: str | None = None,
        alert_id: str | None = None,
        campaign_id: str | None = None,
        since: datetime | None = None,
        limit: int | None = None,
    ) -> JobFilter:
        statuses: frozenset[str] | None = None
        if status is not None:
            statuses = frozenset([status] if isinstance(status, str) else status)
            if not all(isinstance(s, str) for s in statuses):
                raise InvalidInput(f"status filter {status!r} must be a string or a list of strings")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
            raise InvalidInput(f"limit {limit!r} must be a whole number >= 0")
        if since is not None and not isinstance(since, datetime):
            raise InvalidInput(f"since {since!r} must be a datetime")
        return cls(
            target_key=normalize(target) if target is not None else None,
            statuses=statuses,
            remediation=remediation,
            alert_id=alert_id,
            campaign_id=campaign_id,
            since_key=time_key(since) if since is not None else None,
            limit=limit,
        )

    def matches(self, job: Job) -> bool:
        return (
            (self.target_key is None or job.target_key == self.target_key)
            and (self.statuses is None or job.status in self.statuses)
            and (self.remediation is None or job.remediation == self.remediation)
            and (self.alert_id is None or job.alert_id == self.alert_id)
            and (self.campaign_id is None or job.campaign_id == self.campaign_id)
            and (self.since_key is None or created_key(job) >= self.since_key)
        )


def newest_first(jobs: list[Job], limit: int | None = None) -> list[Job]:
    """Newest ``created_at`` first; the id breaks ties so the order is the same on every store."""
    ordered = sorted(jobs, key=lambda j: (created_key(j), j.id), reverse=True)
    return ordered if limit is None else ordered[:limit]
