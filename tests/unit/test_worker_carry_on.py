"""One message carries its job from planned to a started run: no queue round trip, no re-read, one write
per step, and the first PUT does not look for an earlier run command. Crash-safe as single steps were."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from autoremediation import operations, worker
from autoremediation.runner import CLAIM_GRACE_SECONDS
from autoremediation.worker import handle
from tests.helpers.counting import CountedCalls
from tests.unit.test_runner import World


@pytest.fixture
def world(tmp_path: Path) -> World:
    world = World(tmp_path)
    world.compute.polls_until_done = 10**9  # the run goes on: the message ends at "running"
    return world


def _count(world: World) -> CountedCalls:
    counted = CountedCalls(world.store)
    world.runner.store = counted  # type: ignore[assignment]
    return counted


def test_one_message_takes_a_planned_job_to_a_running_run_command(world: World) -> None:
    job_id = world.job(world.manual("free-disk-space")).id
    for message in world.queue.receive():
        world.queue.delete(message)  # the intake's message, taken by hand here
    store = _count(world)

    step = handle(world.runner, world.queue, job_id)

    assert step.job.status == "running"
    assert store.calls["get"] == 1  # the job is read once; the dispatch step uses what was written
    assert store.calls["update"] == 2  # dispatching (with the claim), running: one write per step
    assert [r.may_exist for r in world.compute.requests] == [False]
    messages = world.queue.receive()
    assert [m.job_id for m in messages] == []  # the next message is for the first poll, later
    world.clock.advance(step.requeue_after or 0)
    assert [m.job_id for m in world.queue.receive()] == [job_id]


def test_a_control_plane_step_gets_its_own_claim_write_before_the_put(world: World) -> None:
    job_id = world.job(world.manual("restore-management-access")).id
    world.runner.advance(job_id)  # planned -> awaiting approval
    operations.approve(world.store, world.queue, world.clock, job_id, actor="alice")
    world.runner.advance(job_id)  # approved -> dispatching
    dispatching = world.store.get(job_id)
    assert dispatching.status == "dispatching"
    assert "claimedAt" not in dispatching.run  # the NSG step comes between: no claim yet

    step = world.runner.advance(job_id)

    assert step.job.status == "running" and step.job.run.get("claimedAt")
    assert world.cp_calls and [r.may_exist for r in world.compute.requests] == [False]


def test_a_step_that_is_not_now_ends_the_message(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    job_id = world.job(world.manual("free-disk-space")).id
    steps: list[float | None] = []
    advance = world.runner.advance

    def recorded(job_id: str, **kw: Any) -> Any:
        step = advance(job_id, **kw)
        steps.append(step.requeue_after)
        return step

    monkeypatch.setattr(world.runner, "advance", recorded)
    handle(world.runner, world.queue, job_id)
    assert steps[0] == 0 and steps[-1] not in (0, None) and len(steps) == 2


def test_a_job_that_keeps_asking_for_now_is_carried_a_bounded_number_of_steps(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = world.job(world.manual("free-disk-space")).id
    world.runner.settings = world.runner.settings.__class__(
        **{**world.runner.settings.__dict__, "poll_seconds": 0.0}
    )
    calls = Counter[str]()
    advance = world.runner.advance

    def recorded(job_id: str, **kw: Any) -> Any:
        calls["advance"] += 1
        return advance(job_id, **kw)

    monkeypatch.setattr(world.runner, "advance", recorded)
    step = handle(world.runner, world.queue, job_id)
    assert calls["advance"] == worker.MAX_STEPS_PER_MESSAGE
    assert step.requeue_after == 0 and step.job.status == "running"


def test_a_crash_between_the_dispatching_write_and_the_put_is_carried_on_by_the_redelivery(
    world: World,
) -> None:
    job_id = world.job(world.manual("free-disk-space")).id

    class Crash(Exception):
        pass

    def dies(request: Any) -> Any:
        raise Crash()

    real_start = world.compute.start_run
    world.compute.start_run = dies  # type: ignore[method-assign]
    with pytest.raises(Crash):
        handle(world.runner, world.queue, job_id)
    assert world.store.get(job_id).status == "dispatching"
    world.compute.start_run = real_start  # type: ignore[method-assign]

    # The message comes back: the claim was made by an execution that may still send its PUT, so the
    # step waits; once that cannot be so any more, it takes the claim over.
    waiting = handle(world.runner, world.queue, job_id, dequeue_count=2)
    assert waiting.job.status == "dispatching" and waiting.requeue_after == CLAIM_GRACE_SECONDS
    assert world.compute.calls["start_run"] == 0  # nothing sent while the claim may still be live
    world.clock.advance(CLAIM_GRACE_SECONDS)
    step = handle(world.runner, world.queue, job_id, dequeue_count=3)

    assert step.job.status == "running"
    # The redelivered step did not make the claim it found: it looks for a run command first.
    assert [r.may_exist for r in world.compute.requests] == [True]
    assert world.compute.calls["start_run"] == 1 and sum(world.compute.executions.values()) == 1


def test_a_wait_longer_than_a_queue_message_can_be_delayed_is_sent_as_the_longest_delay(world: World) -> None:
    # A step that asks for 30 days (a poll interval, a throttling answer) still gets its message: delayed
    # as long as Azure's queue allows, 7 days less a second, where the step waits again.
    from autoremediation.ports import LONGEST_QUEUE_DELAY_SECONDS
    from autoremediation.runner import Step

    job = world.job(world.manual("free-disk-space"))
    for message in world.queue.receive():
        world.queue.delete(message)
    world.runner.advance = lambda job_id, after=None: Step(job, 30 * 24 * 3600.0)  # type: ignore[method-assign]

    handle(world.runner, world.queue, job.id)

    assert world.queue.due_in() == LONGEST_QUEUE_DELAY_SECONDS == 7 * 24 * 3600 - 1
