"""A campaign job whose result ends it releases the next job before its run command's cleanup, once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from autoremediation import campaigns, jobs
from autoremediation.campaign_drive import drive
from autoremediation.errors import Transient
from autoremediation.jobs import Job
from autoremediation.worker import handle
from tests.helpers.counting import CountedCalls
from tests.unit.test_campaigns_support import CampaignWorld, Crash, make_compute, request


def ordered(world: CampaignWorld, campaign_id: str) -> list[Job]:
    return sorted(world.services.store.list(campaign_id=campaign_id), key=lambda j: j.campaign_index or 0)


def record_events(world: CampaignWorld) -> list[tuple[str, str]]:
    """What the campaign asks of the queue (a message due now: a release), of ARM's run command cleanup
    and of the VMs' leases, in order."""
    events: list[tuple[str, str]] = []
    queue, compute = world.services.queue, world.compute
    send, cancel_run = queue.send, compute.cancel_run

    def sent(job_id: str, delay_seconds: float = 0) -> None:
        events.append(("send" if delay_seconds == 0 else "poll later", job_id))
        send(job_id, delay_seconds)

    def deleted(vm_id: str, run_name: str) -> None:
        events.append(("delete", run_name))
        cancel_run(vm_id, run_name)

    store = world.services.store
    release_lease = store.release_lease

    def released(key: str, holder: str, **kwargs: Any) -> None:
        events.append(("lease back", holder))
        release_lease(key, holder, **kwargs)

    queue.send = sent  # type: ignore[method-assign]
    compute.cancel_run = deleted  # type: ignore[method-assign]
    store.release_lease = released  # type: ignore[method-assign]
    return events


def test_the_next_job_is_released_before_the_lease_is_given_back_and_the_run_deleted(tmp_path: Path) -> None:
    world = CampaignWorld(tmp_path, make_compute(3))
    events = record_events(world)
    started = campaigns.start_campaign(world.services, request(maxConcurrency=1, maxErrors=0), actor="a")

    status = drive(world.services, started["id"])

    first, second, third = ordered(world, started["id"])
    assert status["status"] == campaigns.COMPLETED
    around = [("send", second.id), ("delete", first.run["name"])]
    assert [e for e in events if e in around] == around
    # Each job ended while its lease was surely its own: its end freed the VM, with no release.
    assert not [e for e in events if e[0] == "lease back"]
    now = world.clock.now()
    assert all(world.services.store.lease_holder(j.target_key, now) is None for j in (first, second, third))
    assert events.index(("send", third.id)) < events.index(("delete", second.run["name"]))
    assert world.compute.cancelled == [first.run["name"], second.run["name"], third.run["name"]]


def test_each_job_is_released_once_and_its_end_reads_the_record_once(tmp_path: Path) -> None:
    world = CampaignWorld(tmp_path, make_compute(6))
    counting = CountedCalls(world.services.store)
    world.services.store = counting  # type: ignore[assignment]
    events = record_events(world)
    started = campaigns.start_campaign(world.services, request(maxConcurrency=2, maxErrors=0), actor="a")
    reads_at_start = counting.calls["get_campaign"]

    status = drive(world.services, started["id"])

    chain = ordered(world, started["id"])
    assert status["counts"]["succeeded"] == 6
    released = sorted(job_id for kind, job_id in events if kind == "send")
    # The heads by the start, every other job by the job that freed its slot: once each.
    assert released == sorted(job.id for job in chain)
    # One read of the record per ended job (in its step), and the driver's own look at its start and end.
    assert counting.calls["get_campaign"] - reads_at_start == len(chain) + 2


def test_a_failure_past_the_budget_releases_nothing_and_the_run_is_still_deleted(tmp_path: Path) -> None:
    compute = make_compute(4)
    compute.failing = {"vm000"}
    world = CampaignWorld(tmp_path, compute)
    events = record_events(world)
    started = campaigns.start_campaign(world.services, request(maxConcurrency=1, maxErrors=0), actor="a")

    status = drive(world.services, started["id"])

    first, second, *_ = ordered(world, started["id"])
    assert status["status"] == campaigns.STOPPED
    assert first.status == jobs.FAILED and world.compute.cancelled == [first.run["name"]]
    assert ("send", second.id) not in events
    assert world.compute.runs_per_vm() == {first.target: 1}


