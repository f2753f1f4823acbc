"""The job store on Azure Table Storage (``azure-data-tables``, imported lazily).

Tables, named from the table prefix (alphanumeric, e.g. ``remediation``):

``<prefix>jobs``
    One entity per job: PartitionKey = job id, RowKey = ``job``. Every read and every compare-and-swap
    touches exactly one entity, found by a point read; the ETag of that entity is the CAS token, and a
    partition per job spreads the write load. The fields ``list`` filters on (TargetKey, Status,
    Remediation, AlertId, CampaignId, CreatedKey, UpdatedKey, Terminal, RanScript) are copied out of the
    job as properties, so those filters run on the service as an OData query. Tables have no secondary
    indexes, so such a query scans the table: retention (``delete_jobs``) keeps it to the jobs of the
    retention window, which is the volume this product makes (a job per remediation, not per signal).
    A secondary index entity per VM would make ``list(target=...)`` a partition query, at the price of a
    second write that no transaction can join to the first (entity group transactions stay inside one
    partition); the scan is correct by construction, so it is the choice until volume says otherwise.
    The job JSON is split over ``Body00``.. properties: a string property holds at most 64 KiB.
    The store remembers the ETag of each job (and campaign) it last read or wrote, with its version, in
    a bounded map: a step reads its job and writes it, so the compare-and-swap is one conditional
    request instead of a read and a write. A remembered ETag that is stale (412) or unknown falls back
    to reading the entity; a newer version there is the caller's ConcurrencyConflict, as before.

``<prefix>leases``
    PartitionKey = ``lease-`` + SHA-256 of the lease key (VM ids hold ``/``, which keys forbid), RowKey =
    ``lease``. Acquire, renew and release are ETag compare-and-swaps on that one entity; a new lease is
    ``create_entity``, whose conflict means another holder got there first.

    The entity also records, per remediation (``Ran_<id>``, a time key), when the last run that may have
    changed the VM ended: the release writes it (a run of a lapsed lease is recorded without touching the
    new holder), and an entity that holds such a record stays when its lease is released or swept. So
    the cooldown and the holder come from one point read (``lease_facts``), not from a scan of the jobs
    table, which has no index by VM and grows with retention. The store remembers what it last saw of
    each lease entity (its ETag, holder and records; bounded), so taking the lease after that read is
    one request (an insert, or a compare-and-swap MERGE that keeps the records), and so is a release by
    the store that took it; a store that did not (another instance) reads first. A remembered view never
    says no on its own: a lease it saw as someone else's is read again.

    Jobs that ended before runs were recorded here are not on any lease entity. A marker entity
    (PartitionKey ``runs-recorded``) says since when every run is: made by the first store that needs it,
    with the earliest time when no job had run yet (a new deployment), else the time it was made. A
    ``lease_facts`` whose cooldown window reaches back before that moment, and that finds no record,
    asks the jobs (the old scan); a window after it never does. The trade-off: a job written by a
    process of the previous version after the marker was made (during a rolling upgrade) is not seen by
    the cooldown, since that version deletes the lease instead of recording the run.

``<prefix>campaigns``
    PartitionKey = campaign id, RowKey = ``campaign``; CAS on the ``version`` field like jobs.

Dates are compared as fixed-width UTC text (``records.time_key``), which OData compares correctly and
which keeps microseconds that Edm.DateTime may round.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, ParamSpec, TypeVar

from ..errors import (
    ConcurrencyConflict,
    InvalidInput,
    NotFound,
    Permanent,
    RemediationError,
    Throttled,
    Transient,
)
from ..jobs import Job
from ..ports import LeaseFacts
from ..resources import normalize
from .records import (
    JobFilter,
    as_utc,
    campaign_id_of,
    campaign_version_of,
    check_id,
    check_lease,
    created_key,
    decode_job,
    encode_document,
    encode_job,
    is_valid_id,
    newest_first,
    ran_script,
    time_key,
    updated_key,
)

# 64 KiB per string property = 32,768 UTF-16 units; the JSON is ASCII, so one unit a character.
CHUNK_CHARS = 32_000
_JOB_ROW = "job"
_JOBS_PER_QUERY = 14  # Table Storage: at most 15 comparisons in one filter, one of them the RowKey
_LEASE_ROW = "lease"
_RUN_PREFIX = "Ran_"
_CATALOG_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,199}$")
# The marker that says since when runs are recorded on lease entities (it has no ExpiresKey, so the
# lease sweep never matches it; lease partitions all start with "lease-").
_MARKER_PARTITION = "runs-recorded"
_MARKER_ROW = "since"
_EARLIEST = "0001-01-01T00:00:00.000000Z"
_CAMPAIGN_ROW = "campaign"
_PREFIX = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,51}$")
# Compare-and-swap retries for a lease before answering "someone else has it": losing this many races
# in a row means another holder is active, and the safe answer is not to run.
_LEASE_ATTEMPTS = 8
# How many ETags the store remembers (job and campaign entities it read or wrote last): enough for the
# jobs a busy worker has in flight, small enough to be nothing in memory.
_REMEMBERED_ETAGS = 8192

P = ParamSpec("P")
R = TypeVar("R")


def table_names(prefix: str) -> dict[str, str]:
    """The three table names for a prefix; raises InvalidInput unless the prefix makes valid names."""
    if not isinstance(prefix, str) or not _PREFIX.match(prefix):
        raise InvalidInput(
            f"table prefix {prefix!r} is not valid: use 1-52 letters and digits, starting with a letter "
            "(REMEDIATION_TABLE_PREFIX)"
        )
    return {kind: f"{prefix}{kind}" for kind in ("jobs", "leases", "campaigns")}


def _storage_errors(method: Callable[P, R]) -> Callable[P, R]:
    """SDK exceptions leave as the engine's typed errors, with the operation named."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except RemediationError:
            raise
        except Exception as exc:
            raise translate_storage_error(exc, f"table storage {method.__name__}") from exc

    return wrapper


