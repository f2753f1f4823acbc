"""A campaign job that ends carries the job it releases on in the same execution (``handle_message``),
up to its first poll, instead of sending it a message: the campaign's concurrency, one run per VM and
crash safety hold as with a message per released job."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from autoremediation import campaigns, jobs
from autoremediation.store.memory_queue import InProcessQueue
from autoremediation.worker import MAX_RELEASED_PER_MESSAGE, handle_message
from tests.helpers.fakes import vm_id
from tests.unit.test_campaigns_support import CampaignWorld, Crash, make_compute, request, vm_names


def _queue(world: CampaignWorld) -> InProcessQueue:
    queue = world.services.queue
    assert isinstance(queue, InProcessQueue)
    return queue


def _work(world: CampaignWorld, campaign_id: str, on_crash: Callable[[], None] | None = None) -> int:
    """The queue trigger, one message at a time: a crash leaves the message to come back after its
    visibility timeout, as the host's would. Returns how many messages were handled."""
    queue = _queue(world)
    handled = 0
    for _ in range(1000):
        if world.services.store.get_campaign(campaign_id)["status"] in campaigns.FINAL:
            return handled
        due = queue.due_in()
        assert due is not None, "the campaign stalled with no message left"
        world.clock.advance(due)
        for message in queue.receive(max_messages=1, visibility_timeout=30):
            handled += 1
            try:
                handle_message(world.services, message.job_id, dequeue_count=message.dequeue_count)
            except Crash:
                if on_crash is not None:
                    on_crash()
                continue
            queue.delete(message)
    raise AssertionError("the campaign did not end")


def test_a_released_job_needs_no_message_of_its_own(tmp_path: Path) -> None:
    world = CampaignWorld(tmp_path, make_compute(7))
    started = campaigns.start_campaign(world.services, request(maxConcurrency=2), actor="alice")

    handled = _work(world, started["id"])

    status = campaigns.campaign_status(world.services, started["id"])
    assert status["status"] == "completed" and status["counts"]["succeeded"] == 7
    assert world.compute.peak == 2
    assert set(world.compute.runs_per_vm().values()) == {1}
    # Two polls per job (a run is done at its second look), and a message of its own only for the two
    # the start released: each other job was dispatched by the execution that ended the one before it.
    assert handled == 2 + 2 * 7


def test_a_worker_killed_carrying_a_released_job_on_leaves_it_to_the_message_that_comes_back(
    tmp_path: Path,
) -> None:
    # The 3rd script start is a released job's, carried on: the worker dies right after its PUT.
    world = CampaignWorld(tmp_path, make_compute(6, crash_on_start=3))
    started = campaigns.start_campaign(world.services, request(maxConcurrency=2), actor="alice")
    crashes: list[int] = []

    _work(world, started["id"], on_crash=lambda: crashes.append(1))

    assert crashes == [1]
    status = campaigns.campaign_status(world.services, started["id"])
    assert status["status"] == "completed" and status["counts"]["succeeded"] == 6
    runs = world.compute.runs_per_vm()
    assert sorted(runs) == sorted(vm_id(n) for n in vm_names(6)) and set(runs.values()) == {1}
    assert sum(world.compute.executions.values()) == 6
    assert world.compute.peak <= 2


def test_a_released_job_whose_step_fails_gets_its_own_message(tmp_path: Path) -> None:
    world = CampaignWorld(tmp_path, make_compute(2))
    started = campaigns.start_campaign(world.services, request(maxConcurrency=1), actor="alice")
    queue = _queue(world)
    first, second = sorted(world.services.store.list(campaign_id=started["id"]), key=lambda j: j.target_key)
    for look in range(3):  # the first job: dispatched, then two polls, the last one sees its end
        world.clock.advance(queue.due_in() or 0)
        (message,) = queue.receive(max_messages=1)
        assert message.job_id == first.id
        if look == 2:  # the released job's first step will fail
            world.compute.errors["get_vm"] = [RuntimeError("ARM client crashed")]
        handle_message(world.services, message.job_id)  # never raises for the released job
        queue.delete(message)
    assert world.services.store.get(first.id).status == jobs.SUCCEEDED
    assert world.services.store.get(second.id).status == jobs.PLANNED
    (message,) = queue.receive(max_messages=1)  # its own message, due now
    assert message.job_id == second.id and message.dequeue_count == 1

    handle_message(world.services, message.job_id)
    assert world.services.store.get(second.id).status == jobs.RUNNING


def test_a_run_of_jobs_that_end_at_once_is_carried_on_only_so_far(tmp_path: Path) -> None:
    world = CampaignWorld(tmp_path, make_compute(8))
    started = campaigns.start_campaign(world.services, request(maxConcurrency=1), actor="alice")
    world.compute.vms.clear()  # every VM is gone: each job is skipped by its first step
    queue = _queue(world)
    (message,) = queue.receive(max_messages=1)

    handle_message(world.services, message.job_id)
    queue.delete(message)

    ended = [j for j in world.services.store.list(campaign_id=started["id"]) if j.terminal]
    assert len(ended) == 1 + MAX_RELEASED_PER_MESSAGE
    assert all(j.status == jobs.SKIPPED for j in ended)
    # The job after the last one carried on got its message: the chain goes on from there.
    (nxt,) = queue.receive(max_messages=1)
    assert world.services.store.get(nxt.job_id).status == jobs.PLANNED
