"""What only the SQLite store has to get right: its file, its journal, and several processes at once."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

import pytest

from autoremediation import jobs
from autoremediation.errors import ConcurrencyConflict, InvalidInput
from autoremediation.store.sqlite import SqliteJobStore

from .conftest import T0, VM, MakeJob

WORKERS = 4
NOTES_EACH = 25


def _worker(path: str, job_dict: dict, worker: int, results: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    store = SqliteJobStore(path)
    job = jobs.Job.from_dict(job_dict)
    _, created = store.create(job)
    for n in range(NOTES_EACH):
        while True:
            current = store.get(job.id)
            try:
                store.update(jobs.note(current, f"process {worker} note {n}", now=T0))
                break
            except ConcurrencyConflict:
                continue
    results.put((worker, created))


def test_several_processes_share_one_file_without_losing_updates(tmp_path: Path, make_job: MakeJob) -> None:
    path = str(tmp_path / "shared.db")
    job = make_job("shared")
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(path, job.to_dict(), w, results)) for w in range(WORKERS)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=120)
    assert [p.exitcode for p in procs] == [0] * WORKERS
    outcomes = [results.get(timeout=5) for _ in procs]
    assert sum(created for _, created in outcomes) == 1
    final = SqliteJobStore(path).get(job.id)
    assert final.version == WORKERS * NOTES_EACH
    expected = {f"process {w} note {n}" for w in range(WORKERS) for n in range(NOTES_EACH)}
    assert {note.split(" ", 1)[1] for note in final.notes} == expected


def test_creates_its_directory_and_uses_wal(tmp_path: Path, make_job: MakeJob) -> None:
    path = tmp_path / "deep" / "er" / "jobs.db"
    store = SqliteJobStore(str(path))
    store.create(make_job())
    store.close()
    assert path.is_file()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        indexes = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"jobs_by_target", "jobs_by_status", "jobs_by_created", "leases_by_expiry"} <= indexes


def test_data_survives_reopening(tmp_path: Path, make_job: MakeJob) -> None:
    path = str(tmp_path / "jobs.db")
    first = SqliteJobStore(path)
    job, _ = first.create(make_job())
    first.acquire_lease(VM, "worker-a", 60, T0)
    first.close()
    again = SqliteJobStore(path)
    assert again.get(job.id) == job
    assert again.lease_holder(VM, T0) == "worker-a"


def test_in_memory_database_is_refused() -> None:
    with pytest.raises(InvalidInput, match="file path"):
        SqliteJobStore(":memory:")
    with pytest.raises(InvalidInput, match="file path"):
        SqliteJobStore("  ")


def test_unusable_path_is_a_clear_error(tmp_path: Path, make_job: MakeJob) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    store = SqliteJobStore(str(blocker / "jobs.db"))
    with pytest.raises(InvalidInput, match="job store"):
        store.create(make_job())


def test_not_a_database_is_a_clear_error(tmp_path: Path, make_job: MakeJob) -> None:
    path = tmp_path / "jobs.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(InvalidInput, match="cannot be used"):
        SqliteJobStore(str(path)).create(make_job())


# The schema of a database made before jobs' pending runs were kept (``pending_runs``).
SCHEMA_BEFORE_PENDING_RUNS = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    target_key TEXT NOT NULL,
    status TEXT NOT NULL,
    remediation TEXT NOT NULL,
    alert_id TEXT,
    campaign_id TEXT,
    created_key TEXT NOT NULL,
    updated_key TEXT NOT NULL,
    terminal INTEGER NOT NULL,
    ran_script INTEGER NOT NULL,
    version INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_by_created ON jobs (created_key);
CREATE INDEX IF NOT EXISTS jobs_by_target ON jobs (target_key, remediation, created_key);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (status, created_key);
CREATE INDEX IF NOT EXISTS jobs_by_remediation ON jobs (remediation, created_key);
CREATE INDEX IF NOT EXISTS jobs_by_alert ON jobs (alert_id) WHERE alert_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS jobs_by_campaign ON jobs (campaign_id) WHERE campaign_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS jobs_by_retention ON jobs (terminal, updated_key);
CREATE TABLE IF NOT EXISTS leases (
    key TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS leases_by_expiry ON leases (expires_at);
CREATE TABLE IF NOT EXISTS runs (
    key TEXT NOT NULL,
    remediation TEXT NOT NULL,
    ended_key TEXT NOT NULL,
    PRIMARY KEY (key, remediation)
);
CREATE TABLE IF NOT EXISTS campaigns (
    id TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    body TEXT NOT NULL
);
"""


def test_a_database_made_before_pending_runs_were_kept_is_upgraded_on_first_use(
    tmp_path: Path, make_job: MakeJob
) -> None:
    path = tmp_path / "jobs.db"
    recorded = T0.replace(hour=11)
    with sqlite3.connect(path) as conn:
        conn.executescript(SCHEMA_BEFORE_PENDING_RUNS)
        conn.execute("INSERT INTO leases (key, holder, expires_at) VALUES (?, ?, ?)", (VM, "w-old", 0.0))
        conn.execute(
            "INSERT INTO runs (key, remediation, ended_key) VALUES (?, ?, ?)",
            (VM, "free-disk-space", "2026-03-01T11:00:00.000000Z"),
        )
    store = SqliteJobStore(str(path))
    assert (
        store.lease_facts(VM, "free-disk-space", T0, runs_since=T0.replace(hour=0)).last_run_ended_at
        == recorded
    )
    job, _ = store.create(make_job())

    assert store.acquire_lease(VM, job.id, 600, T0, remediation="free-disk-space")
    job = store.update(jobs.transition(job, jobs.DISPATCHING, now=T0, actor="t", reason="go"))
    ended = T0.replace(minute=5)
    store.update(jobs.transition(job, jobs.FAILED, now=ended, actor="t", reason="x"))

    facts = store.lease_facts(VM, "free-disk-space", ended, runs_since=T0.replace(hour=0))
    assert facts.holder is None and facts.last_run_ended_at == ended  # the pending run, read from the job
    store.close()
