"""Runner edges: approval expiry at the boundary, back-off arithmetic, giving up on a poison message."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from autoremediation import jobs
from autoremediation.catalog import Catalog, load_catalog
from autoremediation.errors import ConcurrencyConflict, Transient
from autoremediation.jobs import Job, Transition
from autoremediation.runner import MAX_RETRIES, Runner
from autoremediation.settings import Settings
from autoremediation.store.memory_queue import ManualClock
from autoremediation.store.sqlite import SqliteJobStore
from tests.helpers.catalogs import make_catalog
from tests.helpers.fakes import FakeCompute, vm_facts, vm_id


class ConflictingStore:
    """The real store, but the first ``conflicts`` updates lose the compare-and-swap to another writer."""

    def __init__(self, inner: SqliteJobStore, conflicts: int) -> None:
        self.inner = inner
        self.conflicts = conflicts

    def update(self, job: Job) -> Job:
        if self.conflicts > 0:
            self.conflicts -= 1
            raise ConcurrencyConflict(f"job {job.id}: changed by another writer")
        return self.inner.update(job)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    return load_catalog(make_catalog(tmp_path_factory.mktemp("catalog")))


class Bench:
    def __init__(self, tmp_path: Path, catalog: Catalog, **settings: Any) -> None:
        self.catalog = catalog
        self.clock = ManualClock()
        self.store = SqliteJobStore(str(tmp_path / "jobs.db"))
        self.compute = FakeCompute()
        self.compute.add(vm_facts("vm1"))
        self.settings = replace(Settings(), **{"poll_seconds": 10, **settings})
        self.seen: list[tuple[str, Transition]] = []
        self.runner = self.runner_on(self.store)

    def runner_on(self, store: Any) -> Runner:
        return Runner(
            catalog=self.catalog,
            store=store,
            compute=self.compute,
            clock=self.clock,
            settings=self.settings,
            on_transition=lambda job, t: self.seen.append((job.status, t)),
        )

    def job(self, status: str = jobs.PLANNED, remediation: str = "free-disk-space", **changes: Any) -> Job:
        now = self.clock.now()
        job, _ = self.store.create(
            jobs.new_job(
                idempotency_key=f"manual|{remediation}",
                remediation=remediation,
                condition="disk-full",
                target=vm_id("vm1"),
                parameters={},
                now=now,
            )
        )
        path = {
            jobs.PLANNED: [],
            jobs.AWAITING_APPROVAL: [jobs.AWAITING_APPROVAL],
            jobs.RUNNING: [jobs.DISPATCHING, jobs.RUNNING],
        }[status]
        for step in path:
            job = jobs.transition(job, step, now=now, actor="worker", reason="test")
        return self.store.update(replace(job, **changes))


@pytest.fixture
def bench(tmp_path: Path, catalog: Catalog) -> Bench:
    return Bench(tmp_path, catalog)


def test_an_unapproved_job_expires_exactly_at_its_deadline(bench: Bench) -> None:
    deadline = bench.clock.now() + timedelta(minutes=5)
    job = bench.job(jobs.AWAITING_APPROVAL, approval_expires_at=deadline.isoformat())
    bench.clock.advance(299)
    early = bench.runner.advance(job.id)
    assert (early.job.status, early.requeue_after, early.note) == (
        jobs.AWAITING_APPROVAL,
        None,
        "waiting for an operator",
    )
    bench.clock.advance(1)
    step = bench.runner.advance(job.id)
    assert step.job.status == jobs.EXPIRED
    last = step.job.history[-1]
    assert (last.actor, last.reason) == ("sweeper", "no operator approved it in time")


def test_a_job_without_an_approval_deadline_waits(bench: Bench) -> None:
    job = bench.job(jobs.AWAITING_APPROVAL)
    step = bench.runner.advance(job.id)
    assert (step.job.id, step.job.status, step.note) == (
        job.id,
        jobs.AWAITING_APPROVAL,
        "waiting for an operator",
    )


def test_a_transient_error_backs_off_from_at_least_one_second_and_is_on_record(
    tmp_path: Path, catalog: Catalog
) -> None:
    bench = Bench(tmp_path, catalog, poll_seconds=0.5)
    job = bench.job()
    bench.compute.errors["get_vm"] = [Transient("ARM said 503")]
    bench.clock.advance(7)
    step = bench.runner.advance(job.id)
    assert (step.requeue_after, step.note) == (1.0, "retry 1 in 1s: ARM said 503")
    saved = bench.store.get(job.id)
    assert saved.outcome["lastError"] == "Transient: ARM said 503"
    assert saved.updated_at == bench.clock.now().isoformat()
    assert saved.attempts == 1


def test_an_approved_job_that_runs_out_of_retries_expires_rather_than_fails(bench: Bench) -> None:
    job = bench.job(jobs.AWAITING_APPROVAL, approved_by="bob", attempts=MAX_RETRIES)
    bench.compute.errors["get_vm"] = [Transient("ARM said 503")]
    step = bench.runner.advance(job.id)
    assert step.job.status == jobs.EXPIRED
    assert step.job.history[-1].reason == f"gave up after {MAX_RETRIES} retries: ARM said 503"


def test_giving_up_on_a_running_job_stops_the_run_and_reports_the_failure(bench: Bench) -> None:
    job = bench.job(jobs.RUNNING, run={"name": "remediate-x", "os": "linux"})
    ended = bench.runner.give_up(job.id, "the queue gave up after 5 deliveries")
    assert ended.status == jobs.FAILED
    last = ended.history[-1]
    assert last.actor == "queue"
    assert last.reason == (
        "the queue gave up after 5 deliveries; the run command was stopped, its outcome is unknown"
    )
    assert bench.compute.cancelled == ["remediate-x"]
    assert bench.seen == [(jobs.FAILED, last)]


def test_giving_up_on_a_job_awaiting_approval_expires_it(bench: Bench) -> None:
    job = bench.job(jobs.AWAITING_APPROVAL)
    ended = bench.runner.give_up(job.id, "poison")
    assert (ended.status, ended.history[-1].reason, ended.history[-1].actor) == (
        jobs.EXPIRED,
        "poison",
        "queue",
    )


def test_giving_up_survives_four_lost_swaps(bench: Bench) -> None:
    job = bench.job()
    runner = bench.runner_on(ConflictingStore(bench.store, conflicts=4))
    assert runner.give_up(job.id, "poison").status == jobs.FAILED


def test_giving_up_names_the_job_after_five_lost_swaps(bench: Bench) -> None:
    job = bench.job()
    runner = bench.runner_on(ConflictingStore(bench.store, conflicts=5))
    with pytest.raises(ConcurrencyConflict) as caught:
        runner.give_up(job.id, "poison")
    assert str(caught.value) == f"job {job.id}: could not record the failure"
    assert bench.store.get(job.id).status == jobs.PLANNED
