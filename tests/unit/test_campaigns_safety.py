"""Campaign safety: the cap under duplicate releases, interrupted creation, orphan jobs."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from autoremediation import campaigns, jobs, sweeper
from autoremediation.campaign_drive import drive
from autoremediation.errors import InvalidInput
from autoremediation.jobs import Job
from autoremediation.resources import normalize
from autoremediation.store.memory_queue import InProcessQueue
from tests.helpers.fakes import vm_facts, vm_id
from tests.unit.test_campaigns_support import CampaignWorld, Crash, make_compute, request, vm_names


def test_a_redelivered_end_sends_the_same_successor_and_the_cap_holds(tmp_path: Path) -> None:
    world = CampaignWorld(tmp_path, make_compute(6))
    started = campaigns.start_campaign(world.services, request(maxConcurrency=2), actor="alice")
    store, queue = world.services.store, world.services.queue
    assert isinstance(queue, InProcessQueue)
    first = min(store.list(campaign_id=started["id"]), key=lambda j: j.campaign_index or 0)
    ended = store.update(jobs.transition(first, jobs.SKIPPED, now=world.clock.now(), actor="t", reason="t"))

    for _ in range(3):  # the message that ended it, delivered three times
        campaigns.on_job_finished(world.services, ended)
    status = drive(world.services, started["id"])

    assert status["status"] == campaigns.COMPLETED
    assert (status["counts"]["succeeded"], status["counts"]["skipped"]) == (5, 1)
    assert world.compute.peak <= 2
    assert set(world.compute.runs_per_vm().values()) == {1}
    assert set(world.compute.executions.values()) == {1}


class CrashAfterCreates:
    """The store, with the process dying after ``n`` jobs were created."""

    def __init__(self, inner: Any, n: int) -> None:
        self.inner, self.left = inner, n

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def create(self, job: Job) -> Any:
        if self.left == 0:
            raise Crash("process killed while creating the campaign's jobs")
        self.left -= 1
        return self.inner.create(job)

    def create_many(self, new_jobs: Any) -> Any:
        # As on Table Storage, where a campaign's inserts are separate requests: some may be made.
        return [self.create(job) for job in new_jobs]


def interrupted(world: CampaignWorld, campaign_id: str, made: int) -> None:
    store = world.services.store
    world.services.store = CrashAfterCreates(store, made)  # type: ignore[assignment]
    with pytest.raises(Crash):
        campaigns.start_campaign(world.services, request(id=campaign_id, maxConcurrency=2), actor="alice")
    world.services.store = store


def test_an_interrupted_creation_releases_nothing_and_a_retried_request_finishes_it(tmp_path: Path) -> None:
    world = CampaignWorld(tmp_path, make_compute(6))
    interrupted(world, "c-retry", made=3)
    record = world.services.store.get_campaign("c-retry")
    assert record["status"] == campaigns.CREATING
    assert campaigns.tick(world.services, "c-retry")["status"] == campaigns.CREATING
    queue = world.services.queue
    assert isinstance(queue, InProcessQueue) and len(queue) == 0  # nothing runs half-made

    again = campaigns.start_campaign(world.services, request(id="c-retry", maxConcurrency=2), actor="alice")
    assert again["status"] == campaigns.RUNNING
    assert again["counts"]["total"] == 6
    status = drive(world.services, "c-retry")
    assert status["status"] == campaigns.COMPLETED
    assert status["counts"]["succeeded"] == 6
    assert set(world.compute.runs_per_vm().values()) == {1}


@pytest.mark.parametrize("change", ["a VM created", "a VM deleted", "a VM not yet made replaced"])
def test_a_retry_whose_targets_changed_is_refused_and_changes_nothing(tmp_path: Path, change: str) -> None:
    world = CampaignWorld(tmp_path, make_compute(6))
    interrupted(world, "c-moved", made=3)
    if change == "a VM created":
        world.compute.add(vm_facts("vm000a"))  # sorts between vm000 and vm001: every later job moves
    elif change == "a VM deleted":
        del world.compute.vms[normalize(vm_id("vm001"))]
    else:
        # Same count, every made job at its place; but job 1 releases vm003's job, never to be made.
        del world.compute.vms[normalize(vm_id("vm003"))]
        world.compute.add(vm_facts("vm003a"))
    before = {job.id: job for job in world.services.store.list(campaign_id="c-moved")}

    with pytest.raises(InvalidInput, match="was being created for 6 VM"):
        campaigns.start_campaign(world.services, request(id="c-moved", maxConcurrency=2), actor="alice")

    assert world.services.store.get_campaign("c-moved")["status"] == campaigns.CREATING
    assert {job.id: job for job in world.services.store.list(campaign_id="c-moved")} == before
    queue = world.services.queue
    assert isinstance(queue, InProcessQueue) and len(queue) == 0
    world.clock.advance(campaigns.CREATION_TIMEOUT.total_seconds() + 1)
    assert campaigns.tick(world.services, "c-moved")["status"] == campaigns.STOPPED
    assert world.compute.requests == []


def test_a_retry_with_the_same_vms_in_another_order_of_ids_finishes_the_creation(tmp_path: Path) -> None:
    world = CampaignWorld(tmp_path, make_compute(4))
    ids = [vm_id(name) for name in vm_names(4)]
    store = world.services.store
    world.services.store = CrashAfterCreates(store, 2)  # type: ignore[assignment]
    with pytest.raises(Crash):
        campaigns.start_campaign(
            world.services, request(id="c-ids", targets={"vmIds": ids}, maxConcurrency=2), actor="a"
        )
    world.services.store = store

    shuffled = [ids[2].upper(), ids[0], ids[3], ids[1] + "/"]  # the same VMs, as a client may send them
    again = campaigns.start_campaign(
        world.services, request(id="c-ids", targets={"vmIds": shuffled}, maxConcurrency=2), actor="a"
    )

    assert again["status"] == campaigns.RUNNING and again["counts"]["total"] == 4


def test_an_abandoned_creation_is_stopped_and_its_jobs_cancelled(tmp_path: Path) -> None:
    world = CampaignWorld(tmp_path, make_compute(6))
    interrupted(world, "c-gone", made=2)
    world.clock.advance(campaigns.CREATION_TIMEOUT.total_seconds() + 1)

    result = campaigns.tick(world.services, "c-gone")

    assert result["status"] == campaigns.STOPPED
    assert "creation was interrupted after 2 of 6 jobs" in result["stopReason"]
    left = world.services.store.list(campaign_id="c-gone")
    assert len(left) == 2 and {j.status for j in left} == {jobs.CANCELLED}
    assert world.compute.requests == []


def test_the_sweeper_cancels_orphan_jobs_and_still_ticks_later_campaigns(tmp_path: Path) -> None:
    world = CampaignWorld(tmp_path, make_compute(4))
    store = world.services.store
    now = world.clock.now()
    orphan = jobs.new_job(
        idempotency_key="k-orphan",
        remediation="free-disk-space",
        condition="disk-full",
        target=vm_id("vm000"),
        parameters={},
        now=now,
        campaign_id="campaign-0orphan",
    )
    store.create(orphan)
    real = campaigns.start_campaign(world.services, request(id="campaign-zreal", maxConcurrency=1), actor="a")
    broken_ticks: list[str] = []

    def tick(campaign_id: str) -> object:
        if campaign_id == "campaign-1broken":
            broken_ticks.append(campaign_id)
            raise RuntimeError("a record the tick cannot read")
        return campaigns.tick(world.services, campaign_id)

    store.create(
        jobs.new_job(
            idempotency_key="k-broken",
            remediation="free-disk-space",
            condition="disk-full",
            target=vm_id("vm001"),
            parameters={},
            now=now,
            campaign_id="campaign-1broken",
        )
    )
    store.create_campaign({"id": "campaign-1broken", "status": campaigns.RUNNING})

    result = sweeper.tick_campaigns(store, tick, now + timedelta(minutes=5))

    assert result.ticked == (real["id"],)
    assert result.orphans_cancelled == (orphan.id,)
    assert broken_ticks == ["campaign-1broken"]
    assert len(result.errors) == 1 and "campaign-1broken" in result.errors[0]
    cancelled = store.get(orphan.id)
    assert cancelled.status == jobs.CANCELLED
    assert "does not exist" in cancelled.history[-1].reason
    # A second sweep finds nothing left to cancel for the orphan.
    assert sweeper.tick_campaigns(store, tick, now).orphans_cancelled == ()
