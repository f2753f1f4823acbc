"""The per-VM leases of the Table Storage job store, and the cooldown's record on them.

Table ``<prefix>leases``: PartitionKey = ``lease-`` + SHA-256 of the lease key (VM ids hold ``/``, which
keys forbid), RowKey = ``lease``. Acquire, renew and release are ETag compare-and-swaps on that one
entity; a new lease is ``create_entity``, whose conflict means another holder got there first.

A holder whose job has ended holds nothing. A live holder (``Holder``, unexpired ``ExpiresKey``) is
looked up among the jobs (one point read, which the store keeps: ``table_lease_jobs``): it holds the VM
only while its job has not ended (a holder no job backs, or whose job ended while its script may still
run, holds it until it expires). So a job that ran needs no write after its result to free its VM; an
explicit release is an early free that spares the next job that read.

The entity records, per remediation, what the cooldown counts from. ``Last_<id>`` = ``"<job id> <time
key>"``: the job that took (or renewed) the lease for that remediation last, its *pending run*, and the
latest its end can be while its lease holds (the lease's expiry as that job set it). It is per
remediation, so a job of another remediation taking the VM later leaves it. ``Was_<id>`` (a time key):
the end of the last run recorded before the pending one. ``Ran_<id>`` (a time key): the latest end of
any run recorded: while a pending run is there, a take writes its bound (*provisional*: an instance of
the previous version, which reads only ``Ran_``, then counts from no earlier than the real end); a
release or a settled pending run writes the exact end. ``lease_facts`` gives the latest of ``Was_``,
``Ran_`` unless it equals the pending run's bound (``table_lease_state.recorded_end``), and the pending
job's run (``verification.run_record``: its end, when its script may have changed the VM), read from the
job only when that bound falls in the caller's cooldown window: a job not ended yet has no past run; a
job deleted by retention counts as its bound. A take folds what it replaces into ``Was_`` in its one
request: the replaced pending run (its exact end when this store read the job ended, nothing when it
read it still going, which then releases its lapsed lease itself, else its bound), and settles any other
pending run this store knows ended (its ``Last_`` blanked, its run exact in ``Ran_``). An explicit
release records the holder's run whoever holds the lease now (a lapsed lease taken over keeps its new
holder; beside another pending run it goes into ``Was_`` when ``Ran_`` holds a later provisional bound)
and settles the holder's own pending run. The runner releases explicitly whenever the lease may have
lapsed before the job's end: a run's end after its bound is then always recorded. An entity that holds a
record stays when its lease is released or swept, so the cooldown and the holder come from one point
read (``lease_facts``), not from a scan of the jobs table, which has no index by VM and grows with
retention. Three properties per remediation that ran on the VM, beside ``Key``, ``Holder`` and
``ExpiresKey``: Azure allows 252 custom properties per entity (255 with PartitionKey, RowKey and
Timestamp), so 83 remediations per VM.

The store remembers what it last saw of each lease entity (its ETag, holder and records; bounded) and
which holders' jobs it saw ended, so taking the lease after ``lease_facts`` is one request (an insert,
or a compare-and-swap MERGE that keeps the records), and so is a release by the store that took it,
or by another instance given the entity's ETag as that store left it (``lease_tag``, which the job
carries in ``run.leaseTag``); without it, or when the entity changed since, the release reads first.
A remembered view never says no on its own: a lease it saw as someone else's is read again. A lease
freed on a tag alone stays as an entity until the sweep drops it when it holds no record.

During a rolling upgrade (or after a rollback) an instance of the previous version reads only
``Ran_``, takes a lease with a MERGE of the lease's own properties (``Last_`` and ``Was_`` stay), writes
the run's end into ``Ran_`` on its release (its holder's always, another's only when later than what is
there), and sweeps only an entity with no ``Ran_`` property, which a take always writes. Whichever
version takes, releases or sweeps, neither sees no run, or a run earlier than the real one: this version
reads an exact ``Ran_`` an old release wrote (it differs from the pending bound) beside ``Was_`` and the
pending run; the previous version reads the pending run's bound, a later end than the real one, so its
cooldown lasts up to a lease's time-to-live longer (and a pending job that never ran still counts, at
its bound). One gap is left, in a case that is already a fault: a job whose lease lapsed while its script
still ran, taken over for the same remediation by this version and then released by the previous one
before the new holder's bound, is seen by the previous version (its bound) but not by this one. A job
whose lease that version took carries no bound of its own (``run.leaseUntil``), so this version's runner
releases it explicitly; one that version renewed keeps the bound this version set, the one its pending
run names, and is judged on it.

Jobs that ended before runs were recorded here are not on any lease entity: a ``lease_facts`` that finds
no run asks the jobs when its cooldown window reaches back before runs were (``table_runs_recorded``).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from ..jobs import Job
from ..ports import LeaseFacts
from .records import as_utc, check_lease, check_lease_take, time_key
from .table_lease_jobs import LeaseJobs, frees
from .table_lease_state import (
    GONE,
    LIVE,
    PENDING_PREFIX,
    RUN_PREFIX,
    UNKNOWN,
    Ended,
    Found,
    LeaseState,
    Seen,
    Unknown,
    from_time_key,
    owned_by,
    pending_property,
    pending_run,
    recorded_end,
    recorded_since,
    records_of,
    run_property,
    settled,
    suffix_of,
    taken_for,
    with_run,
)
from .table_runs_recorded import RunsRecorded
from .table_support import delete_if_unchanged, etag

_LEASE_ROW = "lease"
# Compare-and-swap retries for a lease before answering "someone else has it": losing this many races
# in a row means another holder is active, and the safe answer is not to run.
_LEASE_ATTEMPTS = 8
# How many lease entities a store remembers (ETag, holder, records): enough for the VMs a busy worker
# has in flight, small enough to be nothing in memory.
REMEMBERED = 8192


def _lease_partition(key: str) -> str:
    return "lease-" + hashlib.sha256(key.encode("utf-8")).hexdigest()


class TableLeases:
    """``acquire_lease``, ``release_lease``, ``lease_facts``, ``lease_holder`` and ``sweep_leases`` of
    ``TableJobStore``, on the clients it gives: ``leases`` and ``jobs`` return its table clients,
    ``last_outcome`` is its scan of the jobs (for runs that ended before they were recorded here), and
    ``job`` its point read of one job (None when there is none)."""

    def __init__(
        self,
        leases: Callable[[], Any],
        jobs: Callable[[], Any],
        last_outcome: Callable[[str, str], Job | None],
        job: Callable[[str], Job | None],
    ) -> None:
        self._leases = leases
        self._last_outcome = last_outcome
        self._lock = threading.Lock()
        # lease key -> the lease entity as last seen (None: it did not exist); see ``acquire_lease``.
        self._seen: OrderedDict[str, LeaseState | None] = OrderedDict()
        # What this store knows of the jobs that leases name (see ``table_lease_jobs``).
        self._jobs_seen = LeaseJobs(job)
        self._runs_recorded = RunsRecorded(leases, jobs)

    def _remember_lease(self, key: str, state: LeaseState | None) -> LeaseState | None:
        """What this store last saw of a lease entity (None: it does not exist), for the next CAS."""
        with self._lock:
            self._seen[key] = state
            self._seen.move_to_end(key)
            while len(self._seen) > REMEMBERED:
                self._seen.popitem(last=False)
        return state

    def _remember_jobs(self, key: str, state: LeaseState, looked: Mapping[Seen, Found]) -> None:
        """What a read of the lease found of the jobs it names, kept with that view of the entity (for
        the take that follows: ``_folded``), unless another view replaced it meanwhile."""
        with self._lock:
            if self._seen.get(key) is state:
                self._seen[key] = replace(state, jobs=dict(looked))

    def _forget_lease(self, key: str) -> None:
        with self._lock:
            self._seen.pop(key, None)

    def _remembered_lease(self, key: str) -> LeaseState | Unknown | None:
        with self._lock:
            return self._seen.get(key, UNKNOWN)

    def _read_lease(self, key: str) -> LeaseState | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            entity = self._leases().get_entity(_lease_partition(key), _LEASE_ROW)
        except ResourceNotFoundError:
            return self._remember_lease(key, None)
        return self._remember_lease(key, LeaseState.of(entity, etag(entity)))

    def _holder(self, state: LeaseState | None, now_key: str, looked: dict[Seen, Found]) -> str | None:
        """The lease's holder that counts: live, and its job not ended (a holder no job backs counts).
        A holder read still going lately is not read again (see ``_look``)."""
        live = state.live_holder(now_key) if state is not None else None
        if live is None or state is None:
            return None
        return None if frees(self._jobs_seen.look((live, state.expires_key), looked, lately=True)) else live

    def _blocked_by(
        self, state: LeaseState, holder: str, now_key: str, looked: dict[Seen, Found], *, read: bool
    ) -> bool:
        """Whether another live holder whose job has not ended holds the lease (``read``: look it up;
        else only what is known, anything else counting as held)."""
        other = state.live_holder(now_key)
        if other in (None, holder):
            return False
        seen = (other, state.expires_key)
        found = self._jobs_seen.look(seen, looked) if read else self._jobs_seen.known(seen, looked)
        return not frees(found)

    # -- the port ---------------------------------------------------------------------------------

    def lease_facts(self, key: str, remediation: str, now: datetime, *, runs_since: datetime) -> LeaseFacts:
        check_lease(key, "facts")
        state = self._read_lease(key)
        looked: dict[Seen, Found] = {}
        holder = self._holder(state, time_key(now), looked)
        records = state.records if state is not None else {}
        ended = recorded_end(records, suffix_of(remediation)) or None
        pending = pending_run(records.get(pending_property(remediation)))
        if pending is not None and pending[1] > time_key(runs_since):
            # The pending run may fall in the window: its job says whether and when it ran.
            # Its job read still going lately is taken as still going only while it holds the VM: the
            # caller then waits, whatever the cooldown (no take acts on that answer).
            holding = state is not None and pending == (holder, state.expires_key)
            found = self._jobs_seen.look(pending, looked, lately=holding)
            run_end = found.run_end if isinstance(found, Ended) else pending[1] if found == GONE else None
            if run_end is not None and run_end > (ended or ""):
                ended = run_end
        if state is not None and looked:
            self._remember_jobs(key, state, looked)
        last = from_time_key(ended) if ended else None
        if last is None and self._runs_recorded.since() > time_key(runs_since):
            # Jobs that ended before this store kept runs on leases may fall in the window: ask them.
            job = self._last_outcome(key, remediation)
            last = as_utc(datetime.fromisoformat(job.updated_at or job.created_at)) if job else None
        return LeaseFacts(holder, last)

    def acquire_lease(
        self, key: str, holder: str, ttl_seconds: float, now: datetime, *, remediation: str | None = None
    ) -> bool:
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
        from azure.data.tables import UpdateMode

        check_lease_take(key, holder, ttl_seconds)
        table = self._leases()
        now_key = time_key(now)
        expires_key = time_key(now + timedelta(seconds=ttl_seconds))
        lease = {"Key": key, "Holder": holder, "ExpiresKey": expires_key}
        own = suffix_of(remediation) if remediation else None
        keys = {"PartitionKey": _lease_partition(key), "RowKey": _LEASE_ROW}
        looked: dict[Seen, Found] = {}
        # What this store saw last (the read just before, or its own last write) makes this one request:
        # an insert when the entity did not exist, a compare-and-swap on its ETag when it was free, ours,
        # or held by a job this store saw ended. Remembered as someone else's, it is read again before
        # the answer is no.
        current = self._remembered_lease(key)
        # The records the caller's cooldown was judged on (its lease_facts read is what this store saw).
        judged_on = records_of(current)
        if isinstance(current, LeaseState) and (
            not current.seen or self._blocked_by(current, holder, now_key, looked, read=False)
        ):
            current = UNKNOWN  # only an ETag known (a take rewrites records from what it sees), or held
        for attempt in range(_LEASE_ATTEMPTS):
            if isinstance(current, Unknown):
                current = self._read_lease(key)
                if attempt and judged_on is not None and recorded_since(judged_on, current):
                    # Lost a race to a job that took this VM meanwhile (and may have run and ended): its
                    # run may start this one's cooldown, so the caller decides again on fresh facts.
                    return False
            if current is None:
                records = taken_for({}, own, holder, expires_key, None) if own else {}
                try:
                    written = table.create_entity({**keys, **lease, **records})
                except ResourceExistsError:
                    current = UNKNOWN
                    continue  # someone created it first: look at what they wrote
                self._remember_lease(key, LeaseState(str(written.get("etag")), holder, expires_key, records))
                return True
            if self._blocked_by(current, holder, now_key, looked, read=True):
                return False
            change = {**lease, **self._folded(current, holder, own, expires_key, {**current.jobs, **looked})}
            try:
                # MERGE: the records on the entity stay, but for what this take folds or replaces.
                written = table.update_entity(
                    {**keys, **change},
                    mode=UpdateMode.MERGE,
                    etag=current.etag,
                    match_condition=MatchConditions.IfNotModified,
                )
            except (ResourceModifiedError, ResourceNotFoundError):
                current = UNKNOWN
                continue  # changed or swept under us: decide again on fresh facts
            self._remember_lease(key, current.changed(str(written.get("etag")), change))
            return True
        self._forget_lease(key)
        return False

    def _folded(
        self, current: LeaseState, holder: str, own: str | None, bound: str, looked: dict[Seen, Found]
    ) -> dict[str, str]:
        """What a take writes besides the lease, in the same request: for its own remediation (``own``,
        a property suffix) its pending run, the exact record with the pending run it replaces folded
        in and the provisional bound (see the module); and every other pending run this store knows
        ended, settled (blanked, its run in the record, so no one reads its job again). ``looked``:
        what this store read of the jobs for this view of the entity (its ``lease_facts``, or the
        take's own look at a holder). The replaced run is its job's end when that read found it ended,
        nothing when it found it still going (its lease lapsed: such a job releases it with its run
        itself, since it ends after its bound), and the bound when it found no job or read none."""
        change: dict[str, str] = {}
        for name, value in current.records.items():
            found_pending = pending_run(value) if name.startswith(PENDING_PREFIX) else None
            suffix = name[len(PENDING_PREFIX) :]
            if found_pending is None or found_pending[0] == holder or suffix == own:
                continue
            found = self._jobs_seen.known(found_pending, looked)
            if isinstance(found, Ended):
                change.update(settled(current.records, suffix, found.run_end))
        if own is not None:
            fold: str | None = None
            replaced = pending_run(current.records.get(PENDING_PREFIX + own))
            if replaced is not None and replaced[0] != holder:
                found = self._jobs_seen.known(replaced, looked)
                fold = found.run_end if isinstance(found, Ended) else None if found == LIVE else replaced[1]
            change.update(taken_for(current.records, own, holder, bound, fold))
        return change

    def lease_tag(self, key: str) -> str | None:
        """The ETag of the lease entity as this store last wrote or read it, when it was held."""
        current = self._remembered_lease(key)
        return current.etag if isinstance(current, LeaseState) and current.holder else None

    def release_lease(
        self, key: str, holder: str, *, ran: tuple[str, datetime] | None = None, tag: str | None = None
    ) -> None:
        """The entity stays, free, when it holds a record (the cooldown's); one without goes. The run is
        recorded whoever holds the lease now (a lapsed lease taken over keeps its new holder), and the
        holder's pending run is blanked.

        One request when this store took the lease, or with ``tag`` (``lease_tag`` of the store that
        did, carried by the job): a compare-and-swap on it can only succeed while the entity is as the
        holder left it. Otherwise, or when it changed since, the entity is read first."""
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
        from azure.data.tables import UpdateMode

        check_lease(key, holder)
        table = self._leases()
        keys = {"PartitionKey": _lease_partition(key), "RowKey": _LEASE_ROW}
        run = {run_property(ran[0]): time_key(ran[1])} if ran is not None else {}  # for a new entity
        current = self._remembered_lease(key)
        if not isinstance(current, LeaseState) or current.holder != holder:
            current = LeaseState(tag, holder, "", {}, seen=False) if tag else UNKNOWN
        for _ in range(_LEASE_ATTEMPTS):
            if isinstance(current, Unknown):
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
                self._remember_lease(key, LeaseState(str(written.get("etag")), "", "", dict(run)))
                return
            records = self._released(current, holder, ran)
            change: dict[str, str] | None
            if current.holder != holder:
                if not records:
                    return  # not ours, and nothing to record
                change = records  # their lease stays; the run is recorded
            elif not current.seen or current.changed("", records).has_records():
                change = {"Holder": "", "ExpiresKey": "", **records}  # free; the sweep drops it if bare
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

    @staticmethod
    def _released(current: LeaseState, holder: str, ran: tuple[str, datetime] | None) -> dict[str, str]:
        """The records a release by ``holder`` writes: its pending runs settled (with its run), and its
        run beside any other job's pending run."""
        run = (suffix_of(ran[0]), time_key(ran[1])) if ran is not None else None
        if not current.seen:
            # The entity is as this holder left it (the tag's compare-and-swap says so): its
            # remediation's pending run is its own; its run is exact (and the latest one).
            return {RUN_PREFIX + run[0]: run[1], PENDING_PREFIX + run[0]: ""} if run else {}
        records: dict[str, str] = {}
        for name, value in current.records.items():
            if owned_by(name, value, holder):
                suffix = name[len(PENDING_PREFIX) :]
                records.update(settled(current.records, suffix, run[1] if run and run[0] == suffix else None))
        if run is not None and PENDING_PREFIX + run[0] not in records:
            records.update(with_run(current.records, *run))
        return {name: value for name, value in records.items() if value != current.records.get(name)}

    def lease_holder(self, key: str, now: datetime) -> str | None:
        return self._holder(self._read_lease(key), time_key(now), {})

    def sweep_leases(self, now: datetime) -> int:
        now_key = time_key(now)
        table = self._leases()
        swept = 0
        for entity in list(table.query_entities("ExpiresKey le @now", parameters={"now": now_key})):
            if str(entity.get("ExpiresKey") or "") > now_key:
                continue
            if LeaseState.of(entity, "").has_records():
                continue  # free or lapsed, and it holds the cooldown's record: it stays
            # A lease renewed after the query has a new ETag and survives.
            swept += delete_if_unchanged(table, entity)
            self._forget_lease(str(entity.get("Key") or ""))
        return swept
