"""The per-VM leases of the SQLite job store, and the cooldown's record of runs beside them.

Tables ``leases``, ``runs`` and ``pending_runs`` of the store's schema (``sqlite``, which also owns the
connections and the write transactions: every operation here runs in one transaction it gives).

A holder whose job has ended holds nothing: a live lease counts only while its holder's job exists and
has not ended (read in the same transaction; a holder no job backs, or whose job ended while its script
may still run, counts until it expires).

``runs`` holds, per lease key and remediation, when the last run that may have changed the VM ended
(recorded by ``release_lease``, or folded in by a take): the cooldown's fact, as on Table Storage.
``pending_runs`` holds, per lease key and remediation, the job that took or renewed the lease last and
the lease's expiry it set (the latest its end can be while its lease holds): its run, read from the job,
counts as a recorded one (a job deleted by retention counts as its bound). A key with no record (jobs
that ended before the table existed) is answered from the jobs themselves, an indexed query here.
``pending_runs`` is a table of its own so that a database made before it needs no column added.

A previous version of the app (or an older CLI) on the same database file reads only ``runs`` for the
cooldown. A run whose job ended without an explicit release lives only in ``pending_runs`` until a later
take for the same remediation folds it into ``runs``: until then an older reader's cooldown counts from
an older run (or from none) and may run the remediation again inside its cooldown. Unlike Table
Storage, whose take writes a provisional ``Ran_`` (``table_leases``), no conservative ``runs`` row is
written here: a SQLite file must not be shared with an older version.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime, timedelta

from ..jobs import Job
from ..ports import LeaseFacts
from ..verification import may_still_run, run_record
from .records import as_utc, check_lease, check_lease_take, decode_job, time_key

# One transaction of the store: ``write=True`` takes the write lock up front.
Transaction = Callable[..., AbstractContextManager[sqlite3.Connection]]


def _epoch(moment: datetime) -> float:
    return as_utc(moment).timestamp()


class SqliteLeases:
    """``acquire_lease``, ``release_lease``, ``lease_facts``, ``lease_holder`` and ``sweep_leases`` of
    ``SqliteJobStore``: ``tx`` is its transaction (``tx(write=...)``), ``last_outcome`` its query of the
    jobs (for runs that ended before they were recorded here)."""

    def __init__(self, tx: Transaction, last_outcome: Callable[[str, str], Job | None]) -> None:
        self._tx = tx
        self._last_outcome = last_outcome

    def acquire_lease(
        self, key: str, holder: str, ttl_seconds: float, now: datetime, *, remediation: str | None = None
    ) -> bool:
        check_lease_take(key, holder, ttl_seconds)
        at = _epoch(now)
        bound = time_key(now + timedelta(seconds=ttl_seconds))
        with self._tx(write=True) as conn:
            row = conn.execute("SELECT holder, expires_at FROM leases WHERE key = ?", (key,)).fetchone()
            if row is not None and row[0] != holder and row[1] > at and _look(conn, row[0])[0] != "ended":
                return False
            conn.execute(
                "INSERT INTO leases (key, holder, expires_at) VALUES (?, ?, ?)"
                " ON CONFLICT (key) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at",
                (key, holder, at + ttl_seconds),
            )
            if remediation is not None:
                replaced = conn.execute(
                    "SELECT job_id, bound_key FROM pending_runs WHERE key = ? AND remediation = ?",
                    (key, remediation),
                ).fetchone()
                if replaced is not None and replaced[0] != holder:
                    # Its run, if it had one, becomes the recorded one (a job still going releases its
                    # lapsed lease itself, with its run).
                    kind, run_end = _look(conn, replaced[0])
                    ended = run_end if kind in _ENDED else replaced[1] if kind == "gone" else None
                    if ended is not None:
                        _record_run(conn, key, remediation, ended)
                conn.execute(
                    "INSERT INTO pending_runs (key, remediation, job_id, bound_key) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (key, remediation)"
                    " DO UPDATE SET job_id = excluded.job_id, bound_key = excluded.bound_key",
                    (key, remediation, holder, bound),
                )
        return True

    def release_lease(self, key: str, holder: str, *, ran: tuple[str, datetime] | None = None) -> None:
        check_lease(key, holder)
        with self._tx(write=True) as conn:
            conn.execute("DELETE FROM leases WHERE key = ? AND holder = ?", (key, holder))
            conn.execute("DELETE FROM pending_runs WHERE key = ? AND job_id = ?", (key, holder))
            if ran is not None:
                _record_run(conn, key, ran[0], time_key(ran[1]))

    def lease_facts(self, key: str, remediation: str, now: datetime, *, runs_since: datetime) -> LeaseFacts:
        check_lease(key, "facts")
        with self._tx(write=False) as conn:
            holder = _holder(conn, key, _epoch(now))
            run = conn.execute(
                "SELECT ended_key FROM runs WHERE key = ? AND remediation = ?", (key, remediation)
            ).fetchone()
            ended_key: str | None = run[0] if run else None
            pending = conn.execute(
                "SELECT job_id, bound_key FROM pending_runs WHERE key = ? AND remediation = ?",
                (key, remediation),
            ).fetchone()
            if pending is not None and pending[1] > time_key(runs_since):
                kind, run_end = _look(conn, pending[0])
                pending_end = run_end if kind in _ENDED else pending[1] if kind == "gone" else None
                if pending_end is not None and pending_end > (ended_key or ""):
                    ended_key = pending_end
        if ended_key is not None:
            ended: datetime | None = datetime.fromisoformat(ended_key.replace("Z", "+00:00"))
        else:
            # Runs before this table kept them: the newest job that ran, as the cooldown saw it before.
            last = self._last_outcome(key, remediation)
            ended = as_utc(datetime.fromisoformat(last.updated_at or last.created_at)) if last else None
        return LeaseFacts(holder, ended)

    def lease_holder(self, key: str, now: datetime) -> str | None:
        with self._tx(write=False) as conn:
            return _holder(conn, key, _epoch(now))

    def sweep_leases(self, now: datetime) -> int:
        # The pending runs stay: they are the cooldown's records, as the runs are.
        with self._tx(write=True) as conn:
            count: int = conn.execute("DELETE FROM leases WHERE expires_at <= ?", (_epoch(now),)).rowcount
            return count


_ENDED = ("ended", "held")


def _look(conn: sqlite3.Connection, job_id: str) -> tuple[str, str | None]:
    """A lease holder's job: ("ended", end of its run or None), ("held", the same) when it ended while
    its script may still run (it holds its lease until the lease expires), ("live", None) or ("gone",
    None)."""
    row = conn.execute("SELECT terminal, body FROM jobs WHERE id = ?", (job_id,)).fetchone()
    if row is None:
        return "gone", None
    if not row[0]:
        return "live", None
    job = decode_job(row[1])
    ran = run_record(job)
    return "held" if may_still_run(job) else "ended", time_key(ran[1]) if ran else None


def _holder(conn: sqlite3.Connection, key: str, at: float) -> str | None:
    """The live holder of the lease whose job has not ended (a holder no job backs counts)."""
    row = conn.execute("SELECT holder FROM leases WHERE key = ? AND expires_at > ?", (key, at)).fetchone()
    if row is None or _look(conn, row[0])[0] == "ended":
        return None
    return str(row[0])


def _record_run(conn: sqlite3.Connection, key: str, remediation: str, ended_key: str) -> None:
    """The remediation's run on the key ended then; an older end never replaces a newer one."""
    conn.execute(
        "INSERT INTO runs (key, remediation, ended_key) VALUES (?, ?, ?)"
        " ON CONFLICT (key, remediation) DO UPDATE SET ended_key = max(ended_key, excluded.ended_key)",
        (key, remediation, ended_key),
    )
