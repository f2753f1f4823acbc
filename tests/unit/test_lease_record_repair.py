"""The cooldown's run record survives a release that failed after the job's terminal write."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from autoremediation import jobs
from autoremediation.errors import Transient
from tests.helpers.fakes import vm_facts
from tests.unit.test_runner import World


def test_a_release_refused_after_the_terminal_write_is_repeated_by_the_redelivered_message(
    tmp_path: Path,
) -> None:
    world = World(tmp_path)  # free-disk-space: a 60-minute cooldown
    world.compute.add(vm_facts("vm1"))
    world.job(world.manual("free-disk-space", target="vm1", request_id="r-0"))
    world.drain()
    world.clock.advance(61 * 60)  # an older run's record stays on the lease; its cooldown is over
    real_release = world.store.release_lease
    refusals = {"left": 1}

    def release_once_refused(*args: Any, **kwargs: Any) -> None:
        if refusals["left"]:
            refusals["left"] -= 1
            raise Transient("storage is throttling")
        real_release(*args, **kwargs)

    world.store.release_lease = release_once_refused  # type: ignore[method-assign]
    first = world.job(world.manual("free-disk-space", target="vm1", request_id="r-1")).id
    with contextlib.suppress(Transient):  # the step fails; the queue delivers its message again
        world.drain()
    world.drain()
    assert world.store.get(first).status == jobs.SUCCEEDED
    world.clock.advance(25 * 60)  # past the lease's time to live, well inside the cooldown

    second = world.job(world.manual("free-disk-space", target="vm1", request_id="r-2")).id
    step = world.runner.advance(second)

    assert step.job.status == jobs.SKIPPED, (step.job.status, step.note)
    assert "cooldown" in step.job.history[-1].reason
