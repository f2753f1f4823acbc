"""The embedded job store: one SQLite file, safe for several threads and several processes.

Each operation is its own transaction on a per-thread connection. Writes that read first (the
compare-and-swap on ``version``, leases) take the write lock up front with ``BEGIN IMMEDIATE`` so two
writers never both read the old row. WAL lets readers run while one writer writes. The job itself is
stored as JSON; the columns the ``list`` filters use are copied out and indexed.

The leases, and the cooldown's record of runs beside them, are ``sqlite_leases``: its operations run
in the transactions this module gives (``SqliteJobStore._tx``).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from ..errors import ConcurrencyConflict, InvalidInput, NotFound, Transient
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
from .sqlite_leases import SqliteLeases

_SCHEMA = """
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
CREATE TABLE IF NOT EXISTS pending_runs (
    key TEXT NOT NULL,
    remediation TEXT NOT NULL,
    job_id TEXT NOT NULL,
    bound_key TEXT NOT NULL,
    PRIMARY KEY (key, remediation)
);
CREATE TABLE IF NOT EXISTS campaigns (
    id TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    body TEXT NOT NULL
);
"""

# Long enough that contention among workers on one machine waits instead of failing.
_BUSY_TIMEOUT_SECONDS = 60.0
_IN_CHUNK = 500  # SQLite allows 999 parameters per statement in older builds


def _use_wal(conn: sqlite3.Connection) -> None:
    """Switch the file to WAL once. Switching needs the file to itself, and SQLite answers "locked"
    at once (its busy timeout does not apply) while another connection is writing: wait that out."""
    deadline = time.monotonic() + _BUSY_TIMEOUT_SECONDS
    delay = 0.005
    while True:
        try:
            if str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.1)


_INSERT_JOB = (
    "INSERT INTO jobs (id, target_key, status, remediation, alert_id, campaign_id, created_key,"
    " updated_key, terminal, ran_script, version, body)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING"
)


class SqliteJobStore:
    """``ports.JobStore`` on a SQLite file; the directory and the schema are made on first use."""

    def __init__(self, path: str) -> None:
        if not isinstance(path, str) or not path.strip():
            raise InvalidInput("the SQLite job store needs a file path (REMEDIATION_SQLITE_PATH)")
        if path.strip() == ":memory:" or path.startswith("file::memory:"):
            # Every thread has its own connection, and each would see its own empty in-memory database.
            raise InvalidInput("the SQLite job store needs a file path, not an in-memory database")
        self.path = path
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._ready = False
        self._leases = SqliteLeases(self._tx, self.last_outcome)

    # -- connections and transactions -------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        try:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InvalidInput(f"cannot create the directory of the job store {self.path}: {exc}") from None
        try:
            # isolation_level=None: transactions are begun explicitly, never implicitly by the module.
            conn = sqlite3.connect(
                self.path, timeout=_BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False
            )
            _use_wal(conn)
            # FULL: a committed transition survives a power cut, so a script is never re-dispatched
            # because its record was lost.
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
        except sqlite3.Error as exc:
            raise _translate(exc, self.path) from None
        return conn

    def _conn(self) -> sqlite3.Connection:
        local = self._local
        # A forked child must not share its parent's connection: open its own.
        if getattr(local, "pid", None) != os.getpid():
            local.conn = self._open()
            local.pid = os.getpid()
            with self._lock:
                self._connections.append(local.conn)
        if not self._ready:
            self._init_schema(local.conn)
        conn: sqlite3.Connection = local.conn
        return conn

    def _init_schema(self, conn: sqlite3.Connection) -> None:
        with self._lock:
            if self._ready:
                return
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    for statement in _SCHEMA.split(";"):
                        if statement.strip():
                            conn.execute(statement)
                    conn.execute("COMMIT")
                except BaseException:
                    _rollback(conn)
                    raise
            except sqlite3.Error as exc:
                raise _translate(exc, self.path) from None
            self._ready = True

    @contextmanager
    def _tx(self, *, write: bool) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        try:
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        except sqlite3.Error as exc:
            raise _translate(exc, self.path) from None
        try:
            yield conn
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            _rollback(conn)
            raise _translate(exc, self.path) from None
        except BaseException:
            _rollback(conn)
            raise

    def close(self) -> None:
        """Close every connection this store opened (in any thread)."""
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()

    # -- jobs -------------------------------------------------------------------------------------

    def create(self, job: Job) -> tuple[Job, bool]:
        return self.create_many([job])[0]

    def create_many(self, new_jobs: Sequence[Job]) -> list[tuple[Job, bool]]:
        # One transaction, so one sync to disk for a campaign's thousands of jobs, not one each.
        for job in new_jobs:
            check_id(job.id)
        encoded = [encode_job(job) for job in new_jobs]
        results: list[tuple[Job, bool]] = []
        with self._tx(write=True) as conn:
            for job, body in encoded:
                inserted = conn.execute(_INSERT_JOB, (job.id, *_columns(job), job.version, body)).rowcount
                if inserted:
                    results.append((job, True))
                    continue
                row = conn.execute("SELECT body FROM jobs WHERE id = ?", (job.id,)).fetchone()
                results.append((decode_job(row[0]), False))
        return results

    def get(self, job_id: str) -> Job:
        if not is_valid_id(job_id):
            raise NotFound(f"no job {job_id!r}")
        with self._tx(write=False) as conn:
            row = conn.execute("SELECT body FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise NotFound(f"no job {job_id!r}")
        return decode_job(row[0])

    def get_many(self, job_ids: Sequence[str]) -> dict[str, Job]:
        wanted = sorted({job_id for job_id in job_ids if is_valid_id(job_id)})
        found: dict[str, Job] = {}
        for first in range(0, len(wanted), _IN_CHUNK):
            chunk = wanted[first : first + _IN_CHUNK]
            marks = ",".join("?" * len(chunk))
            with self._tx(write=False) as conn:
                rows = conn.execute(f"SELECT body FROM jobs WHERE id IN ({marks})", chunk).fetchall()  # noqa: S608
            for (body,) in rows:
                job = decode_job(body)
                found[job.id] = job
        return found

    def update(self, job: Job) -> Job:
        check_id(job.id)
        stored, body = encode_job(replace(job, version=job.version + 1))
        with self._tx(write=True) as conn:
            row = conn.execute("SELECT version FROM jobs WHERE id = ?", (job.id,)).fetchone()
            if row is None:
                raise NotFound(f"no job {job.id!r} to update")
            if row[0] != job.version:
                raise ConcurrencyConflict(
                    f"job {job.id} changed since it was read (stored version {row[0]}, update from "
                    f"version {job.version}): re-read it and decide again"
                )
            conn.execute(
                "UPDATE jobs SET target_key = ?, status = ?, remediation = ?, alert_id = ?, campaign_id = ?,"
                " created_key = ?, updated_key = ?, terminal = ?, ran_script = ?, version = ?, body = ?"
                " WHERE id = ?",
                (*_columns(stored), stored.version, body, job.id),
            )
        return stored

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
        clauses: list[str] = []
        args: list[Any] = []
        if wanted.target_key is not None:
            clauses.append("target_key = ?")
            args.append(wanted.target_key)
        if wanted.statuses is not None:
            if not wanted.statuses:
                return []
            clauses.append(f"status IN ({', '.join('?' * len(wanted.statuses))})")
            args.extend(sorted(wanted.statuses))
        for column, value in (
            ("remediation", wanted.remediation),
            ("alert_id", wanted.alert_id),
            ("campaign_id", wanted.campaign_id),
        ):
            if value is not None:
                clauses.append(f"{column} = ?")
                args.append(value)
        if wanted.since_key is not None:
            clauses.append("created_key >= ?")
            args.append(wanted.since_key)
        sql = "SELECT body FROM jobs"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY created_key DESC, id DESC"
        if wanted.limit is not None:
            sql += " LIMIT ?"
            args.append(wanted.limit)
        with self._tx(write=False) as conn:
            rows = conn.execute(sql, args).fetchall()
        # The SQL already filtered and ordered; the shared predicate is the final word on both stores.
        jobs = [job for job in (decode_job(r[0]) for r in rows) if wanted.matches(job)]
        return newest_first(jobs, wanted.limit)

    def last_outcome(self, target: str, remediation: str) -> Job | None:
        with self._tx(write=False) as conn:
            row = conn.execute(
                "SELECT body FROM jobs WHERE target_key = ? AND remediation = ? AND ran_script = 1"
                " ORDER BY created_key DESC, id DESC LIMIT 1",
                (normalize(target), remediation),
            ).fetchone()
        return decode_job(row[0]) if row else None

    def delete_jobs(self, ended_before: datetime) -> int:
        with self._tx(write=True) as conn:
            return conn.execute(
                "DELETE FROM jobs WHERE terminal = 1 AND updated_key < ?", (time_key(ended_before),)
            ).rowcount

    # -- leases (sqlite_leases.py) -------------------------------------------------------------------

    def acquire_lease(
        self, key: str, holder: str, ttl_seconds: float, now: datetime, *, remediation: str | None = None
    ) -> bool:
        return self._leases.acquire_lease(key, holder, ttl_seconds, now, remediation=remediation)

    def lease_tag(self, key: str) -> str | None:
        return None  # a release here is one transaction anyway

    def release_lease(
        self, key: str, holder: str, *, ran: tuple[str, datetime] | None = None, tag: str | None = None
    ) -> None:
        self._leases.release_lease(key, holder, ran=ran)

    def lease_facts(self, key: str, remediation: str, now: datetime, *, runs_since: datetime) -> LeaseFacts:
        return self._leases.lease_facts(key, remediation, now, runs_since=runs_since)

    def lease_holder(self, key: str, now: datetime) -> str | None:
        return self._leases.lease_holder(key, now)

    def sweep_leases(self, now: datetime) -> int:
        return self._leases.sweep_leases(now)

    # -- campaigns --------------------------------------------------------------------------------

    def create_campaign(self, campaign: Mapping[str, Any]) -> bool:
        campaign_id = campaign_id_of(campaign)
        version = campaign_version_of(campaign)
        body = encode_document({**campaign, "version": version}, f"campaign {campaign_id}")
        with self._tx(write=True) as conn:
            return bool(
                conn.execute(
                    "INSERT INTO campaigns (id, version, body) VALUES (?, ?, ?) ON CONFLICT (id) DO NOTHING",
                    (campaign_id, version, body),
                ).rowcount
            )

    def get_campaign(self, campaign_id: str) -> dict[str, Any]:
        if not is_valid_id(campaign_id):
            raise NotFound(f"no campaign {campaign_id!r}")
        with self._tx(write=False) as conn:
            row = conn.execute("SELECT body FROM campaigns WHERE id = ?", (campaign_id,)).fetchone()
        if row is None:
            raise NotFound(f"no campaign {campaign_id!r}")
        document: dict[str, Any] = json.loads(row[0])
        return document

    def update_campaign(self, campaign: Mapping[str, Any]) -> dict[str, Any]:
        campaign_id = campaign_id_of(campaign)
        version = campaign_version_of(campaign)
        stored = {**campaign, "version": version + 1}
        body = encode_document(stored, f"campaign {campaign_id}")
        with self._tx(write=True) as conn:
            row = conn.execute("SELECT version FROM campaigns WHERE id = ?", (campaign_id,)).fetchone()
            if row is None:
                raise NotFound(f"no campaign {campaign_id!r} to update")
            if row[0] != version:
                raise ConcurrencyConflict(
                    f"campaign {campaign_id} changed since it was read (stored version {row[0]}, update "
                    f"from version {version}): re-read it and decide again"
                )
            conn.execute(
                "UPDATE campaigns SET version = ?, body = ? WHERE id = ?", (version + 1, body, campaign_id)
            )
        result: dict[str, Any] = json.loads(body)
        return result


def _columns(job: Job) -> tuple[Any, ...]:
    """The indexed copies of a job's fields, in the column order of the INSERT and UPDATE above."""
    return (
        job.target_key,
        job.status,
        job.remediation,
        job.alert_id,
        job.campaign_id,
        created_key(job),
        updated_key(job),
        int(job.terminal),
        int(ran_script(job)),
    )


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        conn.execute("ROLLBACK")


def _translate(exc: sqlite3.Error, path: str) -> Exception:
    """SQLite's own errors as the engine's: a busy database is worth a retry, the rest is not."""
    text = str(exc)
    if isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text):
        return Transient(f"the job store {path} stayed busy for {_BUSY_TIMEOUT_SECONDS:g} s: {text}")
    return InvalidInput(f"the job store {path} cannot be used: {text}")
