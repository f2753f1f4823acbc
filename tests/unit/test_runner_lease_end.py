"""A managed run's end frees its VM: no release after the result, while the cooldown still counts from it.

A job that ended while its lease was surely still its own (its bound minus the clocks' margin is after
the end) leaves the lease to its end; one whose lease may have lapsed gives it back with its run.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from autoremediation import jobs
from autoremediation.jobs import Job, parse_time
from autoremediation.runner import MAX_BACKOFF_SECONDS, RUN_GRACE_SECONDS
from autoremediation.step_common import LEASE_END_MARGIN_SECONDS, lease_left_to_end
from autoremediation.verification import ended_at
from tests.unit.test_runner import World
from tests.unit.test_runner_guard_facts import counted_store

COOLDOWN = timedelta(minutes=60)  # free-disk-space in the test catalog
TTL = 900 + RUN_GRACE_SECONDS + MAX_BACKOFF_SECONDS


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def _run(world: World, request_id: str) -> Job:
    job = world.job(world.manual("free-disk-space", request_id=request_id))
    world.drain()
    return world.store.get(job.id)


def _at(world: World, moment: datetime) -> None:
    world.clock.advance((moment - world.clock.now()).total_seconds())


def test_a_managed_run_that_ends_frees_its_vm_without_a_release(world: World) -> None:
    store = counted_store(world)
    job = world.job(world.manual("free-disk-space", request_id="r-1"))

    world.drain()

    ended = world.store.get(job.id)
    assert ended.status == jobs.SUCCEEDED
    assert store.calls["release_lease"] == 0
    assert world.store.lease_holder(ended.target_key, world.clock.now()) is None
    until = parse_time(ended.run["leaseUntil"])
    assert until == parse_time(ended.run["leaseAt"]) + timedelta(seconds=TTL)


def test_the_cooldown_counts_from_the_end_of_a_run_that_left_its_lease(world: World) -> None:
    first = _run(world, "r-1")
    end = ended_at(first)
    assert first.status == jobs.SUCCEEDED and end is not None

    _at(world, end + COOLDOWN / 2)
    held = _run(world, "r-2")
    assert held.status == jobs.SKIPPED
    assert held.history[-1].reason.startswith("cooldown") and end.isoformat() in held.history[-1].reason

    _at(world, end + COOLDOWN + timedelta(seconds=1))
    assert _run(world, "r-3").status == jobs.SUCCEEDED


def test_a_redelivered_message_of_a_job_that_left_its_lease_to_its_end_releases_nothing(
    world: World,
) -> None:
    first = _run(world, "r-1")
    store = counted_store(world)

    step = world.runner.advance(first.id)

    assert step.job.status == jobs.SUCCEEDED
    assert store.calls["release_lease"] == 0


def _near_its_bound(world: World, job_id: str, seconds_left: float) -> None:
    """The stored job's lease bound as if its lease were about to lapse (e.g. a renewal that failed)."""
    job = world.store.get(job_id)
    until = world.clock.now() + timedelta(seconds=seconds_left)
    world.store.update(replace(job, run={**job.run, "leaseUntil": until.isoformat()}))


def test_a_run_that_ends_close_to_its_leases_bound_gives_the_lease_back_with_its_run(world: World) -> None:
    world.compute.polls_until_done = 2
    job = world.job(world.manual("free-disk-space", request_id="r-1"))
    world.runner.advance(job.id)  # the lease is taken
    world.runner.advance(job.id)  # dispatched
    _near_its_bound(world, job.id, LEASE_END_MARGIN_SECONDS - 1)
    store = counted_store(world)

    world.drain()

    ended = world.store.get(job.id)
    assert ended.status == jobs.SUCCEEDED
    assert store.calls["release_lease"] == 1
    # And its redelivered message repeats the release (the step may have died before it).
    world.runner.advance(job.id)
    assert store.calls["release_lease"] == 2


@pytest.mark.parametrize(
    ("left", "expected"),
    [(LEASE_END_MARGIN_SECONDS + 1, True), (LEASE_END_MARGIN_SECONDS - 1, False), (None, False)],
)
def test_the_end_alone_frees_the_vm_only_well_inside_the_leases_bound(
    world: World, left: float | None, expected: bool
) -> None:
    job = world.job(world.manual("free-disk-space", request_id="r-1"))
    now = world.clock.now()
    run = {"leaseAt": now.isoformat()}
    if left is not None:
        run["leaseUntil"] = (now + timedelta(seconds=left)).isoformat()
    ended = jobs.transition(replace(job, run=run), jobs.FAILED, now=now, actor="t", reason="x")

    assert lease_left_to_end(ended) is expected
    assert lease_left_to_end(replace(ended, status=jobs.PLANNED)) is False  # not ended


def test_a_note_written_after_the_end_does_not_move_the_end(world: World) -> None:
    job = world.job(world.manual("free-disk-space", request_id="r-1"))
    now = world.clock.now()
    ended = jobs.transition(job, jobs.FAILED, now=now, actor="t", reason="x")
    noted = jobs.note(ended, "the run command was left on the VM", now=now + timedelta(minutes=5))

    assert ended_at(noted) == now


