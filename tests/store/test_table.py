"""What only the Table Storage store has to get right: names, entity limits, keys and service errors."""

from __future__ import annotations

import socket
from dataclasses import replace
from datetime import timedelta

import pytest

from autoremediation import jobs
from autoremediation.errors import InvalidInput, Transient
from autoremediation.store.records import MAX_BODY_CHARS, encode_job
from autoremediation.store.table import TableJobStore, table_names
from tests.azurite import ACCOUNT, ACCOUNT_KEY, Azurite

from .conftest import T0, VM, MakeJob, table_store


@pytest.mark.parametrize("prefix", ["", "1abc", "has-dash", "has_underscore", "x" * 53])
def test_a_prefix_that_makes_invalid_table_names_is_refused(prefix: str) -> None:
    with pytest.raises(InvalidInput, match="table prefix"):
        table_names(prefix)


def test_table_names_come_from_the_prefix() -> None:
    assert table_names("remediation") == {
        "jobs": "remediationjobs",
        "leases": "remediationleases",
        "campaigns": "remediationcampaigns",
    }


def test_needs_exactly_one_way_to_connect() -> None:
    with pytest.raises(InvalidInput, match="connection string"):
        TableJobStore()
    with pytest.raises(InvalidInput, match="credential"):
        TableJobStore(endpoint="https://acct.table.core.windows.net")


def test_a_malformed_connection_string_is_invalid_input(make_job: MakeJob) -> None:
    store = TableJobStore(connection_string="this is not a connection string")
    with pytest.raises(InvalidInput, match="connection string"):
        store.create(make_job())


def test_unreachable_storage_is_a_transient_error(make_job: MakeJob) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again at once: nothing listens there
    connection = (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
        f"TableEndpoint=http://127.0.0.1:{port}/{ACCOUNT};"
    )
    store = TableJobStore.from_connection_string(connection, retry_total=0)
    with pytest.raises(Transient, match="cannot reach the storage account"):
        store.get("job-1")


@pytest.mark.azurite
class TestOnAzurite:
    @pytest.fixture
    def store(self, azurite: Azurite) -> TableJobStore:
        return table_store(azurite)

    @pytest.fixture
    def service(self, azurite: Azurite):
        from azure.data.tables import TableServiceClient

        return TableServiceClient.from_connection_string(azurite.connection_string)

    def test_creates_its_three_tables(self, store: TableJobStore, service, make_job: MakeJob) -> None:
        store.create(make_job())
        store.acquire_lease(VM, "w", 60, T0)
        store.create_campaign({"id": "c1"})
        existing = {t.name for t in service.list_tables()}
        assert set(store.table_names.values()) <= existing

    def test_a_large_job_is_split_over_properties_under_64_kib(
        self,
        store: TableJobStore,
        service,
        make_job: MakeJob,
    ) -> None:
        job, _ = store.create(make_job())
        big = replace(job, run={"output": "é" * 150_000})  # 6 bytes a character once JSON-escaped
        saved = store.update(big)
        entity = service.get_table_client(store.table_names["jobs"]).get_entity(job.id, "job")
        parts = [entity[f"Body{i:02d}"] for i in range(entity["BodyParts"])]
        assert len(parts) > 1
        assert all(len(p.encode("utf-16-le")) <= 64 * 1024 for p in parts)
        assert store.get(job.id) == saved

    def test_the_largest_storable_job_fits_in_one_entity(
        self, store: TableJobStore, make_job: MakeJob
    ) -> None:
        job, _ = store.create(make_job())
        filler = MAX_BODY_CHARS - len(encode_job(job)[1]) - 10
        near_limit = replace(job, reason="r" * filler)
        assert MAX_BODY_CHARS - 20 < len(encode_job(replace(near_limit, version=1))[1]) <= MAX_BODY_CHARS
        saved = store.update(near_limit)
        assert store.get(job.id) == saved
        assert saved.reason == near_limit.reason

    def test_lease_keys_with_slashes_are_stored_under_a_safe_key(
        self,
        store: TableJobStore,
        service,
    ) -> None:
        assert store.acquire_lease(VM, "w", 60, T0)
        [entity] = list(service.get_table_client(store.table_names["leases"]).list_entities())
        assert "/" not in entity["PartitionKey"]
        assert entity["Key"] == VM and entity["Holder"] == "w"

    def test_a_pending_run_sits_beside_a_run_record_that_the_previous_version_keeps(
        self, store: TableJobStore, service
    ) -> None:
        # The previous version deletes, on its release or sweep, a lease entity with no Ran_ property.
        leases = service.get_table_client(store.table_names["leases"])
        assert store.acquire_lease(VM, "job-a", 60, T0, remediation="free-disk-space")
        [entity] = list(leases.list_entities())
        assert entity["Ran_free_disk_space"] == "2026-03-01T12:01:00.000000Z"  # the bound, provisional
        assert entity["Last_free_disk_space"] == "job-a 2026-03-01T12:01:00.000000Z"
        ended = T0 + timedelta(seconds=30)
        store.release_lease(VM, "job-a", ran=("free-disk-space", ended))
        assert store.acquire_lease(VM, "job-b", 60, ended, remediation="free-disk-space")
        [entity] = list(leases.list_entities())
        assert entity["Ran_free_disk_space"] == "2026-03-01T12:01:30.000000Z"  # job-b's bound
        assert entity["Was_free_disk_space"] == "2026-03-01T12:00:30.000000Z"  # a take never drops a run
        assert entity["Last_free_disk_space"].startswith("job-b ")

    def test_a_job_id_that_comes_back_after_retention_holds_its_vm_again(
        self, store: TableJobStore, make_job: MakeJob
    ) -> None:
        # Job ids come from idempotency keys (an operator's request may choose its own): once retention
        # deleted a job, a new job may get its id.
        job, _ = store.create(make_job("x"))
        assert store.acquire_lease(VM, job.id, 7200, T0, remediation="free-disk-space")
        store.update(jobs.transition(job, jobs.CANCELLED, now=T0, actor="t", reason="x"))
        assert store.lease_holder(VM, T0) is None  # its job ended: read once, then remembered
        store.delete_jobs(T0 + timedelta(seconds=1))
        again, _ = store.create(make_job("x"))
        later = T0 + timedelta(seconds=2)

        assert store.acquire_lease(VM, again.id, 7200, later, remediation="free-disk-space")
        assert again.id == job.id
        assert store.lease_holder(VM, later) == job.id  # the new job holds it, though its id ended once
        other, _ = store.create(make_job("y"))
        assert not store.acquire_lease(VM, other.id, 7200, later, remediation="free-disk-space")

    def test_filters_run_on_the_service(self, store: TableJobStore, service, make_job: MakeJob) -> None:
        """The indexed properties hold what ``list`` filters on, so the OData query narrows server-side."""
        job, _ = store.create(make_job(path=(jobs.DISPATCHING,), alert_id="a1"))
        table = service.get_table_client(store.table_names["jobs"])
        hits = list(
            table.query_entities(
                "TargetKey eq @t and Status eq @s and AlertId eq @a and RanScript eq true",
                parameters={"t": job.target_key, "s": jobs.DISPATCHING, "a": "a1"},
            )
        )
        assert [h["PartitionKey"] for h in hits] == [job.id]
