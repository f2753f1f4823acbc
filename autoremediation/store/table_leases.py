"""The per-VM leases of the Table Storage job store, and the cooldown's record on them.

Table ``<prefix>leases``: PartitionKey = ``lease-`` + SHA-256 of the lease key (VM ids hold ``/``, which
keys forbid), RowKey = ``lease``. Acquire, renew and release are ETag compare-and-swaps on that one
entity; a new lease is ``create_entity``, whose conflict means another holder got there first.

The entity also records, per remediation (``Ran_<id>``, a time key), when the last run that may have
changed the VM ended: the release writes it (a run of a lapsed lease is recorded without touching the
new holder), and an entity that holds such a record stays when its lease is released or swept. So
the cooldown and the holder come from one point read (``lease_facts``), not from a scan of the jobs
table, which has no index by VM and grows with retention. The store remembers what it last saw of
each lease entity (its ETag, holder and records; bounded), so taking the lease after that read is
one request (an insert, or a compare-and-swap MERGE that keeps the records), and so is a release by
the store that took it, or by another instance given the entity's ETag as that store left it
(``lease_tag``, which the job carries in ``run.leaseTag``); without it, or when the entity changed
since, the release reads first. A remembered view never says no on its own: a lease it saw as someone
else's is read again. A lease freed on a tag alone stays as a bare entity until the sweep drops it.

Jobs that ended before runs were recorded here are not on any lease entity. A marker entity
(PartitionKey ``runs-recorded``) says since when every run is: made by the first store that needs it,
with the earliest time when no job had run yet (a new deployment), else the time it was made. A
``lease_facts`` whose cooldown window reaches back before that moment, and that finds no record,
asks the jobs (the old scan); a window after it never does. The trade-off: a job written by a
process of the previous version after the marker was made (during a rolling upgrade) is not seen by
the cooldown, since that version deletes the lease instead of recording the run.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ..errors import InvalidInput
from ..jobs import Job
from ..ports import LeaseFacts
from .records import as_utc, check_lease, time_key
from .table_support import delete_if_unchanged, etag

_LEASE_ROW = "lease"
_RUN_PREFIX = "Ran_"
_CATALOG_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,199}$")
# The marker that says since when runs are recorded on lease entities (it has no ExpiresKey, so the
# lease sweep never matches it; lease partitions all start with "lease-").
_MARKER_PARTITION = "runs-recorded"
_MARKER_ROW = "since"
_EARLIEST = "0001-01-01T00:00:00.000000Z"
# Compare-and-swap retries for a lease before answering "someone else has it": losing this many races
# in a row means another holder is active, and the safe answer is not to run.
_LEASE_ATTEMPTS = 8
_JOB_ROW = "job"
# How many lease entities a store remembers (ETag, holder, records): enough for the VMs a busy worker
# has in flight, small enough to be nothing in memory.
REMEMBERED = 8192


def _lease_partition(key: str) -> str:
    return "lease-" + hashlib.sha256(key.encode("utf-8")).hexdigest()


def _run_property(remediation: str) -> str:
    """The lease entity's property for a remediation's last run: catalog ids (lower case, digits and
    dashes) read as they are; anything else by its hash (property names are identifiers)."""
    if _CATALOG_ID.match(remediation):
        return _RUN_PREFIX + remediation.replace("-", "_")
    return _RUN_PREFIX + "h" + hashlib.sha256(remediation.encode("utf-8")).hexdigest()[:40]


def _from_time_key(text: str) -> datetime | None:
    try:
        return as_utc(datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ"))
    except ValueError:
        return None


class _Unknown:
    """This store has not seen the lease entity (lately): read it before acting."""


UNKNOWN = _Unknown()


def _runs_of(state: object) -> Mapping[str, str] | None:
    """The runs a remembered lease state lists; None when unknown (nothing seen, or only an ETag)."""
    if state is None:
        return {}
    if isinstance(state, _LeaseState) and state.seen:
        return state.runs
    return None


def _ran_since(judged_on: Mapping[str, str], current: _LeaseState | None) -> bool:
    """A run recorded on the entity that the earlier view did not have (a newer end for any remediation)."""
    runs = current.runs if current is not None else {}
    return any(value > judged_on.get(name, "") for name, value in runs.items())


@dataclass(frozen=True)
class _LeaseState:
    """A lease entity as this store last saw it: its ETag, holder, expiry and recorded runs."""

    etag: str
    holder: str  # "" when released
    expires_key: str  # "" when released
    runs: Mapping[str, str]  # run property -> time key of that remediation's last run's end
    # False: only the ETag is known (a tag a job carried from the store that took its lease), so the
    # entity may hold runs this view does not list: it is never deleted on that view.
    seen: bool = True

    @classmethod
    def of(cls, entity: Mapping[str, Any], etag: str) -> _LeaseState:
        runs = {name: str(value) for name, value in entity.items() if name.startswith(_RUN_PREFIX)}
        return cls(etag, str(entity.get("Holder") or ""), str(entity.get("ExpiresKey") or ""), runs)

    def live_holder(self, now_key: str) -> str | None:
        return self.holder if self.holder and self.expires_key > now_key else None

    def changed(self, etag: str, change: Mapping[str, str]) -> _LeaseState:
        runs = {**self.runs, **{k: v for k, v in change.items() if k.startswith(_RUN_PREFIX)}}
        return _LeaseState(
            etag,
            change.get("Holder", self.holder),
            change.get("ExpiresKey", self.expires_key),
            runs,
            self.seen,
        )


class TableLeases:
    """``acquire_lease``, ``release_lease``, ``lease_facts``, ``lease_holder`` and ``sweep_leases`` of
    ``TableJobStore``, on the clients it gives: ``leases`` and ``jobs`` return its table clients,
    ``last_outcome`` is its scan of the jobs (for runs that ended before they were recorded here)."""

    def __init__(
        self,
        leases: Callable[[], Any],
        jobs: Callable[[], Any],
        last_outcome: Callable[[str, str], Job | None],
    ) -> None:
        self._leases = leases
        self._jobs = jobs
        self._last_outcome = last_outcome
        self._lock = threading.Lock()
        # lease key -> the lease entity as last seen (None: it did not exist); see ``acquire_lease``.
        self._seen: OrderedDict[str, _LeaseState | None] = OrderedDict()
        self._records_since: str | None = None
        self._marker_lock = threading.Lock()

    def _remember_lease(self, key: str, state: _LeaseState | None) -> _LeaseState | None:
        """What this store last saw of a lease entity (None: it does not exist), for the next CAS."""
        with self._lock:
            self._seen[key] = state
            self._seen.move_to_end(key)
            while len(self._seen) > REMEMBERED:
                self._seen.popitem(last=False)
        return state

    def _forget_lease(self, key: str) -> None:
        with self._lock:
            self._seen.pop(key, None)

    def _remembered_lease(self, key: str) -> _LeaseState | _Unknown | None:
        with self._lock:
            return self._seen.get(key, UNKNOWN)

    def _read_lease(self, key: str) -> _LeaseState | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            entity = self._leases().get_entity(_lease_partition(key), _LEASE_ROW)
        except ResourceNotFoundError:
            return self._remember_lease(key, None)
        return self._remember_lease(key, _LeaseState.of(entity, etag(entity)))

    def lease_facts(self, key: str, remediation: str, now: datetime, *, runs_since: datetime) -> LeaseFacts:
        check_lease(key, "facts")
        state = self._read_lease(key)
        holder = state.live_holder(time_key(now)) if state is not None else None
        recorded = state.runs.get(_run_property(remediation)) if state is not None else None
        ended = _from_time_key(recorded) if recorded else None
        if ended is None and self._runs_recorded_since() > time_key(runs_since):
            # Jobs that ended before this store kept runs on leases may fall in the window: ask them.
            last = self._last_outcome(key, remediation)
            ended = as_utc(datetime.fromisoformat(last.updated_at or last.created_at)) if last else None
        return LeaseFacts(holder, ended)

    def _runs_recorded_since(self) -> str:
        """Since when every run's end is recorded on its lease entity (a time key; the earliest one when
        the store kept them from its first run on). Read once per store from a marker entity, made by the
        first store that needed it: if jobs had run by then, the runs before are only in the jobs."""
        if self._records_since is not None:
            return self._records_since
        table = self._leases()
        with self._marker_lock:  # threads of one process read (or make) it once between them
            if self._records_since is None:
                self._records_since = self._read_or_make_marker(table)
        return self._records_since

    def _read_or_make_marker(self, table: Any) -> str:
        from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError

        try:
            since = str(table.get_entity(_MARKER_PARTITION, _MARKER_ROW)["Since"])
        except ResourceNotFoundError:
            ran = self._jobs().query_entities(
                "RowKey eq @row and RanScript eq true",
                parameters={"row": _JOB_ROW},
                select=["PartitionKey"],
                results_per_page=1,
            )
            since = _EARLIEST if next(iter(ran), None) is None else time_key(datetime.now(UTC))
            try:
                table.create_entity(
                    {"PartitionKey": _MARKER_PARTITION, "RowKey": _MARKER_ROW, "Since": since}
                )
            except ResourceExistsError:  # another store made it first: theirs is the one
                since = str(table.get_entity(_MARKER_PARTITION, _MARKER_ROW)["Since"])
        return since

    def acquire_lease(self, key: str, holder: str, ttl_seconds: float, now: datetime) -> bool:
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
        from azure.data.tables import UpdateMode

        check_lease(key, holder)
        if ttl_seconds <= 0:
            raise InvalidInput(f"lease ttl {ttl_seconds!r} must be more than 0 seconds")
        table = self._leases()
        now_key = time_key(now)
        lease = {"Key": key, "Holder": holder, "ExpiresKey": time_key(now + timedelta(seconds=ttl_seconds))}
        entity = {"PartitionKey": _lease_partition(key), "RowKey": _LEASE_ROW, **lease}
        # What this store saw last (the read just before, or its own last write) makes this one request:
        # an insert when the entity did not exist, a compare-and-swap on its ETag when it was free or
        # ours. Remembered as someone else's, it is read again before the answer is no.
        current = self._remembered_lease(key)
        # The runs the caller's cooldown was judged on (its lease_facts read is what this store saw last).
        judged_on = _runs_of(current)
        if isinstance(current, _LeaseState) and current.live_holder(now_key) not in (None, holder):
            current = UNKNOWN
        for attempt in range(_LEASE_ATTEMPTS):
            if isinstance(current, _Unknown):
                current = self._read_lease(key)
                if attempt and judged_on is not None and _ran_since(judged_on, current):
                    # Lost a race to a job that ran on this VM and released it meanwhile: its run may
                    # start this one's cooldown, so the caller decides again on fresh facts.
                    return False
            if current is None:
                try:
                    written = table.create_entity(entity)
                except ResourceExistsError:
                    current = UNKNOWN
                    continue  # someone created it first: look at what they wrote
                self._remember_lease(
                    key, _LeaseState(str(written.get("etag")), holder, lease["ExpiresKey"], {})
                )
                return True
            if current.live_holder(now_key) not in (None, holder):
                return False
            try:
                # MERGE: the runs recorded on the entity stay.
                written = table.update_entity(
                    entity,
                    mode=UpdateMode.MERGE,
                    etag=current.etag,
                    match_condition=MatchConditions.IfNotModified,
                )
            except (ResourceModifiedError, ResourceNotFoundError):
                current = UNKNOWN
                continue  # changed or swept under us: decide again on fresh facts
            self._remember_lease(key, current.changed(str(written.get("etag")), lease))
            return True
        self._forget_lease(key)
        return False

    def lease_tag(self, key: str) -> str | None:
        """The ETag of the lease entity as this store last wrote or read it, when it was held."""
        current = self._remembered_lease(key)
        return current.etag if isinstance(current, _LeaseState) and current.holder else None

    def release_lease(
        self, key: str, holder: str, *, ran: tuple[str, datetime] | None = None, tag: str | None = None
    ) -> None:
        """The entity stays, free, when it holds a run (the cooldown's record); one without goes. The run
        is recorded whoever holds the lease now (a lapsed lease taken over keeps its new holder).

        One request when this store took the lease, or with ``tag`` (``lease_tag`` of the store that
        did, carried by the job): a compare-and-swap on it can only succeed while the entity is as the
        holder left it. Otherwise, or when it changed since, the entity is read first."""
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
        from azure.data.tables import UpdateMode

        check_lease(key, holder)
        table = self._leases()
        keys = {"PartitionKey": _lease_partition(key), "RowKey": _LEASE_ROW}
        run = {_run_property(ran[0]): time_key(ran[1])} if ran is not None else {}
        current = self._remembered_lease(key)
        if not isinstance(current, _LeaseState) or current.holder != holder:
            current = _LeaseState(tag, holder, "", {}, seen=False) if tag else UNKNOWN
        for _ in range(_LEASE_ATTEMPTS):
            if isinstance(current, _Unknown):
                current = self._read_lease(key)
            if current is None:
                if not run:
                    return
                free = {"Key": key, "Holder": "", "ExpiresKey": "", **run}
                try:
                    written = table.create_entity({**keys, **free})
                except ResourceExistsError:
                    current = UNKNOWN
                    continue
                self._remember_lease(key, _LeaseState(str(written.get("etag")), "", "", dict(run)))
                return
            change: dict[str, str] | None
            if current.holder != holder:
                if not run or current.runs.get(next(iter(run)), "") >= next(iter(run.values())):
                    return  # not ours, and nothing newer to record
                change = dict(run)  # their lease stays; the run is recorded
            elif run or current.runs or not current.seen:
                change = {"Holder": "", "ExpiresKey": "", **run}  # free; the sweep drops it if bare
            else:
                change = None  # ours and nothing recorded on it: it goes, as leases always did
            try:
                if change is None:
                    table.delete_entity(
                        keys["PartitionKey"],
                        _LEASE_ROW,
                        etag=current.etag,
                        match_condition=MatchConditions.IfNotModified,
                    )
                    self._remember_lease(key, None)
                else:
                    written = table.update_entity(
                        {**keys, **change},
                        mode=UpdateMode.MERGE,
                        etag=current.etag,
                        match_condition=MatchConditions.IfNotModified,
                    )
                    self._remember_lease(key, current.changed(str(written.get("etag")), change))
            except ResourceNotFoundError:
                current = None if run else UNKNOWN
                if run:
                    continue  # swept meanwhile: the run still needs its record
                self._forget_lease(key)
                return
            except ResourceModifiedError:
                current = UNKNOWN
                continue  # taken over or renewed meanwhile: only change what is still ours
            return
        self._forget_lease(key)

    def lease_holder(self, key: str, now: datetime) -> str | None:
        current = self._read_lease(key)
        return current.live_holder(time_key(now)) if current is not None else None

    def sweep_leases(self, now: datetime) -> int:
        now_key = time_key(now)
        table = self._leases()
        swept = 0
        for entity in list(table.query_entities("ExpiresKey le @now", parameters={"now": now_key})):
            if str(entity.get("ExpiresKey") or "") > now_key:
                continue
            if any(name.startswith(_RUN_PREFIX) for name in entity):
                continue  # free already, and it holds the cooldown's record: it stays
            # A lease renewed after the query has a new ETag and survives.
            swept += delete_if_unchanged(table, entity)
            self._forget_lease(str(entity.get("Key") or ""))
        return swept