def translate_storage_error(exc: Exception, what: str) -> Exception:
    """An Azure SDK exception as a RemediationError; anything else is returned unchanged."""
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ServiceRequestError,
        ServiceResponseError,
    )

    if isinstance(exc, ServiceRequestError | ServiceResponseError):
        return Transient(f"{what}: cannot reach the storage account: {exc}")
    if isinstance(exc, ClientAuthenticationError):
        return Permanent(
            f"{what}: the storage account refused the credentials (check the connection string or the "
            f"identity's data-plane role): {_first_line(exc)}",
            status=exc.status_code,
        )
    if isinstance(exc, HttpResponseError):
        status = exc.status_code or 0
        code = getattr(exc, "error_code", None)
        code = str(code) if code else None
        if status == 429 or code == "ServerBusy":
            return Throttled(f"{what}: storage is throttling: {_first_line(exc)}", status=status, code=code)
        if status >= 500:
            return Transient(f"{what}: storage failed: {_first_line(exc)}", status=status, code=code)
        return Permanent(f"{what}: storage refused: {_first_line(exc)}", status=status, code=code)
    return exc


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _split(text: str) -> dict[str, Any]:
    parts = [text[i : i + CHUNK_CHARS] for i in range(0, len(text), CHUNK_CHARS)] or [""]
    entity: dict[str, Any] = {"BodyParts": len(parts)}
    entity.update({f"Body{i:02d}": part for i, part in enumerate(parts)})
    return entity


def _joined(entity: Mapping[str, Any]) -> str:
    parts = int(entity.get("BodyParts", 0))
    return "".join(str(entity[f"Body{i:02d}"]) for i in range(parts))


def _etag(entity: Any) -> str:
    return str(entity.metadata["etag"])


def _delete_if_unchanged(table: Any, entity: Mapping[str, Any]) -> bool:
    """Delete ``entity`` only if nobody wrote it since it was read (its ETag); False if it changed or went."""
    from azure.core import MatchConditions
    from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError

    try:
        table.delete_entity(
            entity["PartitionKey"],
            entity["RowKey"],
            etag=_etag(entity),
            match_condition=MatchConditions.IfNotModified,
        )
    except (ResourceModifiedError, ResourceNotFoundError):
        return False
    return True


