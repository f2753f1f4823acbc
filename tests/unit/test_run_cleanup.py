"""Managed run commands are deleted once their result is on record; a delete that fails is on record too."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoremediation.errors import Transient
from autoremediation.ports import RunStatus
from tests.unit.test_runner import World


def test_a_finished_managed_run_is_deleted_after_its_result_is_recorded(tmp_path: Path) -> None:
    world = World(tmp_path)
    recorded_before_delete: list[object] = []
    real_cancel = world.compute.cancel_run

    def cancel(vm_id: str, run_name: str) -> None:
        # The result must already be in the store when the run command goes.
        job = next(j for j in world.store.list() if j.run.get("name") == run_name)
        recorded_before_delete.append(job.outcome.get("result"))
        real_cancel(vm_id, run_name)

    world.compute.cancel_run = cancel  # type: ignore[method-assign]
    result = world.alert()
    world.drain()

    job = world.job(result)
    assert job.status == "succeeded"
    assert world.compute.cancelled == [job.run["name"]]
    # Deleted: the usual end costs no write after the result's.
    assert "runCommandCleanup" not in job.outcome
    assert recorded_before_delete and recorded_before_delete[0] is not None


def test_a_failed_verification_still_deletes_the_run(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.compute.outcome = lambda r: RunStatus(
        state="succeeded", exit_code=1, result={"status": "not-fixed"}
    )
    result = world.alert()
    world.drain()

    job = world.job(result)
    assert job.status == "failed"
    assert "runCommandCleanup" not in job.outcome
    assert world.compute.cancelled == [job.run["name"]]


def test_a_delete_that_fails_is_recorded_and_the_outcome_stands(tmp_path: Path) -> None:
    world = World(tmp_path)

    def refuse(vm_id: str, run_name: str) -> None:
        raise Transient("503 from ARM")

    world.compute.cancel_run = refuse  # type: ignore[method-assign]
    result = world.alert()
    world.drain()

    job = world.job(result)
    assert job.status == "succeeded"
    assert job.outcome["runCommandCleanup"] == "left on the VM: 503 from ARM"


def test_a_classic_run_leaves_nothing_to_delete(tmp_path: Path) -> None:
    world = World(tmp_path, run_command_mode="action")
    result = world.alert()
    world.drain()

    job = world.job(result)
    assert job.status == "succeeded"
    assert world.compute.cancelled == []
    assert "runCommandCleanup" not in job.outcome


def test_a_stale_duplicate_dispatch_after_the_delete_never_runs_the_script_again(tmp_path: Path) -> None:
    world = World(tmp_path)
    result = world.alert()
    job_id = world.job(result).id
    world.runner.advance(job_id)  # planned -> dispatching
    stale = world.store.get(job_id)  # what a duplicate message's worker read, then stalled on
    world.drain()  # the job runs to its end and its run command is deleted
    assert world.job(result).status == "succeeded" and world.compute.cancelled

    real_get = world.store.get
    world.store.get = lambda _: stale  # type: ignore[method-assign]
    world.runner.advance(job_id)
    world.store.get = real_get  # type: ignore[method-assign]

    # The claim written before the PUT loses the swap: the run command is not created a second time.
    assert sum(world.compute.executions.values()) == 1


def test_a_step_that_died_before_the_delete_leaves_it_to_the_message_that_comes_back(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.compute.cancel_run = _dies  # type: ignore[method-assign]  # the worker dies before the delete
    result = world.alert()
    with pytest.raises(SystemExit):
        world.drain()
    job = world.job(result)
    assert job.status == "succeeded" and world.compute.cancelled == []

    del world.compute.cancel_run  # the next instance is whole again
    world.runner.advance(job.id)  # the message comes back: the job ended, its run command is still there
    assert world.compute.cancelled == [job.run["name"]]
    world.runner.advance(job.id)  # a duplicate after that: "not found" is the answer, nothing is written
    assert world.store.get(job.id).version == job.version


def test_a_delete_on_record_as_failed_or_a_classic_run_is_not_repeated(tmp_path: Path) -> None:
    world = World(tmp_path)

    def refuse(vm_id: str, run_name: str) -> None:
        raise Transient("503 from ARM")

    world.compute.cancel_run = refuse  # type: ignore[method-assign]
    failed = world.job(world.alert())
    world.drain()
    del world.compute.cancel_run
    classic = World(tmp_path / "classic", run_command_mode="action")
    classic_job = classic.job(classic.alert())
    classic.drain()

    world.runner.advance(failed.id)
    classic.runner.advance(classic_job.id)
    assert world.compute.cancelled == [] and classic.compute.cancelled == []


def _dies(vm_id: str, run_name: str) -> None:
    raise SystemExit("the worker was killed")
