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
    A job's own steps run no such scan: the cooldown reads the VM's lease entity (``table_leases``) and
    the breaker's failure list is read at most every few seconds per process (``step_common``).
    The job JSON is split over ``Body00``.. properties: a string property holds at most 64 KiB.
    The store remembers the ETag of each job (and campaign) it last read or wrote, with its version, in
    a bounded map: a step reads its job and writes it, so the compare-and-swap is one conditional
    request instead of a read and a write. A remembered ETag that is stale (412) or unknown falls back
    to reading the entity; a newer version there is the caller's ConcurrencyConflict, as before.

``<prefix>leases``
    One entity per VM lease (a holder whose job has ended holds nothing), which also records when each
    remediation last ran there, or which job's run is its last (the cooldown's facts): see
    ``table_leases``.

``<prefix>campaigns``
    PartitionKey = campaign id, RowKey = ``campaign``; CAS on the ``version`` field like jobs.

Dates are compared as fixed-width UTC text (``records.time_key``), which OData compares correctly and
which keeps microseconds that Edm.DateTime may round.
"""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from ..errors import (
    ConcurrencyConflict,
    InvalidInput,
    NotFound,
)
from ..jobs import Job
from ..ports import LeaseFacts
from ..resources import normalize
from .records import (
    JobFilter,
    campaign_id_of,
    campaign_version_of,
    check_id,
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
from .table_leases import TableLeases
from .table_support import delete_if_unchanged, etag, storage_errors, translate_storage_error

# 64 KiB per string property = 32,768 UTF-16 units; the JSON is ASCII, so one unit a character.
CHUNK_CHARS = 32_000
_JOB_ROW = "job"
CREATE_THREADS = 8  # inserts in flight at once for create_many
_JOBS_PER_QUERY = 14  # Table Storage: at most 15 comparisons in one filter, one of them the RowKey
_CAMPAIGN_ROW = "campaign"
_PREFIX = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,51}$")
# How many ETags the store remembers (job and campaign entities it read or wrote last): enough for the
# jobs a busy worker has in flight, small enough to be nothing in memory.
_REMEMBERED_ETAGS = 8192


def table_names(prefix: str) -> dict[str, str]:
    """The three table names for a prefix; raises InvalidInput unless the prefix makes valid names."""
    if not isinstance(prefix, str) or not _PREFIX.match(prefix):
        raise InvalidInput(
            f"table prefix {prefix!r} is not valid: use 1-52 letters and digits, starting with a letter "
            "(REMEDIATION_TABLE_PREFIX)"
        )
    return {kind: f"{prefix}{kind}" for kind in ("jobs", "leases", "campaigns")}


def _split(text: str) -> dict[str, Any]:
    parts = [text[i : i + CHUNK_CHARS] for i in range(0, len(text), CHUNK_CHARS)] or [""]
    entity: dict[str, Any] = {"BodyParts": len(parts)}
    entity.update({f"Body{i:02d}": part for i, part in enumerate(parts)})
    return entity


def _joined(entity: Mapping[str, Any]) -> str:
    parts = int(entity.get("BodyParts", 0))
    return "".join(str(entity[f"Body{i:02d}"]) for i in range(parts))


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
        self._leases = TableLeases(
            lambda: self._table("leases"), lambda: self._table("jobs"), self.last_outcome, self._job_if_any
        )
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

    def _remember(self, kind: str, entity_id: str, version: Any, tag: Any) -> None:
        if tag is None:
            return
        with self._lock:
            self._etags[(kind, entity_id)] = (int(version), str(tag))
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
            tag = remembered
            if tag is None:
                try:
                    current = table.get_entity(entity_id, _JOB_ROW if kind == "jobs" else _CAMPAIGN_ROW)
                except ResourceNotFoundError:
                    self._forget(kind, entity_id)
                    raise NotFound(f"no {what} {entity_id!r} to update: it was deleted") from None
                self._remember_entity(kind, current)
                if int(current["Version"]) != version:
                    raise conflict
                tag = etag(current)
            try:
                written = table.update_entity(
                    entity, mode=UpdateMode.REPLACE, etag=tag, match_condition=MatchConditions.IfNotModified
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

    @storage_errors
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

    def create_many(self, new_jobs: Sequence[Job]) -> list[tuple[Job, bool]]:
        # Each job is its own partition and an entity group transaction stays inside one, so the
        # inserts go side by side: a campaign of 2,000 VMs is not 2,000 round trips in a row.
        for job in new_jobs:
            check_id(job.id)
        if len(new_jobs) <= 1:
            return [self.create(job) for job in new_jobs]
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(min(CREATE_THREADS, len(new_jobs))) as pool:
            return list(pool.map(self.create, new_jobs))

    @storage_errors
    def get(self, job_id: str) -> Job:
        return decode_job(_joined(self._job_entity(job_id)))

    def _job_if_any(self, job_id: str) -> Job | None:
        """The job, or None when there is none (a lease's holder that no job backs)."""
        try:
            return decode_job(_joined(self._job_entity(job_id)))
        except NotFound:
            return None

    @storage_errors
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

    @storage_errors
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

    @storage_errors
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

    @storage_errors
    def last_outcome(self, target: str, remediation: str) -> Job | None:
        jobs = self._query_jobs(
            "RowKey eq @row and TargetKey eq @target and Remediation eq @remediation and RanScript eq true",
            {"row": _JOB_ROW, "target": normalize(target), "remediation": remediation},
        )
        newest = newest_first([j for j in jobs if ran_script(j) and j.remediation == remediation], 1)
        return newest[0] if newest else None

    @storage_errors
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
            deleted += delete_if_unchanged(table, entity)
        return deleted

    # -- leases (table_leases.py) -----------------------------------------------------------------

    @storage_errors
    def lease_facts(self, key: str, remediation: str, now: datetime, *, runs_since: datetime) -> LeaseFacts:
        return self._leases.lease_facts(key, remediation, now, runs_since=runs_since)

    @storage_errors
    def acquire_lease(
        self, key: str, holder: str, ttl_seconds: float, now: datetime, *, remediation: str | None = None
    ) -> bool:
        return self._leases.acquire_lease(key, holder, ttl_seconds, now, remediation=remediation)

    @storage_errors
    def release_lease(
        self, key: str, holder: str, *, ran: tuple[str, datetime] | None = None, tag: str | None = None
    ) -> None:
        self._leases.release_lease(key, holder, ran=ran, tag=tag)

    def lease_tag(self, key: str) -> str | None:
        return self._leases.lease_tag(key)

    @storage_errors
    def lease_holder(self, key: str, now: datetime) -> str | None:
        return self._leases.lease_holder(key, now)

    @storage_errors
    def sweep_leases(self, now: datetime) -> int:
        return self._leases.sweep_leases(now)

    # -- campaigns --------------------------------------------------------------------------------

    @storage_errors
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

    @storage_errors
    def get_campaign(self, campaign_id: str) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(_joined(self._campaign_entity(campaign_id)))
        return document

    @storage_errors
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