def _job_entity(job: Job, body: str) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "PartitionKey": job.id,
        "RowKey": _JOB_ROW,
        "TargetKey": job.target_key,
        "Status": job.status,
        "Remediation": job.remediation,
        "CreatedKey": created_key(job),
        "UpdatedKey": updated_key(job),
        "Terminal": job.terminal,
        "RanScript": ran_script(job),
        "Version": job.version,
    }
    # Absent, not empty: an OData equality on a missing property is false, as a None filter wants.
    if job.alert_id is not None:
        entity["AlertId"] = job.alert_id
    if job.campaign_id is not None:
        entity["CampaignId"] = job.campaign_id
    entity.update(_split(body))
    return entity


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


@dataclass(frozen=True)
class _LeaseState:
    """A lease entity as this store last saw it: its ETag, holder, expiry and recorded runs."""

    etag: str
    holder: str  # "" when released
    expires_key: str  # "" when released
    runs: Mapping[str, str]  # run property -> time key of that remediation's last run's end

    @classmethod
    def of(cls, entity: Mapping[str, Any], etag: str) -> _LeaseState:
        runs = {name: str(value) for name, value in entity.items() if name.startswith(_RUN_PREFIX)}
        return cls(etag, str(entity.get("Holder") or ""), str(entity.get("ExpiresKey") or ""), runs)

    def live_holder(self, now_key: str) -> str | None:
        return self.holder if self.holder and self.expires_key > now_key else None

    def changed(self, etag: str, change: Mapping[str, str]) -> _LeaseState:
        runs = {**self.runs, **{k: v for k, v in change.items() if k.startswith(_RUN_PREFIX)}}
        return _LeaseState(
            etag, change.get("Holder", self.holder), change.get("ExpiresKey", self.expires_key), runs
        )


