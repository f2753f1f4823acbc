"""The job store and the queue the settings ask for.

Job store: ``REMEDIATION_JOB_STORE=sqlite`` (the default) keeps a file at ``REMEDIATION_SQLITE_PATH``;
``table`` uses Table Storage from ``REMEDIATION_STORAGE`` (a connection string) or
``REMEDIATION_STORAGE__tableServiceUri`` with a managed identity.

Queue: the Storage Queue ``REMEDIATION_QUEUE_NAME`` when storage is configured (a connection string or
``REMEDIATION_STORAGE__queueServiceUri``), else an in-process queue, which only the process that made
it can read: that is the CLI and demo case.
"""

from __future__ import annotations

from typing import Any

from ..errors import InvalidInput
from ..ports import Clock, JobStore, Queue
from ..settings import Settings


def storage_credential(settings: Settings) -> Any:
    """The identity for identity-based storage connections.

    ``REMEDIATION_STORAGE__clientId`` names a user-assigned identity, as the Functions host reads it for
    its own bindings; without it ``DefaultAzureCredential`` finds the system-assigned identity (or a
    developer's sign-in).
    """
    if settings.storage_client_id:
        from azure.identity import ManagedIdentityCredential

        return ManagedIdentityCredential(client_id=settings.storage_client_id)
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential()


def job_store_from_settings(settings: Settings) -> JobStore:
    if settings.job_store == "sqlite":
        from .sqlite import SqliteJobStore

        return SqliteJobStore(settings.sqlite_path)
    if settings.job_store == "table":
        from .table import TableJobStore

        if settings.storage_connection_string:
            return TableJobStore(
                connection_string=settings.storage_connection_string, table_prefix=settings.table_prefix
            )
        if settings.table_service_uri:
            return TableJobStore(
                endpoint=settings.table_service_uri,
                credential=storage_credential(settings),
                table_prefix=settings.table_prefix,
            )
        raise InvalidInput(
            "REMEDIATION_JOB_STORE=table needs REMEDIATION_STORAGE (a connection string) or "
            "REMEDIATION_STORAGE__tableServiceUri (with a managed identity)"
        )
    raise InvalidInput(f"REMEDIATION_JOB_STORE={settings.job_store!r} must be sqlite or table")


def queue_from_settings(settings: Settings, clock: Clock | None = None) -> Queue:
    """``clock`` only matters for the in-process queue (a ManualClock lets a driver skip the waits)."""
    if settings.storage_connection_string or settings.queue_service_uri:
        from .storage_queue import StorageQueue

        if settings.storage_connection_string:
            return StorageQueue(settings.queue_name, connection_string=settings.storage_connection_string)
        return StorageQueue(
            settings.queue_name,
            account_url=settings.queue_service_uri,
            credential=storage_credential(settings),
        )
    from .memory_queue import InProcessQueue

    return InProcessQueue(clock)
