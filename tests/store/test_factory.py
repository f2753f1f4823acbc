"""Settings pick the job store and the queue."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoremediation.errors import InvalidInput
from autoremediation.settings import Settings
from autoremediation.store.factory import job_store_from_settings, queue_from_settings
from autoremediation.store.memory_queue import InProcessQueue, ManualClock
from autoremediation.store.sqlite import SqliteJobStore
from autoremediation.store.storage_queue import StorageQueue
from autoremediation.store.table import TableJobStore

from .conftest import MakeJob


def test_sqlite_is_the_default_and_works(tmp_path: Path, make_job: MakeJob) -> None:
    settings = Settings.from_env({"REMEDIATION_SQLITE_PATH": str(tmp_path / "s" / "jobs.db")})
    store = job_store_from_settings(settings)
    assert isinstance(store, SqliteJobStore)
    job, created = store.create(make_job())
    assert created and store.get(job.id) == job


def test_table_from_a_connection_string() -> None:
    settings = Settings.from_env(
        {
            "REMEDIATION_JOB_STORE": "table",
            "REMEDIATION_STORAGE": "UseDevelopmentStorage=true",
            "REMEDIATION_TABLE_PREFIX": "acme",
        }
    )
    store = job_store_from_settings(settings)
    assert isinstance(store, TableJobStore)
    assert store.table_names["jobs"] == "acmejobs"


def test_table_from_a_service_uri_uses_the_named_managed_identity() -> None:
    from azure.identity import ManagedIdentityCredential

    settings = Settings.from_env(
        {
            "REMEDIATION_JOB_STORE": "table",
            "REMEDIATION_STORAGE__tableServiceUri": "https://acct.table.core.windows.net",
            "REMEDIATION_STORAGE__clientId": "11111111-2222-3333-4444-555555555555",
        }
    )
    store = job_store_from_settings(settings)
    assert isinstance(store, TableJobStore)
    assert isinstance(store._credential, ManagedIdentityCredential)


def test_table_without_storage_settings_is_a_clear_error() -> None:
    settings = Settings.from_env({"REMEDIATION_JOB_STORE": "table"})
    with pytest.raises(InvalidInput, match="REMEDIATION_STORAGE"):
        job_store_from_settings(settings)


def test_bad_table_prefix_is_a_clear_error() -> None:
    settings = Settings.from_env(
        {
            "REMEDIATION_JOB_STORE": "table",
            "REMEDIATION_STORAGE": "UseDevelopmentStorage=true",
            "REMEDIATION_TABLE_PREFIX": "not-allowed",
        }
    )
    with pytest.raises(InvalidInput, match="REMEDIATION_TABLE_PREFIX"):
        job_store_from_settings(settings)


def test_in_process_queue_without_storage() -> None:
    clock = ManualClock()
    queue = queue_from_settings(Settings.from_env({}), clock)
    assert isinstance(queue, InProcessQueue)
    queue.send("job-1", delay_seconds=10)
    assert queue.receive() == []
    clock.advance(10)
    assert [m.job_id for m in queue.receive()] == ["job-1"]


def test_storage_queue_when_storage_is_configured() -> None:
    queue = queue_from_settings(
        Settings.from_env(
            {"REMEDIATION_STORAGE": "UseDevelopmentStorage=true", "REMEDIATION_QUEUE_NAME": "jobs"}
        )
    )
    assert isinstance(queue, StorageQueue) and queue.queue_name == "jobs"
    uri_queue = queue_from_settings(
        Settings.from_env({"REMEDIATION_STORAGE__queueServiceUri": "https://acct.queue.core.windows.net"})
    )
    assert isinstance(uri_queue, StorageQueue)