class TableJobStore:
    """``ports.JobStore`` on Azure Table Storage.

    Give either ``connection_string`` (Azurite: ``UseDevelopmentStorage=true``) or ``endpoint`` (the table
    service URI, e.g. ``https://<account>.table.core.windows.net``) with a ``credential`` (a managed
    identity). ``client_options`` go to every ``TableClient`` (e.g. ``retry_total=0`` in tests).
    """

    def __init__(
        self,
        *,
        connection_string: str | None = None,
        endpoint: str | None = None,
        credential: Any = None,
        table_prefix: str = "remediation",
        client_options: Mapping[str, Any] | None = None,
    ) -> None:
        if bool(connection_string) == bool(endpoint):
            raise InvalidInput(
                "the table job store needs either a storage connection string (REMEDIATION_STORAGE) or "
                "a table service URI (REMEDIATION_STORAGE__tableServiceUri), not both and not neither"
            )
        if endpoint and credential is None:
            raise InvalidInput(f"the table service {endpoint} needs a credential (a managed identity)")
        self._names = table_names(table_prefix)
        self._connection_string = connection_string
        self._endpoint = endpoint
        self._credential = credential
        self._options = dict(client_options or {})
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()
        # lease key -> the lease entity as last seen (None: it did not exist); see ``acquire_lease``.
        self._leases: OrderedDict[str, _LeaseState | None] = OrderedDict()
        self._records_since: str | None = None
        self._marker_lock = threading.Lock()
        # (table kind, entity id) -> (version, ETag) of what this store last read or wrote, so that the
        # compare-and-swap that follows is one request; see ``_write_versioned``.
        self._etags: OrderedDict[tuple[str, str], tuple[int, str]] = OrderedDict()

    @classmethod
    def from_connection_string(
        cls, connection_string: str, table_prefix: str = "remediation", **options: Any
    ) -> TableJobStore:
        return cls(connection_string=connection_string, table_prefix=table_prefix, client_options=options)

    @classmethod
    def from_endpoint(
        cls, endpoint: str, credential: Any, table_prefix: str = "remediation", **options: Any
    ) -> TableJobStore:
        return cls(
            endpoint=endpoint, credential=credential, table_prefix=table_prefix, client_options=options
        )

    @property
    def table_names(self) -> dict[str, str]:
        return dict(self._names)

    # -- clients ----------------------------------------------------------------------------------

    def _table(self, kind: str) -> Any:
        client = self._clients.get(kind)
        if client is not None:
            return client
        with self._lock:
            client = self._clients.get(kind)
            if client is None:
                client = self._make_client(self._names[kind])
                self._clients[kind] = client
        return client

    def _make_client(self, name: str) -> Any:
        from azure.core.exceptions import ResourceExistsError
        from azure.data.tables import TableClient

        if self._connection_string:
            try:
                client = TableClient.from_connection_string(
                    self._connection_string, table_name=name, **self._options
                )
            except ValueError as exc:
                raise InvalidInput(f"the storage connection string is not valid: {exc}") from None
        else:
            client = TableClient(str(self._endpoint), name, credential=self._credential, **self._options)
        try:
            client.create_table()
        except ResourceExistsError:
            pass
        except Exception as exc:
            raise translate_storage_error(exc, f"table storage: creating table {name}") from exc
        return client

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()

    # -- ETags ------------------------------------------------------------------------------------

    def _remember(self, kind: str, entity_id: str, version: Any, etag: Any) -> None:
        if etag is None:
            return
        with self._lock:
            self._etags[(kind, entity_id)] = (int(version), str(etag))
            self._etags.move_to_end((kind, entity_id))
            while len(self._etags) > _REMEMBERED_ETAGS:
                self._etags.popitem(last=False)

    def _remembered(self, kind: str, entity_id: str, version: int) -> str | None:
        with self._lock:
            known = self._etags.get((kind, entity_id))
        return known[1] if known is not None and known[0] == version else None

    def _forget(self, kind: str, entity_id: str) -> None:
        with self._lock:
            self._etags.pop((kind, entity_id), None)

    def _remember_entity(self, kind: str, entity: Any) -> None:
        metadata = getattr(entity, "metadata", None) or {}
        self._remember(kind, str(entity["PartitionKey"]), entity.get("Version", 0), metadata.get("etag"))

    def _write_versioned(
        self, kind: str, entity_id: str, version: int, entity: dict[str, Any], conflict: Exception
    ) -> None:
        """Replace the entity if it is still at ``version``: the compare-and-swap of jobs and campaigns.

        The ETag of the read or write this store last did on the entity makes it one request (a job is
        read at the start of a step and written at its end, often more than once). Without one, or when
        the entity changed since (412), the entity is read: a different version is the caller's conflict;
        the same version with a new ETag (rewritten by another writer at that version) gets one more
        compare-and-swap on the fresh ETag, whose 412 is a conflict too.
        """
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
        from azure.data.tables import UpdateMode

        table = self._table(kind)
        what = "job" if kind == "jobs" else "campaign"
        known = self._remembered(kind, entity_id, version)
        for remembered in ([known] if known else []) + [None]:
            etag = remembered
            if etag is None:
                try:
                    current = table.get_entity(entity_id, _JOB_ROW if kind == "jobs" else _CAMPAIGN_ROW)
                except ResourceNotFoundError:
                    self._forget(kind, entity_id)
                    raise NotFound(f"no {what} {entity_id!r} to update: it was deleted") from None
                self._remember_entity(kind, current)
                if int(current["Version"]) != version:
                    raise conflict
                etag = _etag(current)
            try:
                written = table.update_entity(
                    entity, mode=UpdateMode.REPLACE, etag=etag, match_condition=MatchConditions.IfNotModified
                )
            except ResourceModifiedError:
                self._forget(kind, entity_id)
                if remembered is not None:
                    continue  # what this store remembered is stale: look at what is stored now
                raise conflict from None
            except ResourceNotFoundError:
                self._forget(kind, entity_id)
                raise NotFound(f"no {what} {entity_id!r} to update: it was deleted") from None
            self._remember(kind, entity_id, entity["Version"], (written or {}).get("etag"))
            return
        raise conflict  # pragma: no cover - the loop always ends with the read attempt

    # -- jobs -------------------------------------------------------------------------------------

    @_storage_errors
    def create(self, job: Job) -> tuple[Job, bool]:
        from azure.core.exceptions import ResourceExistsError

        check_id(job.id)
        job, body = encode_job(job)
        try:
            written = self._table("jobs").create_entity(_job_entity(job, body))
        except ResourceExistsError:
            return self.get(job.id), False
        self._remember("jobs", job.id, job.version, (written or {}).get("etag"))
        return job, True

    @_storage_errors
    def get(self, job_id: str) -> Job:
        return decode_job(_joined(self._job_entity(job_id)))

    @_storage_errors
    def get_many(self, job_ids: Sequence[str]) -> dict[str, Job]:
        # One query per few jobs, not one GET per job: a filter holds at most 15 comparisons, so
        # "RowKey eq @row and ( PartitionKey eq @p0 or ... )" names up to 14 jobs.
        wanted = sorted({job_id for job_id in job_ids if is_valid_id(job_id)})
        found: dict[str, Job] = {}
        for first in range(0, len(wanted), _JOBS_PER_QUERY):
            chunk = wanted[first : first + _JOBS_PER_QUERY]
            names = [f"p{i}" for i in range(len(chunk))]
            query = "RowKey eq @row and ( " + " or ".join(f"PartitionKey eq @{n}" for n in names) + " )"
            for job in self._query_jobs(query, {"row": _JOB_ROW, **dict(zip(names, chunk, strict=True))}):
                found[job.id] = job
        return found

    def _job_entity(self, job_id: str) -> Any:
        from azure.core.exceptions import ResourceNotFoundError

        if not is_valid_id(job_id):
            raise NotFound(f"no job {job_id!r}")
        try:
            entity = self._table("jobs").get_entity(job_id, _JOB_ROW)
        except ResourceNotFoundError:
            self._forget("jobs", job_id)
            raise NotFound(f"no job {job_id!r}") from None
        self._remember_entity("jobs", entity)
        return entity

    @_storage_errors
    def update(self, job: Job) -> Job:
        check_id(job.id)
        stored, body = encode_job(replace(job, version=job.version + 1))
        conflict = self._conflict(job.id, "newer", job.version)
        self._write_versioned("jobs", job.id, job.version, _job_entity(stored, body), conflict)
        return stored

    @staticmethod
    def _conflict(job_id: str, stored: object, version: int) -> ConcurrencyConflict:
        return ConcurrencyConflict(
            f"job {job_id} changed since it was read (stored version {stored}, update from version "
            f"{version}): re-read it and decide again"
        )

    @_storage_errors
    def list(
        self,
        *,
        target: str | None = None,
        status: str | Sequence[str] | None = None,
        remediation: str | None = None,
        alert_id: str | None = None,
        campaign_id: str | None = None,
        since: datetime | None = None,
        limit: int | None = None,
    ) -> list[Job]:
        wanted = JobFilter.of(
            target=target,
            status=status,
            remediation=remediation,
            alert_id=alert_id,
            campaign_id=campaign_id,
            since=since,
            limit=limit,
        )
        if (wanted.statuses is not None and not wanted.statuses) or wanted.limit == 0:
            return []
        # The SDK substitutes @names word by word: every parameter stands between spaces.
        clauses = ["RowKey eq @row"]
        params: dict[str, Any] = {"row": _JOB_ROW}
        if wanted.target_key is not None:
            clauses.append("TargetKey eq @target")
            params["target"] = wanted.target_key
        if wanted.statuses is not None:
            names = [f"s{i}" for i in range(len(wanted.statuses))]
            clauses.append("( " + " or ".join(f"Status eq @{n}" for n in names) + " )")
            params.update(zip(names, sorted(wanted.statuses), strict=True))
        for prop, name, value in (
            ("Remediation", "remediation", wanted.remediation),
            ("AlertId", "alert", wanted.alert_id),
            ("CampaignId", "campaign", wanted.campaign_id),
        ):
            if value is not None:
                clauses.append(f"{prop} eq @{name}")
                params[name] = value
        if wanted.since_key is not None:
            clauses.append("CreatedKey ge @since")
            params["since"] = wanted.since_key
        jobs = self._query_jobs(" and ".join(clauses), params)
        # Tables return partition order, not time order: the newest come from sorting everything matched.
        return newest_first([job for job in jobs if wanted.matches(job)], wanted.limit)

    def _query_jobs(self, query: str, params: Mapping[str, Any]) -> Iterable[Job]:
        for entity in self._table("jobs").query_entities(query, parameters=dict(params)):
            self._remember_entity("jobs", entity)
            yield decode_job(_joined(entity))

    @_storage_errors
    def last_outcome(self, target: str, remediation: str) -> Job | None:
        jobs = self._query_jobs(
            "RowKey eq @row and TargetKey eq @target and Remediation eq @remediation and RanScript eq true",
            {"row": _JOB_ROW, "target": normalize(target), "remediation": remediation},
        )
        newest = newest_first([j for j in jobs if ran_script(j) and j.remediation == remediation], 1)
        return newest[0] if newest else None

    @_storage_errors
    def delete_jobs(self, ended_before: datetime) -> int:

        cutoff = time_key(ended_before)
        table = self._table("jobs")
        deleted = 0
        candidates = list(
            table.query_entities(
                "RowKey eq @row and Terminal eq true and UpdatedKey lt @cutoff",
                parameters={"row": _JOB_ROW, "cutoff": cutoff},
                select=["PartitionKey", "RowKey", "Terminal", "UpdatedKey"],
            )
        )
        for entity in candidates:
            if entity.get("Terminal") is not True or str(entity.get("UpdatedKey")) >= cutoff:
                continue
            # The ETag makes sure a job noted again after the query is not deleted with old facts.
            deleted += _delete_if_unchanged(table, entity)
        return deleted

    # -- leases -----------------------------------------------------------------------------------

    def _remember_lease(self, key: str, state: _LeaseState | None) -> _LeaseState | None:
        """What this store last saw of a lease entity (None: it does not exist), for the next CAS."""
        with self._lock:
            self._leases[key] = state
            self._leases.move_to_end(key)
            while len(self._leases) > _REMEMBERED_ETAGS:
                self._leases.popitem(last=False)
        return state

    def _forget_lease(self, key: str) -> None:
        with self._lock:
            self._leases.pop(key, None)

    def _remembered_lease(self, key: str) -> _LeaseState | _Unknown | None:
        with self._lock:
            return self._leases.get(key, UNKNOWN)

    def _read_lease(self, key: str) -> _LeaseState | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            entity = self._table("leases").get_entity(_lease_partition(key), _LEASE_ROW)
        except ResourceNotFoundError:
            return self._remember_lease(key, None)
        return self._remember_lease(key, _LeaseState.of(entity, _etag(entity)))

    @_storage_errors
    def lease_facts(self, key: str, remediation: str, now: datetime, *, runs_since: datetime) -> LeaseFacts:
        check_lease(key, "facts")
        state = self._read_lease(key)
        holder = state.live_holder(time_key(now)) if state is not None else None
        recorded = state.runs.get(_run_property(remediation)) if state is not None else None
        ended = _from_time_key(recorded) if recorded else None
        if ended is None and self._runs_recorded_since() > time_key(runs_since):
            # Jobs that ended before this store kept runs on leases may fall in the window: ask them.
            last = self.last_outcome(key, remediation)
            ended = as_utc(datetime.fromisoformat(last.updated_at or last.created_at)) if last else None
        return LeaseFacts(holder, ended)

    def _runs_recorded_since(self) -> str:
        """Since when every run's end is recorded on its lease entity (a time key; the earliest one when
        the store kept them from its first run on). Read once per store from a marker entity, made by the
        first store that needed it: if jobs had run by then, the runs before are only in the jobs."""
        if self._records_since is not None:
            return self._records_since
        table = self._table("leases")
        with self._marker_lock:  # threads of one process read (or make) it once between them
            if self._records_since is None:
                self._records_since = self._read_or_make_marker(table)
        return self._records_since

    def _read_or_make_marker(self, table: Any) -> str:
        from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError

        try:
            since = str(table.get_entity(_MARKER_PARTITION, _MARKER_ROW)["Since"])
        except ResourceNotFoundError:
            ran = self._table("jobs").query_entities(
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

    @_storage_errors
    def acquire_lease(self, key: str, holder: str, ttl_seconds: float, now: datetime) -> bool:
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
        from azure.data.tables import UpdateMode

        check_lease(key, holder)
        if ttl_seconds <= 0:
            raise InvalidInput(f"lease ttl {ttl_seconds!r} must be more than 0 seconds")
        table = self._table("leases")
        now_key = time_key(now)
        lease = {"Key": key, "Holder": holder, "ExpiresKey": time_key(now + timedelta(seconds=ttl_seconds))}
        entity = {"PartitionKey": _lease_partition(key), "RowKey": _LEASE_ROW, **lease}
        # What this store saw last (the read just before, or its own last write) makes this one request:
        # an insert when the entity did not exist, a compare-and-swap on its ETag when it was free or
        # ours. Remembered as someone else's, it is read again before the answer is no.
        current = self._remembered_lease(key)
        if isinstance(current, _LeaseState) and current.live_holder(now_key) not in (None, holder):
            current = UNKNOWN
        for _ in range(_LEASE_ATTEMPTS):
            if isinstance(current, _Unknown):
                current = self._read_lease(key)
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

    @_storage_errors
    def release_lease(self, key: str, holder: str, *, ran: tuple[str, datetime] | None = None) -> None:
        """The entity stays, free, when it holds a run (the cooldown's record); one without goes. The run
        is recorded whoever holds the lease now (a lapsed lease taken over keeps its new holder)."""
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
        from azure.data.tables import UpdateMode

        check_lease(key, holder)
        table = self._table("leases")
        keys = {"PartitionKey": _lease_partition(key), "RowKey": _LEASE_ROW}
        run = {_run_property(ran[0]): time_key(ran[1])} if ran is not None else {}
        current = self._remembered_lease(key)
        if not isinstance(current, _LeaseState) or current.holder != holder:
            current = UNKNOWN  # one request only when this store saw it as ours last
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
            elif run or current.runs:
                change = {"Holder": "", "ExpiresKey": "", **run}
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

    @_storage_errors
    def lease_holder(self, key: str, now: datetime) -> str | None:
        current = self._read_lease(key)
        return current.live_holder(time_key(now)) if current is not None else None

    @_storage_errors
    def sweep_leases(self, now: datetime) -> int:
        now_key = time_key(now)
        table = self._table("leases")
        swept = 0
        for entity in list(table.query_entities("ExpiresKey le @now", parameters={"now": now_key})):
            if str(entity.get("ExpiresKey") or "") > now_key:
                continue
            if any(name.startswith(_RUN_PREFIX) for name in entity):
                continue  # free already, and it holds the cooldown's record: it stays
            # A lease renewed after the query has a new ETag and survives.
            swept += _delete_if_unchanged(table, entity)
            self._forget_lease(str(entity.get("Key") or ""))
        return swept

    # -- campaigns --------------------------------------------------------------------------------

    @_storage_errors
    def create_campaign(self, campaign: Mapping[str, Any]) -> bool:
        from azure.core.exceptions import ResourceExistsError

        campaign_id = campaign_id_of(campaign)
        version = campaign_version_of(campaign)
        body = encode_document({**campaign, "version": version}, f"campaign {campaign_id}")
        entity = {"PartitionKey": campaign_id, "RowKey": _CAMPAIGN_ROW, "Version": version, **_split(body)}
        try:
            written = self._table("campaigns").create_entity(entity)
        except ResourceExistsError:
            return False
        self._remember("campaigns", campaign_id, version, (written or {}).get("etag"))
        return True

    def _campaign_entity(self, campaign_id: str) -> Any:
        from azure.core.exceptions import ResourceNotFoundError

        if not is_valid_id(campaign_id):
            raise NotFound(f"no campaign {campaign_id!r}")
        try:
            entity = self._table("campaigns").get_entity(campaign_id, _CAMPAIGN_ROW)
        except ResourceNotFoundError:
            self._forget("campaigns", campaign_id)
            raise NotFound(f"no campaign {campaign_id!r}") from None
        self._remember_entity("campaigns", entity)
        return entity

    @_storage_errors
    def get_campaign(self, campaign_id: str) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(_joined(self._campaign_entity(campaign_id)))
        return document

    @_storage_errors
    def update_campaign(self, campaign: Mapping[str, Any]) -> dict[str, Any]:
        campaign_id = campaign_id_of(campaign)
        version = campaign_version_of(campaign)
        body = encode_document({**campaign, "version": version + 1}, f"campaign {campaign_id}")
        conflict = ConcurrencyConflict(
            f"campaign {campaign_id} changed since it was read (update from version {version}): "
            "re-read it and decide again"
        )
        entity = {
            "PartitionKey": campaign_id,
            "RowKey": _CAMPAIGN_ROW,
            "Version": version + 1,
            **_split(body),
        }
        if not is_valid_id(campaign_id):
            raise NotFound(f"no campaign {campaign_id!r}")
        self._write_versioned("campaigns", campaign_id, version, entity, conflict)
        document: dict[str, Any] = json.loads(body)
        return document
