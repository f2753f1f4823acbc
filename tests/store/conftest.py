"""Fixtures for the job store and queue tests: one contract, run against every JobStore adapter."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from autoremediation import jobs
from autoremediation.jobs import Job
from autoremediation.ports import JobStore
from autoremediation.store.sqlite import SqliteJobStore
from autoremediation.store.table import TableJobStore
from tests.azurite import Azurite, azurite, azurite_connection_string, unique_name  # noqa: F401

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
RG = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-app"
VM = f"{RG}/providers/Microsoft.Compute/virtualMachines/vm-web-1"
VM2 = f"{RG}/providers/Microsoft.Compute/virtualMachines/vm-web-2"


def table_store(emulator: Azurite, **options: Any) -> TableJobStore:
    # retry_total=0: a broken emulator must fail the test at once, not after backoff.
    return TableJobStore.from_connection_string(
        emulator.connection_string, table_prefix=unique_name("t"), retry_total=0, **options
    )


@pytest.fixture(params=["sqlite", pytest.param("table", marks=pytest.mark.azurite)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[JobStore]:
    if request.param == "sqlite":
        sqlite = SqliteJobStore(str(tmp_path / "state" / "jobs.db"))
        yield sqlite
        sqlite.close()
    else:
        table = table_store(request.getfixturevalue("azurite"))
        yield table
        table.close()


MakeJob = Callable[..., Job]


@pytest.fixture
def make_job() -> MakeJob:
    """A fresh job; ``key`` picks the id, ``at`` the creation time, ``path`` the states it went through."""

    def make(
        key: str = "alert-1",
        *,
        at: datetime = T0,
        target: str = VM,
        remediation: str = "free-disk-space",
        path: tuple[str, ...] = (),
        **extra: Any,
    ) -> Job:
        job = jobs.new_job(
            idempotency_key=key,
            remediation=remediation,
            condition="disk-full",
            target=target,
            parameters={"path": "/var/log"},
            now=at,
            **extra,
        )
        moment = at
        for state in path:
            moment += timedelta(seconds=30)
            job = jobs.transition(job, state, now=moment, actor="test", reason=f"to {state}")
        return job

    return make
