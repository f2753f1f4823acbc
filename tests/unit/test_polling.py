from __future__ import annotations

from pathlib import Path

import pytest

from autoremediation.polling import RunDurations, next_poll_delay
from autoremediation.ports import RunRequest, RunStatus
from tests.helpers.fakes import vm_facts
from tests.unit.test_runner import World


def test_durations_need_a_few_samples_and_wait_for_nine_runs_in_ten() -> None:
    durations = RunDurations(keep=10, minimum_samples=3)
    durations.record("a", 10)
    durations.record("a", 30)
    assert durations.expected("a") is None
    durations.record("a", 20)
    durations.record("b", 99)
    assert durations.expected("a") == 30  # three runs: the first look waits for the slowest
    for seconds in (1, 2, 3, 4, 5, 6, 7):
        durations.record("a", seconds)
    # Ten runs: 1..7, 10, 20, 30. Nine in ten had ended by 20 s; the median (6.5) would look too early.
    assert durations.expected("a") == 20
    durations.record("a", -1)  # a clock jump is not a duration
    assert durations.expected("a") == 20
    for _ in range(10):
        durations.record("a", 50)
    assert durations.expected("a") == 50  # only the last ten count


def test_runner_polls_soon_then_learns_the_usual_run_time(tmp_path: Path) -> None:
    world = World(tmp_path)  # poll_seconds=10; the fake runs last 30 s by their own timestamps
    result = world.alert("first")
    job_id = world.job(result).id
    world.runner.advance(job_id)
    after_dispatch = world.runner.advance(job_id)
    assert after_dispatch.requeue_after == 2.5  # no history: a quarter of the base interval
    world.drain()
    for n in range(3):
        world.compute.add(vm_facts(f"vm-{n}"))
        world.alert(f"a-{n}", target=f"vm-{n}")
        world.drain()
    nxt = world.alert("next", target="vm-0")
    world.clock.advance(2 * 3600)
    next_id = world.job(nxt).id
    world.runner.advance(next_id)
    step = world.runner.advance(next_id)
    assert step.requeue_after == pytest.approx(30.15)  # just (0.5 %) after the 30 s the last runs took


def test_the_first_look_counts_from_the_dispatch_not_from_a_slow_put_answer(tmp_path: Path) -> None:
    world = World(tmp_path)  # the fake's runs last 30 s by their own timestamps
    for n in range(3):
        world.compute.add(vm_facts(f"vm-{n}"))
        world.alert(f"a-{n}", target=f"vm-{n}")
        world.drain()
    start_run = world.compute.start_run

    def slow_answer(request: RunRequest) -> RunStatus:
        status = start_run(request)
        world.clock.advance(4)  # ARM took 4 s to answer the PUT
        return status

    world.compute.start_run = slow_answer  # type: ignore[method-assign]
    nxt = world.alert("next", target="vm-0")
    world.clock.advance(2 * 3600)
    next_id = world.job(nxt).id
    world.runner.advance(next_id)
    step = world.runner.advance(next_id)

    # 0.5 % after the 30 s the last runs took from their dispatch: 30.15 s after it, 26.15 s from now.
    assert step.requeue_after == pytest.approx(26.15)


def test_next_poll_delay_counts_the_first_look_from_the_dispatch() -> None:
    assert next_poll_delay(0, 10, 30, elapsed=4) == pytest.approx(26.15)
    assert next_poll_delay(0, 10, 30, elapsed=40) == 0  # past the expected end already: look now
    assert next_poll_delay(1, 10, 30, elapsed=4) == 2.5  # later polls keep their interval
    assert next_poll_delay(0, 10, None, elapsed=4) == 2.5  # no estimate: the cold back-off