def test_a_renewal_moves_the_bound_the_cooldown_falls_back_on(world: World) -> None:
    world.compute.polls_until_done = 10**9
    job = world.job(world.manual("free-disk-space", request_id="r-long"))
    world.runner.advance(job.id)  # planned -> dispatching: the lease is taken, bound at TTL
    world.runner.advance(job.id)  # -> running
    taken = world.clock.now()
    world.clock.advance(0.34 * TTL)
    renewed = world.clock.now()
    world.runner.advance(job.id)  # a poll: the lease is renewed, its bound moves
    world.clock.advance(TTL - 0.34 * TTL + 120)  # past the first bound, well inside the renewed one
    world.compute.polls_until_done = 0
    world.drain()
    ended = world.store.get(job.id)
    bound = parse_time(ended.run["leaseUntil"])
    assert ended.status == jobs.SUCCEEDED and bound is not None
    assert bound >= renewed + timedelta(seconds=TTL) > taken + timedelta(seconds=TTL + 60)
    end = ended_at(ended)
    assert end is not None
    world.store.delete_jobs(end + timedelta(seconds=1))  # retention: the job is gone, its bound is left

    # The window reaches back past the first bound but not past the renewed one.
    _at(world, taken + timedelta(seconds=TTL + 60) + COOLDOWN)
    held = _run(world, "r-next")

    assert held.status == jobs.SKIPPED and held.history[-1].reason.startswith("cooldown")


@pytest.mark.parametrize(("left", "releases"), [(30.0, 1), (90.0, 0)])
def test_a_run_that_ends_within_a_minute_of_its_leases_bound_gives_the_lease_back(
    world: World, left: float, releases: int
) -> None:
    # Two instances' clocks may disagree by tens of seconds: 30 s before the bound, the lease may
    # already be someone else's, so the run is recorded with a release; 90 s before, the end frees it.
    world.compute.polls_until_done = 10**9
    job = world.job(world.manual("free-disk-space", request_id="r-1"))
    world.runner.advance(job.id)  # the lease is taken
    world.runner.advance(job.id)  # dispatched
    world.compute.polls_until_done = 0
    _near_its_bound(world, job.id, left)
    store = counted_store(world)

    world.runner.advance(job.id)  # the poll that finds the result, ``left`` seconds before the bound

    ended = world.store.get(job.id)
    end, until = ended_at(ended), parse_time(ended.run["leaseUntil"])
    assert ended.status == jobs.SUCCEEDED and end is not None and until is not None
    assert (until - end).total_seconds() == left
    assert store.calls["release_lease"] == releases


def _running(world: World, request_id: str = "r-1") -> Job:
    world.compute.polls_until_done = 10**9
    job = world.job(world.manual("free-disk-space", request_id=request_id))
    world.runner.advance(job.id)  # the lease is taken
    world.runner.advance(job.id)  # dispatched
    running = world.store.get(job.id)
    assert running.status == jobs.RUNNING
    return running


def assert_holds_to_its_bound(world: World, ended: Job) -> None:
    """The ended job keeps its VM until its lease's bound, and its run counts as ending there."""
    until = parse_time(ended.run["leaseUntil"])
    assert ended.run.get("mayStillRun") is True and until is not None
    now = world.clock.now()
    assert world.store.lease_holder(ended.target_key, now) == ended.id
    assert not world.store.acquire_lease(
        ended.target_key, "job-other", 600, now, remediation="collect-diagnostics"
    )
    assert world.store.lease_holder(ended.target_key, until) is None  # and no longer
    facts = world.store.lease_facts(ended.target_key, "free-disk-space", until, runs_since=until - COOLDOWN)
    assert facts.last_run_ended_at == until


def test_a_timeout_whose_run_command_cannot_be_deleted_keeps_the_vm_to_the_leases_bound(
    world: World,
) -> None:
    from autoremediation.errors import Transient

    running = _running(world)
    world.clock.advance(900 + RUN_GRACE_SECONDS)  # the remediation's timeout and the grace
    world.compute.errors["cancel_run"] = [Transient("ARM is unavailable")]
    store = counted_store(world)

    world.runner.advance(running.id)

    ended = world.store.get(running.id)
    assert ended.status == jobs.TIMED_OUT and "it may still run" in ended.history[-1].reason
    assert store.calls["release_lease"] == 0
    assert_holds_to_its_bound(world, ended)
    world.runner.advance(running.id)  # a redelivered message releases nothing either
    assert store.calls["release_lease"] == 0


def test_a_timeout_whose_run_command_is_deleted_frees_the_vm(world: World) -> None:
    running = _running(world)
    world.clock.advance(900 + RUN_GRACE_SECONDS)

    world.runner.advance(running.id)

    ended = world.store.get(running.id)
    assert ended.status == jobs.TIMED_OUT and "mayStillRun" not in ended.run
    assert world.store.lease_holder(ended.target_key, world.clock.now()) is None


def test_a_job_given_up_while_its_run_cannot_be_stopped_keeps_the_vm(world: World) -> None:
    from autoremediation.errors import Transient

    running = _running(world)
    world.compute.errors["cancel_run"] = [Transient("ARM is unavailable")]

    ended = world.runner.give_up(running.id, "the queue gave up on its message")

    assert ended.status == jobs.FAILED and "outcome is unknown" in ended.history[-1].reason
    assert_holds_to_its_bound(world, world.store.get(running.id))


def test_an_operator_cancel_whose_stop_failed_keeps_the_vm(world: World) -> None:
    from autoremediation import operations

    running = _running(world)
    saved = operations.cancel(
        world.store, world.clock, running.id, actor="alice", stop_run=lambda job: ("could not delete", False)
    )

    assert saved.status == jobs.CANCELLED
    assert_holds_to_its_bound(world, saved)


def test_an_operator_cancel_that_stopped_the_run_frees_the_vm(world: World) -> None:
    from autoremediation import operations

    running = _running(world)
    saved = operations.cancel(
        world.store, world.clock, running.id, actor="alice", stop_run=lambda job: ("deleted", True)
    )

    assert "mayStillRun" not in saved.run
    assert world.store.lease_holder(saved.target_key, world.clock.now()) is None
