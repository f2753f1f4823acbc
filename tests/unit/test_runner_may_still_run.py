"""A job whose script may still run on its VM (``run.mayStillRun``) never frees the VM early: not even
when it ends close to its lease's bound.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from autoremediation import jobs
from autoremediation.errors import Transient
from autoremediation.jobs import Job
from autoremediation.step_common import LEASE_END_MARGIN_SECONDS
from tests.helpers.counting import CountedCalls
from tests.unit.test_runner import World

COOLDOWN = timedelta(minutes=60)  # free-disk-space in the test catalog


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


# -- a job that may still run never frees its VM early -------------------------------------------


def _running_near_its_bound(world: World, seconds_left: float) -> Job:
    world.compute.polls_until_done = 10**9
    job = world.job(world.manual("free-disk-space", request_id="r-1"))
    world.runner.advance(job.id)  # the lease is taken
    world.runner.advance(job.id)  # dispatched
    running = world.store.get(job.id)
    assert running.status == jobs.RUNNING
    until = world.clock.now() + timedelta(seconds=seconds_left)
    return world.store.update(replace(running, run={**running.run, "leaseUntil": until.isoformat()}))


def test_a_job_that_may_still_run_keeps_its_vm_even_close_to_its_leases_bound(world: World) -> None:
    running = _running_near_its_bound(world, LEASE_END_MARGIN_SECONDS - 1)
    world.compute.errors["cancel_run"] = [Transient("ARM is unavailable")]
    store = CountedCalls(world.store)
    world.runner.store = store  # type: ignore[assignment,unused-ignore]

    world.runner.give_up(running.id, "the queue gave up on its message")
    world.runner.advance(running.id)  # a redelivered message releases nothing either

    assert store.calls["release_lease"] == 0
    ended = world.store.get(running.id)
    assert ended.run.get("mayStillRun") is True
    now = world.clock.now()
    assert world.store.lease_holder(ended.target_key, now) == ended.id
    assert not world.store.acquire_lease(
        ended.target_key, "job-other", 600, now, remediation="collect-diagnostics"
    )


def test_a_job_that_may_still_run_past_its_leases_bound_records_its_run(world: World) -> None:
    running = _running_near_its_bound(world, -(LEASE_END_MARGIN_SECONDS + 1))
    world.compute.errors["cancel_run"] = [Transient("ARM is unavailable")]
    store = CountedCalls(world.store)
    world.runner.store = store  # type: ignore[assignment,unused-ignore]

    ended = world.runner.give_up(running.id, "the queue gave up on its message")

    assert ended.run.get("mayStillRun") is True
    assert store.calls["release_lease"] == 1  # the lease had lapsed: the release frees nothing held
    now = world.clock.now()
    facts = world.store.lease_facts(ended.target_key, "free-disk-space", now, runs_since=now - COOLDOWN)
    assert facts.last_run_ended_at == now
