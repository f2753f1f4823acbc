"""What a lease entity of the Table Storage job store records, as the store sees it (``table_leases``).

``Last_<id>`` = ``"<job id> <time key>"``: a remediation's pending run, the job that took or renewed the
lease for it last and the latest its end can be while its lease holds. ``Was_<id>``: the end of the last
run recorded before it (a time key). ``Ran_<id>``: the latest end of any recorded run, or the pending
run's bound (provisional, for readers of the previous version). ``LeaseState`` is what a store last saw
of an entity; the functions below say what a take, a release and a reader make of the records.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .records import as_utc

RUN_PREFIX = "Ran_"
PENDING_PREFIX = "Last_"
WAS_PREFIX = "Was_"
_PREFIXES = (RUN_PREFIX, PENDING_PREFIX, WAS_PREFIX)
_CATALOG_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,199}$")


def _remediation_suffix(remediation: str) -> str:
    """How a remediation is named in property names: catalog ids (lower case, digits and dashes) read
    as they are; anything else by its hash (property names are identifiers)."""
    if _CATALOG_ID.match(remediation):
        return remediation.replace("-", "_")
    return "h" + hashlib.sha256(remediation.encode("utf-8")).hexdigest()[:40]


def run_property(remediation: str) -> str:
    """The lease entity's property for a remediation's last recorded run (its end, a time key)."""
    return RUN_PREFIX + _remediation_suffix(remediation)


def pending_property(remediation: str) -> str:
    """The lease entity's property for a remediation's pending run: ``"<job id> <bound time key>"``."""
    return PENDING_PREFIX + _remediation_suffix(remediation)


def suffix_of(remediation: str) -> str:
    """What follows the prefix in the remediation's property names."""
    return _remediation_suffix(remediation)


def pending_run(text: str | None) -> tuple[str, str] | None:
    """(job id, bound time key) of a pending-run value; None when blank."""
    job_id, _, bound = (text or "").rpartition(" ")
    return (job_id, bound) if job_id and bound else None


def from_time_key(text: str) -> datetime | None:
    try:
        return as_utc(datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ"))
    except ValueError:
        return None


class Unknown:
    """This store has not seen the lease entity (lately): read it before acting."""


UNKNOWN = Unknown()


@dataclass(frozen=True)
class Ended:
    """A holder's job that has ended, and the end of its run when its script may have changed the VM."""

    run_end: str | None  # time key
    holds: bool = False  # its script may still run: it holds its lease until the lease expires


LIVE = "live"  # the job exists and has not ended
GONE = "gone"  # no such job: never made by this app (a lease taken by hand) or deleted by retention
Found = Ended | str
Seen = tuple[str, str]  # (job id, the lease bound it set): a job as a lease names it


def records_of(state: object) -> Mapping[str, str] | None:
    """The records a remembered lease state lists; None when unknown (nothing seen, or only an ETag)."""
    if state is None:
        return {}
    if isinstance(state, LeaseState) and state.seen:
        return state.records
    return None


def recorded_since(judged_on: Mapping[str, str], current: LeaseState | None) -> bool:
    """A run the earlier view did not have: a newer recorded end, or another pending job."""
    records = current.records if current is not None else {}
    for name, value in records.items():
        before = judged_on.get(name, "")
        if name.startswith((RUN_PREFIX, WAS_PREFIX)) and value > before:
            return True
        if name.startswith(PENDING_PREFIX) and pending_run(value) not in (None, pending_run(before)):
            return True
    return False


@dataclass(frozen=True)
class LeaseState:
    """A lease entity as this store last saw it: its ETag, holder, expiry and records."""

    etag: str
    holder: str  # "" when released
    expires_key: str  # "" when released
    records: Mapping[str, str]  # Ran_, Was_ and Last_ properties, as stored
    # False: only the ETag is known (a tag a job carried from the store that took its lease), so the
    # entity may hold records this view does not list: it is never deleted on that view.
    seen: bool = True
    # What the read that saw it (``lease_facts``) found of the jobs it names, for the take that follows.
    jobs: Mapping[Seen, Found] = field(default_factory=dict)

    @classmethod
    def of(cls, entity: Mapping[str, Any], etag: str) -> LeaseState:
        records = {name: str(value or "") for name, value in entity.items() if name.startswith(_PREFIXES)}
        return cls(etag, str(entity.get("Holder") or ""), str(entity.get("ExpiresKey") or ""), records)

    def live_holder(self, now_key: str) -> str | None:
        return self.holder if self.holder and self.expires_key > now_key else None

    def has_records(self) -> bool:
        return any(
            pending_run(value) is not None if name.startswith(PENDING_PREFIX) else value
            for name, value in self.records.items()
        )

    def changed(self, etag: str, change: Mapping[str, str]) -> LeaseState:
        records = {
            **self.records,
            **{k: v for k, v in change.items() if k.startswith(_PREFIXES)},
        }
        return LeaseState(
            etag,
            change.get("Holder", self.holder),
            change.get("ExpiresKey", self.expires_key),
            records,
            self.seen,
        )


def owned_by(name: str, value: str, holder: str) -> bool:
    """A pending-run property naming ``holder``."""
    pending = pending_run(value) if name.startswith(PENDING_PREFIX) else None
    return pending is not None and pending[0] == holder


def recorded_end(records: Mapping[str, str], suffix: str) -> str:
    """The end of the remediation's last recorded run (a time key, "" when none): ``Was_``, and ``Ran_``
    unless it is the provisional bound a take wrote there for its pending run (it then says only that
    the pending run ends no later, which its job tells exactly)."""
    ran = records.get(RUN_PREFIX + suffix, "")
    pending = pending_run(records.get(PENDING_PREFIX + suffix))
    if pending is not None and ran == pending[1]:
        ran = ""
    return max(ran, records.get(WAS_PREFIX + suffix, ""))


def taken_for(
    records: Mapping[str, str], suffix: str, holder: str, bound: str, fold: str | None
) -> dict[str, str]:
    """What a take (or renewal) by ``holder`` writes for its remediation: its pending run (``Last_``),
    the exact record in ``Was_`` (with the run it replaces, ``fold``), and in ``Ran_`` the latest the
    last run can have ended: the bound, unless a recorded run ended later."""
    was = max(recorded_end(records, suffix), fold or "")
    change = {PENDING_PREFIX + suffix: f"{holder} {bound}", RUN_PREFIX + suffix: max(bound, was)}
    if was != records.get(WAS_PREFIX + suffix, ""):
        change[WAS_PREFIX + suffix] = was
    return change


def settled(records: Mapping[str, str], suffix: str, end: str | None) -> dict[str, str]:
    """What records the remediation's pending run as settled (its run ended at ``end``, or never ran):
    blank the pending run, and make ``Ran_`` exact again."""
    return {PENDING_PREFIX + suffix: "", RUN_PREFIX + suffix: max(recorded_end(records, suffix), end or "")}


def with_run(records: Mapping[str, str], suffix: str, end: str) -> dict[str, str]:
    """What records a run of the remediation that ended at ``end`` beside the pending run (not its
    own): nothing when a later end is recorded; in ``Was_`` when ``Ran_`` is a later provisional bound
    (older readers keep seeing the bound); else in ``Ran_``."""
    if end <= recorded_end(records, suffix):
        return {}
    ran = records.get(RUN_PREFIX + suffix, "")
    return {WAS_PREFIX + suffix: end} if end <= ran else {RUN_PREFIX + suffix: end}
