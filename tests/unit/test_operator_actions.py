"""What an operator does to jobs from the CLI: cancel, retry, name jobs by prefix and VMs by name."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from autoremediation import jobs, operations
from autoremediation.cli_find import find_job, find_target
from autoremediation.errors import InvalidInput, InvalidTransition, NotFound, SetupProblem, Transient
from autoremediation.jobs import Job
from autoremediation.store.memory_queue import InProcessQueue, ManualClock
from autoremediation.store.sqlite import SqliteJobStore
from tests.helpers.fakes import vm_id
from tests.unit.test_core_runner_edges import Bench, catalog  # noqa: F401  (the module's catalog fixture)


@pytest.fixture
def store(tmp_path: Path) -> SqliteJobStore:
    return SqliteJobStore(str(tmp_path / "jobs.db"))


def make(store: SqliteJobStore, clock: ManualClock, key: str, target: str, **changes: object) -> Job:
    job, _ = store.create(
        jobs.new_job(
            idempotency_key=key,
            remediation="free-disk-space",
            condition="disk-full",
            target=target,
            parameters={"mountPoint": "/var"},
            now=clock.now(),
        )
    )
    return store.update(replace(job, **changes)) if changes else job


def walk(store: SqliteJobStore, job: Job, *path: str) -> Job:
    for status in path:
        job = store.update(jobs.transition(job, status, now=ManualClock().now(), actor="worker", reason="t"))
    return job


# -- cancel -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", [(), (jobs.AWAITING_APPROVAL,), (jobs.DISPATCHING,)], ids=["planned", "awaiting", "dispatching"]
)
def test_cancel_stops_a_job_not_yet_running_without_touching_azure(
    store: SqliteJobStore, path: tuple
) -> None:
    clock = ManualClock()
    job = walk(store, make(store, clock, "k", vm_id("vm1")), *path)
    store.acquire_lease(job.target_key, job.id, 60, clock.now())
    stops: list[str] = []

    saved = operations.cancel(
        store,
        clock,
        job.id,
        actor="alice",
        reason="wrong VM",
        stop_run=lambda j: (stops.append(j.id) or "", True),
    )

    assert saved.status == jobs.CANCELLED
    assert (saved.history[-1].actor, saved.history[-1].reason) == ("alice", "cancelled by alice: wrong VM")
    assert stops == []
    assert store.lease_holder(job.target_key, clock.now()) is None


def test_cancel_of_a_running_job_stops_its_run_command_and_says_so(store: SqliteJobStore) -> None:
    clock = ManualClock()
    job = walk(store, make(store, clock, "k", vm_id("vm1")), jobs.DISPATCHING, jobs.RUNNING)
    store.acquire_lease(job.target_key, job.id, 60, clock.now())
    stopped: list[str] = []

    def stop(running: Job) -> tuple[str, bool]:
        stopped.append(running.id)
        return "run command remediate-x deleted, which stops its script", True

    saved = operations.cancel(store, clock, job.id, actor="bob", stop_run=stop)

    assert stopped == [job.id]
    assert saved.status == jobs.CANCELLED
    assert saved.history[-1].reason == (
        "cancelled by bob; run command remediate-x deleted, which stops its script"
    )
    assert store.lease_holder(job.target_key, clock.now()) is None


def test_cancel_of_a_running_job_without_a_way_to_stop_it_records_that_it_may_run_on(
    store: SqliteJobStore,
) -> None:
    clock = ManualClock()
    job = walk(store, make(store, clock, "k", vm_id("vm1")), jobs.DISPATCHING, jobs.RUNNING)
    saved = operations.cancel(store, clock, job.id, actor="bob")
    assert saved.history[-1].reason == (
        "cancelled by bob; the run command was not stopped: it may run to its end"
    )


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ((jobs.SKIPPED,), "already ended (skipped): nothing to cancel"),
        ((jobs.DISPATCHING, jobs.RUNNING, jobs.VERIFYING), "its script already ended"),
    ],
)
def test_cancel_refuses_what_cannot_be_stopped_any_more(
    store: SqliteJobStore, path: tuple, message: str
) -> None:
    clock = ManualClock()
    job = walk(store, make(store, clock, "k", vm_id("vm1")), *path)
    with pytest.raises(InvalidTransition, match=re.escape(message)):
        operations.cancel(store, clock, job.id, actor="bob", stop_run=lambda j: pytest.fail("no stop"))
    assert store.get(job.id).status == path[-1]


# -- retry --------------------------------------------------------------------------------------------


def test_retry_makes_a_new_queued_job_linked_to_the_old_one(store: SqliteJobStore) -> None:
    clock, queue = ManualClock(), InProcessQueue()
    old = walk(store, make(store, clock, "k", vm_id("vm1"), dry_run=True), jobs.FAILED)

    new, created = operations.retry(store, queue, clock, old.id, actor="carol", reason="CA fixed")

    assert created and new.id != old.id and new.retry_of == old.id
    assert (new.status, new.remediation, new.target, new.parameters) == (
        jobs.PLANNED,
        old.remediation,
        old.target,
        old.parameters,
    )
    assert new.dry_run is True and new.requested_by == "carol"
    assert new.history[0].reason == f"retry of {old.id} by carol: CA fixed"
    assert [m.job_id for m in queue.receive()] == [new.id]
    assert new.to_json()["retryOf"] == old.id
    again, created_again = operations.retry(store, queue, clock, old.id, actor="carol")
    assert (again.id, created_again) == (new.id, False)  # the same retry, not a third job
    assert queue.receive() == []


def test_retry_refuses_a_job_that_has_not_ended(store: SqliteJobStore) -> None:
    clock = ManualClock()
    job = walk(store, make(store, clock, "k", vm_id("vm1")), jobs.AWAITING_APPROVAL)
    with pytest.raises(InvalidTransition, match="is awaiting-approval: cancel it first"):
        operations.retry(store, InProcessQueue(), clock, job.id, actor="x")


# -- names --------------------------------------------------------------------------------------------


def test_a_job_is_found_by_id_or_by_a_unique_prefix(store: SqliteJobStore) -> None:
    clock = ManualClock()
    made = [make(store, clock, f"k{i}", vm_id("vm1")) for i in range(6)]
    target = made[3]
    assert find_job(store, target.id) == target
    unique = next(n for n in range(5, 28) if sum(j.id.startswith(target.id[:n]) for j in made) == 1)
    assert find_job(store, target.id[:unique]).id == target.id
    assert find_job(store, target.id[4:unique].upper()).id == target.id  # without "job-", any case
    with pytest.raises(InvalidInput, match=r"'job-' matches 6 jobs: job-"):
        find_job(store, "job-")
    with pytest.raises(NotFound, match="no job 'zzz'"):
        find_job(store, "zzz")
    with pytest.raises(NotFound, match="there are no jobs yet"):
        find_job(None, "abc")


def test_a_vm_is_found_by_name_and_an_ambiguous_name_lists_the_ids(store: SqliteJobStore) -> None:
    clock = ManualClock()
    make(store, clock, "a", vm_id("web-1", rg="rg-a"))
    make(store, clock, "b", vm_id("web-1", rg="rg-b"))
    make(store, clock, "c", vm_id("db-1", rg="rg-a"))
    assert find_target(store, "DB-1") == vm_id("db-1", rg="rg-a")
    assert find_target(store, vm_id("web-1", rg="rg-b")) == vm_id("web-1", rg="rg-b")
    with pytest.raises(InvalidInput) as caught:
        find_target(store, "web-1")
    assert str(caught.value) == (
        "VM name 'web-1' is ambiguous: "
        f"{vm_id('web-1', rg='rg-a')}, {vm_id('web-1', rg='rg-b')}; pass the resource id"
    )
    assert find_target(store, "never-seen") == "never-seen"


# -- errors that retrying cannot mend ----------------------------------------------------------------


def test_a_setup_problem_fails_the_job_at_once_instead_of_retrying(bench: Bench) -> None:
    job = bench.job()
    bench.compute.errors["get_vm"] = [SetupProblem("reading the VM: TLS certificate does not verify")]
    step = bench.runner.advance(job.id)
    assert (step.job.status, step.requeue_after, step.job.attempts) == (jobs.FAILED, None, 0)
    assert step.job.history[-1].reason == "SetupProblem: reading the VM: TLS certificate does not verify"


def test_a_transient_error_still_retries(bench: Bench) -> None:
    job = bench.job()
    bench.compute.errors["get_vm"] = [Transient("503")]
    step = bench.runner.advance(job.id)
    assert (step.job.status, step.job.attempts) == (jobs.PLANNED, 1)
    assert step.note.startswith("retry 1 in ")


@pytest.fixture
def bench(tmp_path: Path, catalog) -> Bench:  # noqa: F811
    return Bench(tmp_path, catalog)
