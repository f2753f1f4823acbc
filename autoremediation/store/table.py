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
    The job JSON is split over ``Body00``.. properties, and written by a compare-and-swap on its
    version that the ETag the store remembers makes one request (``table_versions``).

``<prefix>leases``
    One entity per VM lease (a holder whose job has ended holds nothing), which also records when each
    remediation last ran there, or which job's run is its last (the cooldown's facts): see
    ``table_leases``.

``<prefix>campaigns``
    PartitionKey = campaign id, RowKey = ``campaign``; CAS on the ``version`` field like jobs: see
    ``table_campaigns``.

Dates are compared as fixed-width UTC text (``records.time_key``), which OData compares correctly and
which keeps microseconds that Edm.DateTime may round.
"""

from __future__ import annotations

import re
import threading
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
    check_id,
    created_key,
    decode_job,
    encode_job,
    is_valid_id,
    newest_first,
    ran_script,
    time_key,
    updated_key,
)
from .table_campaigns import TableCampaigns
from .table_leases import TableLeases
from .table_support import delete_if_unchanged, storage_errors, translate_storage_error, with_http_environment
from .table_versions import CHUNK_CHARS, JOB_ROW, VersionedEntities, joined_body, split_body

__all__ = ["CHUNK_CHARS", "CREATE_THREADS", "TableJobStore", "table_names"]

CREATE_THREADS = 8  # inserts in flight at once for create_many
_JOBS_PER_QUERY = 14  # Table Storage: at most 15 comparisons in one filter, one of them the RowKey
_PREFIX = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,51}$")


def table_names(prefix: str) -> dict[str, str]:
    """The three table names for a prefix; raises InvalidInput unless the prefix makes valid names."""
    if not isinstance(prefix, str) or not _PREFIX.match(prefix):
        raise InvalidInput(
            f"table prefix {prefix!r} is not valid: use 1-52 letters and digits, starting with a letter "
            "(REMEDIATION_TABLE_PREFIX)"
        )
    return {kind: f"{prefix}{kind}" for kind in ("jobs", "leases", "campaigns")}


def _job_entity(job: Job, body: str) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "PartitionKey": job.id,
        "RowKey": JOB_ROW,
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
    entity.update(split_body(body))
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
        self._versions = VersionedEntities(self._table)
        self._campaigns = TableCampaigns(lambda: self._table("campaigns"), self._versions)

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

        def build(options: Mapping[str, Any]) -> Any:
            if self._connection_string:
                return TableClient.from_connection_string(self._connection_string, table_name=name, **options)
            return TableClient(str(self._endpoint), name, credential=self._credential, **options)

        try:
            client = with_http_environment(build, self._options)
        except ValueError as exc:
            if not self._connection_string:
                raise
            raise InvalidInput(f"the storage connection string is not valid: {exc}") from None
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

    # -- jobs -------------------------------------------------------------------------------------

    @storage_errors
    def create(self, job: Job) -> tuple[Job, bool]:
        from azure.core.exceptions import ResourceExistsError

        check_id(job.id)
        job, body = encode_job(job)
        try:
            # No echo of the entity (204): the ETag, all the store keeps, is a response header.
            written = self._table("jobs").create_entity(
                _job_entity(job, body), response_preference="return-no-content"
            )
        except ResourceExistsError:
            return self.get(job.id), False
        self._versions.remember("jobs", job.id, job.version, (written or {}).get("etag"))
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
        return decode_job(joined_body(self._job_entity(job_id)))

    def _job_if_any(self, job_id: str) -> Job | None:
        """The job, or None when there is none (a lease's holder that no job backs)."""
        try:
            return decode_job(joined_body(self._job_entity(job_id)))
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
            for job in self._query_jobs(query, {"row": JOB_ROW, **dict(zip(names, chunk, strict=True))}):
                found[job.id] = job
        return found

    def _job_entity(self, job_id: str) -> Any:
        from azure.core.exceptions import ResourceNotFoundError

        if not is_valid_id(job_id):
            raise NotFound(f"no job {job_id!r}")
        try:
            entity = self._table("jobs").get_entity(job_id, JOB_ROW)
        except ResourceNotFoundError:
            self._versions.forget("jobs", job_id)
            raise NotFound(f"no job {job_id!r}") from None
        self._versions.remember_entity("jobs", entity)
        return entity

    @storage_errors
    def update(self, job: Job) -> Job:
        check_id(job.id)
        stored, body = encode_job(replace(job, version=job.version + 1))
        conflict = self._conflict(job.id, "newer", job.version)
        self._versions.write_versioned("jobs", job.id, job.version, _job_entity(stored, body), conflict)
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
        params: dict[str, Any] = {"row": JOB_ROW}
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
            self._versions.remember_entity("jobs", entity)
            yield decode_job(joined_body(entity))

    @storage_errors
    def last_outcome(self, target: str, remediation: str) -> Job | None:
        jobs = self._query_jobs(
            "RowKey eq @row and TargetKey eq @target and Remediation eq @remediation and RanScript eq true",
            {"row": JOB_ROW, "target": normalize(target), "remediation": remediation},
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
                parameters={"row": JOB_ROW, "cutoff": cutoff},
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

    # -- campaigns (table_campaigns.py) -----------------------------------------------------------

    @storage_errors
    def create_campaign(self, campaign: Mapping[str, Any]) -> bool:
        return self._campaigns.create_campaign(campaign)

    @storage_errors
    def get_campaign(self, campaign_id: str) -> dict[str, Any]:
        return self._campaigns.get_campaign(campaign_id)

    @storage_errors
    def update_campaign(self, campaign: Mapping[str, Any]) -> dict[str, Any]:
        return self._campaigns.update_campaign(campaign)
