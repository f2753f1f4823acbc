"""The per-VM lease under a long run: it outlives the run without any renewal, and renewals keep it held
for as long as the run is polled. A lease that lapses lets a second job start on a VM mid-remediation."""

from __future__ import annotations

from pathlib import Path

from autoremediation.runner import CLAIM_GRACE_SECONDS, MAX_BACKOFF_SECONDS, RUN_GRACE_SECONDS, Runner
from tests.helpers.fakes import vm_facts
from tests.unit.test_runner import World

RUN_TIMEOUT = 900  # free-disk-space in the test catalog


def started(world: World, request_id: str = "r-long") -> str:
    world.compute.polls_until_done = 10**9
    job_id = world.job(world.manual("free-disk-space", request_id=request_id)).id
    world.runner.advance(job_id)  # planned -> dispatching: the lease is taken
    world.runner.advance(job_id)  # -> running
    return job_id


def test_the_lease_outlives_the_run_timeout_and_the_longest_back_off_without_a_renewal(
    tmp_path: Path,
) -> None:
    world = World(tmp_path, lease_seconds=30)  # the setting is a floor, never what a run gets
    job_id = started(world)
    key = world.store.get(job_id).target_key

    world.clock.advance(RUN_TIMEOUT + RUN_GRACE_SECONDS + MAX_BACKOFF_SECONDS - 1)

    assert world.store.lease_holder(key, world.clock.now()) == job_id


def test_a_longer_lease_setting_wins_over_the_run_timeout(tmp_path: Path) -> None:
    world = World(tmp_path, lease_seconds=4 * 3600)
    job_id = started(world)
    key = world.store.get(job_id).target_key

    world.clock.advance(3 * 3600)

    assert world.store.lease_holder(key, world.clock.now()) == job_id


def test_a_poll_once_a_third_of_the_lease_is_used_renews_it(tmp_path: Path) -> None:
    world = World(tmp_path, lease_seconds=30)
    job_id = started(world)
    key = world.store.get(job_id).target_key
    ttl = RUN_TIMEOUT + RUN_GRACE_SECONDS + MAX_BACKOFF_SECONDS

    world.clock.advance(0.34 * ttl)
    world.runner.advance(job_id)  # a poll: the run goes on
    renewed_at = world.clock.now()
    world.clock.advance(0.96 * ttl)  # 1.3 leases after dispatch, without another poll

    assert world.store.get(job_id).run["leaseAt"] == renewed_at.isoformat()
    assert world.store.lease_holder(key, world.clock.now()) == job_id


def test_a_poll_early_in_the_lease_does_not_write_a_renewal(tmp_path: Path) -> None:
    world = World(tmp_path, lease_seconds=30)
    job_id = started(world)
    taken = world.store.get(job_id).run["leaseAt"]

    world.clock.advance(60)
    world.runner.advance(job_id)

    assert world.store.get(job_id).run["leaseAt"] == taken


def test_a_first_dispatch_does_not_look_for_its_run_but_one_after_a_claim_does(tmp_path: Path) -> None:
    from dataclasses import replace

    world = World(tmp_path)
    fresh = world.job(world.manual("free-disk-space", request_id="r-fresh")).id
    step = world.runner.advance(fresh)  # planned -> dispatching, with the claim
    assert world.store.get(fresh).run.get("claimedAt")
    world.runner.advance(fresh, after=step)  # the same execution sends the run
    world.compute.add(vm_facts("vm2"))
    crashed = world.job(world.manual("free-disk-space", target="vm2", request_id="r-crashed")).id
    world.runner.advance(crashed)  # planned -> dispatching
    # A worker claimed this dispatch and died: it may have sent the PUT before it did.
    job = world.store.get(crashed)
    world.store.update(replace(job, run={**job.run, "claimedAt": world.clock.now().isoformat()}))
    world.clock.advance(CLAIM_GRACE_SECONDS)
    world.runner.advance(crashed)

    assert [r.may_exist for r in world.compute.requests] == [False, True]


def other_instance(world: World) -> Runner:
    """Another Function instance: the same store, ARM and clock, nothing in memory shared."""
    return Runner(
        catalog=world.catalog,
        store=world.store,
        compute=world.compute,
        clock=world.clock,
        settings=world.settings,
    )


def test_a_duplicate_that_finds_a_fresh_claim_leaves_the_dispatch_to_its_claimant(tmp_path: Path) -> None:
    world = World(tmp_path)
    job_id = world.job(world.manual("free-disk-space", request_id="r-dup")).id
    claimed = world.runner.advance(job_id)  # planned -> dispatching with the claim; the PUT is next

    duplicate = other_instance(world).advance(job_id)  # a second message, read right after the claim

    assert duplicate.job.status == "dispatching" and duplicate.requeue_after == CLAIM_GRACE_SECONDS
    assert world.compute.calls["start_run"] == 0  # it sent nothing
    step = world.runner.advance(job_id, after=claimed)
    assert step.job.status == "running"
    world.drain()
    assert world.store.get(job_id).status == "succeeded"
    assert [r.may_exist for r in world.compute.requests] == [False]
    assert sum(world.compute.executions.values()) == 1


def test_a_claim_whose_maker_died_is_taken_over_after_the_grace_looking_for_the_run_first(
    tmp_path: Path,
) -> None:
    world = World(tmp_path)
    job_id = world.job(world.manual("free-disk-space", request_id="r-died")).id
    world.runner.advance(job_id)  # planned -> dispatching with the claim; this instance dies before the PUT
    survivor = other_instance(world)

    assert survivor.advance(job_id).requeue_after == CLAIM_GRACE_SECONDS  # the redelivery, at once
    world.clock.advance(CLAIM_GRACE_SECONDS)
    step = survivor.advance(job_id)  # later: the claimant is gone

    assert step.job.status == "running"
    assert [r.may_exist for r in world.compute.requests] == [True]
