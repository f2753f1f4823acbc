"""A fresh SQLite job store used by several threads at once: switching the file to WAL must not fail.

SQLite answers "database is locked" at once (no busy timeout) when a connection switches the journal
mode while another writes; before the store waited that out, about one fresh store in ten failed here.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

from autoremediation.store.sqlite import SqliteJobStore


def test_many_fresh_stores_taken_by_four_threads_at_once(tmp_path: Path) -> None:
    failures: list[BaseException] = []
    for round_ in range(50):
        store = SqliteJobStore(str(tmp_path / f"round-{round_}" / "jobs.db"))
        barrier = threading.Barrier(4)
        won: list[bool] = []

        def take(
            i: int,
            store: SqliteJobStore = store,
            barrier: threading.Barrier = barrier,
            won: list[bool] = won,
        ) -> None:
            barrier.wait()
            try:
                won.append(store.acquire_lease("vm", f"holder-{i}", 60, datetime(2026, 1, 1, tzinfo=UTC)))
            except BaseException as error:  # any error is the failure this test looks for
                failures.append(error)

        threads = [threading.Thread(target=take, args=(i,)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        store.close()
        assert sorted(won) == [False, False, False, True] or failures
    assert failures == []