def test_when_the_release_fails_in_the_step_the_driver_releases_after_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    world = CampaignWorld(tmp_path, make_compute(2))
    started = campaigns.start_campaign(world.services, request(maxConcurrency=1, maxErrors=0), actor="a")
    first, second = ordered(world, started["id"])
    events = record_events(world)
    store = world.services.store
    real_read = store.get_campaign
    reads: list[str] = []

    def flaky(campaign_id: str) -> dict[str, Any]:
        reads.append(campaign_id)
        if len(reads) == 2:  # the driver's own look at the start, then the step's: refused
            raise Transient("storage answered 503")
        return real_read(campaign_id)

    store.get_campaign = flaky  # type: ignore[method-assign]
    status = drive(world.services, started["id"])

    first, second = ordered(world, started["id"])
    assert status["status"] == campaigns.COMPLETED
    # The step's release failed: the look after the step (after the DELETE) released the next job, once.
    around = [("delete", first.run["name"]), ("send", second.id)]
    assert [e for e in events if e in around] == around
    assert "sent again" not in caplog.text  # not the repair's doing
    assert world.compute.runs_per_vm() == {first.target: 1, second.target: 1}


def test_a_crash_between_the_release_and_the_cleanup_loses_no_job(tmp_path: Path) -> None:
    world = CampaignWorld(tmp_path, make_compute(3))
    started = campaigns.start_campaign(world.services, request(maxConcurrency=1, maxErrors=0), actor="a")
    first, second, third = ordered(world, started["id"])

    def die(vm_id: str, run_name: str) -> None:
        raise Crash("worker killed before the run command's DELETE")

    world.compute.cancel_run = die  # type: ignore[method-assign]
    with pytest.raises(Crash):
        drive(world.services, started["id"])
    assert world.services.store.get(first.id).status == jobs.SUCCEEDED
    del world.compute.cancel_run  # the fake's own again

    world.services = world.new_services()  # a new process: its queue lost every message
    status = campaigns.resume(world.services, started["id"])
    status = drive(world.services, started["id"])

    assert status["status"] == campaigns.COMPLETED
    assert [world.services.store.get(j.id).status for j in (second, third)] == [jobs.SUCCEEDED] * 2
    assert world.compute.runs_per_vm() == {job.target: 1 for job in (first, second, third)}


def test_a_crash_right_after_the_release_leaves_only_the_cleanup_to_the_redelivered_message(
    tmp_path: Path,
) -> None:
    world = CampaignWorld(tmp_path, make_compute(2))
    started = campaigns.start_campaign(world.services, request(maxConcurrency=1, maxErrors=0), actor="a")
    first, second = ordered(world, started["id"])
    queue, store = world.services.queue, world.services.store
    send = queue.send

    def send_then_die(job_id: str, delay_seconds: float = 0) -> None:
        send(job_id, delay_seconds)
        if job_id == second.id:
            raise Crash("worker killed right after it released the next job")

    queue.send = send_then_die  # type: ignore[method-assign]
    with pytest.raises(Crash):
        drive(world.services, started["id"])
    del queue.send
    assert store.get(first.id).status == jobs.SUCCEEDED
    # Its end, written while its lease was surely its own, freed the VM: nothing for the message to give.
    assert store.lease_holder(first.target_key, world.clock.now()) is None
    events = record_events(world)

    handle(world.services.runner, queue, first.id)  # the message of the step that died, delivered again
    campaigns.on_job_finished(world.services, store.get(first.id))  # and what the worker does after it

    assert ("lease back", first.id) not in events
    assert world.compute.cancelled == [store.get(first.id).run["name"]]  # and its run command goes
    assert sorted(m.job_id for m in queue.receive(max_messages=10)) == [second.id, second.id]
