"""Races a scaled-out worker pool really runs: duplicate deliveries, concurrent transitions, lease grabs."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import TypeVar

from autoremediation import jobs
from autoremediation.errors import ConcurrencyConflict
from autoremediation.ports import JobStore

from .conftest import T0, VM, MakeJob

R = TypeVar("R")


def race(count: int, action: Callable[[int], R]) -> list[R]:
    """Run ``action(i)`` in ``count`` threads released together by a barrier, so they really overlap."""
    barrier = threading.Barrier(count)

    def run(i: int) -> R:
        barrier.wait()
        return action(i)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(run, range(count)))


def test_200_concurrent_creates_make_exactly_one_job(store: JobStore, make_job: MakeJob) -> None:
    job = make_job("the-same-alert")
    results = race(200, lambda i: store.create(jobs.note(job, f"delivery {i}", now=T0)))
    winners = [stored for stored, created in results if created]
    assert len(winners) == 1
    # Everyone sees the one stored job, whichever delivery won.
    assert all(stored == winners[0] for stored, _ in results)
    assert store.get(job.id) == winners[0]
    assert len(store.list()) == 1


def test_50_concurrent_updates_lose_nothing(store: JobStore, make_job: MakeJob) -> None:
    job, _ = store.create(make_job())

    def append_note(i: int) -> int:
        while True:
            current = store.get(job.id)
            try:
                return store.update(jobs.note(current, f"writer {i}", now=T0)).version
            except ConcurrencyConflict:
                continue

    versions = race(50, append_note)
    assert sorted(versions) == list(range(1, 51))
    final = store.get(job.id)
    assert final.version == 50
    assert sorted(n.split(" ", 1)[1] for n in final.notes) == sorted(f"writer {i}" for i in range(50))


def test_two_holders_racing_for_one_lease_get_it_once(store: JobStore) -> None:
    for round_ in range(10):
        key = f"{VM}/round-{round_}"
        now = T0 + timedelta(minutes=round_)
        won = race(2, lambda i, key=key, now=now: store.acquire_lease(key, f"worker-{i}", 60, now))
        assert sorted(won) == [False, True]
        assert store.lease_holder(key, now) == f"worker-{won.index(True)}"


def test_racing_for_an_expired_lease_gives_it_to_one(store: JobStore) -> None:
    assert store.acquire_lease(VM, "crashed-worker", 60, T0)
    later = T0 + timedelta(seconds=61)
    won = race(8, lambda i: store.acquire_lease(VM, f"worker-{i}", 60, later))
    assert won.count(True) == 1
    assert store.lease_holder(VM, later) == f"worker-{won.index(True)}"
