"""Where the cooldown, the lease holder and the breaker get their facts, and what that costs the store.

The cooldown and the holder come from one read of the VM's lease (the end of the last run is recorded on
it when the run's job releases it), taken only when the VM's own guards pass; the breaker's failure list
is read at most every BREAKER_FACTS_SECONDS per process, and a failure this process writes counts at once.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from autoremediation import jobs
from autoremediation.ports import RunStatus
from autoremediation.runner import BREAKER_FACTS_SECONDS
from tests.helpers.counting import CountedCalls
from tests.helpers.fakes import vm_facts
from tests.unit.test_runner import World


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def counted_store(world: World) -> CountedCalls:
    counted = CountedCalls(world.store)
    world.runner.store = counted  # type: ignore[assignment]
    return counted


def _failing(request: Any) -> RunStatus:
    return RunStatus(state="failed", exit_code=1, result={"status": "error"})


def _job(world: World, vm: str, request_id: str) -> str:
    world.compute.add(vm_facts(vm))
    return world.job(world.manual("free-disk-space", target=vm, request_id=request_id)).id


def test_a_dispatch_reads_the_lease_once_and_takes_it_once(world: World) -> None:
    job_id = _job(world, "vm1", "r-1")
    store = counted_store(world)

    step = world.runner.advance(job_id)

    assert step.job.status == jobs.DISPATCHING
    assert store.calls["lease_facts"] == 1 and store.calls["acquire_lease"] == 1
    assert store.calls["lease_holder"] == 0 and store.calls["last_outcome"] == 0


def test_a_vm_held_by_another_job_waits_without_trying_to_take_it(world: World) -> None:
    job_id = _job(world, "vm1", "r-1")
    key = world.store.get(job_id).target_key
    assert world.store.acquire_lease(key, "job-other", 600, world.clock.now())
    store = counted_store(world)

    step = world.runner.advance(job_id)

    assert step.job.status == jobs.PLANNED and step.requeue_after
    assert "job-other holds this VM" in step.note
    assert store.calls["acquire_lease"] == 0 and store.calls["lease_holder"] == 0


def test_a_vm_that_fails_its_own_guards_costs_no_lease_or_history_read(world: World) -> None:
    world.compute.add(vm_facts("vm-off", power_state="deallocated"))
    job_id = world.job(world.manual("free-disk-space", target="vm-off", request_id="r-off")).id
    store = counted_store(world)

    step = world.runner.advance(job_id)

    assert step.job.status == jobs.SKIPPED and step.job.history[-1].reason.startswith("vm-running")
    assert store.calls["lease_facts"] == 0 and store.calls["list"] == 0


def test_the_cooldown_counts_from_the_run_recorded_on_the_lease_even_once_its_job_is_gone(
    world: World,
) -> None:
    first = _job(world, "vm1", "r-1")
    world.drain()
    ended = world.store.get(first)
    assert ended.status == jobs.SUCCEEDED
    world.clock.advance(10 * 60)
    assert world.store.delete_jobs(world.clock.now()) == 1  # retention took the job; the record stays

    second = _job(world, "vm1", "r-2")
    world.drain()

    # The job left its lease to its end and retention took it: the latest its run can have ended (the
    # bound its lease set) is what the cooldown counts from.
    reason = world.store.get(second).history[-1].reason
    assert reason.startswith("cooldown") and ended.run["leaseUntil"] in reason


def test_a_dry_run_records_no_run_for_the_cooldown(world: World) -> None:
    world.compute.add(vm_facts("vm1"))
    world.manual("free-disk-space", target="vm1", request_id="r-dry", dry_run=True)
    world.drain()
    real = world.job(world.manual("free-disk-space", target="vm1", request_id="r-real"))
    world.drain()
    assert world.store.get(real.id).status == jobs.SUCCEEDED


def test_failures_written_elsewhere_reach_the_breaker_after_the_cache_period(world: World) -> None:
    world.runner.advance(_job(world, "vm-a", "r-a"))  # this process has read the (empty) failure list
    for n in range(3):  # three failures written by another process, straight to the store
        job = world.store.get(_job(world, f"vm-f{n}", f"r-f{n}"))
        now = world.clock.now()
        job = world.store.update(jobs.transition(job, jobs.DISPATCHING, now=now, actor="w", reason="x"))
        world.store.update(jobs.transition(job, jobs.FAILED, now=now, actor="w", reason="x"))

    soon = world.runner.advance(_job(world, "vm-b", "r-b"))
    world.clock.advance(BREAKER_FACTS_SECONDS + 1)
    later = world.runner.advance(_job(world, "vm-c", "r-c"))

    assert soon.job.status == jobs.DISPATCHING  # not seen yet: the list this process read is recent
    assert later.job.status == jobs.SKIPPED and later.job.history[-1].reason.startswith("circuit-breaker")


def test_a_failure_this_process_writes_counts_at_once(tmp_path: Path) -> None:
    world = World(tmp_path, breaker_threshold=1)
    world.runner.advance(_job(world, "vm-a", "r-a"))  # the failure list is read (empty) and kept
    world.compute.outcome = _failing
    world.drain()
    assert world.store.list(status=jobs.FAILED)

    step = world.runner.advance(_job(world, "vm-b", "r-b"))  # same instant: the cached list is used

    assert step.job.status == jobs.SKIPPED and step.job.history[-1].reason.startswith("circuit-breaker")


def test_a_run_an_operator_cancels_still_starts_the_cooldown(world: World) -> None:
    from autoremediation import operations

    world.compute.polls_until_done = 10**9
    first = _job(world, "vm1", "r-1")
    world.runner.advance(first)
    world.runner.advance(first)
    assert world.store.get(first).status == jobs.RUNNING
    operations.cancel(world.store, world.clock, first, actor="alice", stop_run=lambda job: ("stopped", True))
    world.store.delete_jobs(world.clock.now() + timedelta(seconds=1))  # only the lease's record is left

    step = world.runner.advance(_job(world, "vm1", "r-2"))

    assert step.job.status == jobs.SKIPPED and step.job.history[-1].reason.startswith("cooldown")


def test_the_job_carries_its_leases_tag_to_the_release(world: World) -> None:
    class Tagged(CountedCalls):
        released: list[Any] = []

        def lease_tag(self, key: str) -> str:
            return "tag-1"

        def release_lease(self, key: str, holder: str, **kw: Any) -> None:
            self.released.append(kw.get("tag"))
            self.inner.release_lease(key, holder, **kw)

    job_id = _job(world, "vm1", "r-1")
    store = Tagged(world.store)
    world.runner.store = store  # type: ignore[assignment]

    step = world.runner.advance(job_id)
    assert step.job.run["leaseTag"] == "tag-1"
    # As a job whose lease an instance of the previous version took: no bound of its own, so its end
    # alone does not free the VM and it is released explicitly.
    run = {k: v for k, v in step.job.run.items() if k != "leaseUntil"}
    world.store.update(replace(world.store.get(job_id), run=run))
    world.drain()

    assert world.store.get(job_id).status == jobs.SUCCEEDED
    assert store.released == ["tag-1"]


def test_a_cooldown_skip_gives_back_no_lease_it_never_took(world: World) -> None:
    first = _job(world, "vm1", "r-1")
    world.drain()
    assert world.store.get(first).status == jobs.SUCCEEDED
    second = _job(world, "vm1", "r-2")
    key = world.store.get(second).target_key
    assert world.store.acquire_lease(key, "job-other", 600, world.clock.now())
    store = counted_store(world)

    step = world.runner.advance(second)

    assert step.job.status == jobs.SKIPPED and step.job.history[-1].reason.startswith("cooldown")
    assert store.calls["release_lease"] == 0
    assert world.store.lease_holder(key, world.clock.now()) == "job-other"


def test_a_skip_before_the_lease_was_read_still_gives_back_a_lease_the_job_may_hold(world: World) -> None:
    world.compute.add(vm_facts("vm-off", power_state="deallocated"))
    job_id = world.job(world.manual("free-disk-space", target="vm-off", request_id="r-off")).id
    key = world.store.get(job_id).target_key
    # An earlier attempt of this job took the lease, and its write did not land.
    assert world.store.acquire_lease(key, job_id, 600, world.clock.now())

    step = world.runner.advance(job_id)

    assert step.job.status == jobs.SKIPPED
    assert world.store.lease_holder(key, world.clock.now()) is None
