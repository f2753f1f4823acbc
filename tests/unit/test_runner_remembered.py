"""A poll that comes back to the instance that wrote the running job starts from that copy (no read),
and the copy counts only through the step's compare-and-swap: whatever another writer did meanwhile
stands, and the job's polls go on."""

from __future__ import annotations

from pathlib import Path

from autoremediation import jobs, operations
from autoremediation.runner import Runner
from tests.helpers.counting import CountedCalls
from tests.unit.test_runner import World


def _running(world: World) -> str:
    world.compute.polls_until_done = 10**9
    job_id = world.job(world.alert()).id
    world.runner.advance(job_id)  # planned -> dispatching
    world.runner.advance(job_id)  # -> running
    assert world.store.get(job_id).status == jobs.RUNNING
    return job_id


def _other_instance(world: World) -> Runner:
    return Runner(
        catalog=world.catalog,
        store=world.store,
        compute=world.compute,
        clock=world.clock,
        settings=world.settings,
    )


def test_a_poll_in_the_instance_that_wrote_the_job_reads_nothing(tmp_path: Path) -> None:
    world = World(tmp_path)
    job_id = _running(world)
    counted = CountedCalls(world.store)
    world.runner.store = counted  # type: ignore[assignment]
    for polls in (1, 2):
        world.clock.advance(30)
        step = world.runner.advance(job_id)
        assert step.requeue_after and world.store.get(job_id).run["polls"] == polls
    assert counted.calls["get"] == 0 and counted.calls["update"] == 2
    # The run ends: collected from the copy too, with one write for the end.
    world.compute.polls_until_done = 0
    world.clock.advance(30)
    step = world.runner.advance(job_id)
    assert step.job.status == jobs.SUCCEEDED and world.store.get(job_id).status == jobs.SUCCEEDED
    assert counted.calls["get"] == 0
    assert sum(world.compute.executions.values()) == 1


def test_another_instance_reads_the_job(tmp_path: Path) -> None:
    world = World(tmp_path)
    job_id = _running(world)
    other = _other_instance(world)
    counted = CountedCalls(world.store)
    other.store = counted  # type: ignore[assignment]
    world.clock.advance(30)
    assert other.advance(job_id).requeue_after
    assert counted.calls["get"] == 1


def test_a_note_written_meanwhile_stands_and_the_polls_go_on(tmp_path: Path) -> None:
    world = World(tmp_path)
    job_id = _running(world)
    noted = world.store.update(
        jobs.note(world.store.get(job_id), "the alert resolved", now=world.clock.now())
    )
    world.clock.advance(30)
    step = world.runner.advance(job_id)  # starts from a copy the note made stale
    # Not dropped as "another worker advanced this job": the message chain would end there.
    assert step.requeue_after
    stored = world.store.get(job_id)
    assert stored.version == noted.version + 1 and stored.run["polls"] == 1
    assert any(note.endswith("the alert resolved") for note in stored.notes)


def test_a_cancel_meanwhile_stands(tmp_path: Path) -> None:
    world = World(tmp_path)
    job_id = _running(world)
    stopped: list[str] = []

    def stop(job: jobs.Job) -> str:
        world.compute.cancel_run(job.target, job.run["name"])
        stopped.append(job.id)
        return "the run command was stopped"

    operations.cancel(world.store, world.clock, job_id, actor="operator", stop_run=stop)
    world.compute.polls_until_done = 0  # a stale poll would find a result to record
    world.clock.advance(30)
    step = world.runner.advance(job_id)
    assert step.requeue_after is None and step.job.status == jobs.CANCELLED
    assert world.store.get(job_id).status == jobs.CANCELLED and stopped == [job_id]
    assert world.store.lease_holder(world.store.get(job_id).target_key, world.clock.now()) is None


def test_a_poll_by_another_instance_meanwhile_is_not_repeated(tmp_path: Path) -> None:
    world = World(tmp_path)
    job_id = _running(world)
    world.clock.advance(30)
    assert _other_instance(world).advance(job_id).requeue_after  # the poll, there
    step = world.runner.advance(job_id)  # a duplicate of that poll's message, here, on an old copy
    assert step.requeue_after is None and step.note == "duplicate poll dropped"
    assert world.store.get(job_id).run["polls"] == 1
