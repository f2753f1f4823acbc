"""A job whose script may still run on its VM keeps the VM: a dispatching job under a claim (its PUT may
have been sent) counts as running when it is ended, and a job marked so never frees its VM early.

Each ending path (an operator's cancel, the queue's give_up, a permanent error or too many retries after
an answered PUT, the kill switch after a claim takeover) first deletes the run command by name; only a
stop that failed or is impossible (classic mode) marks the job ``run.mayStillRun``.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from autoremediation import jobs, operations
from autoremediation.errors import Permanent, Transient
from autoremediation.jobs import Job, parse_time
from autoremediation.ports import RunRequest
from autoremediation.runner import CLAIM_GRACE_SECONDS, MAX_RETRIES
from autoremediation.step_common import LEASE_END_MARGIN_SECONDS
from tests.helpers.counting import CountedCalls
from tests.unit.test_runner import World

COOLDOWN = timedelta(minutes=60)  # free-disk-space in the test catalog


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def _dispatching(world: World, request_id: str = "r-1") -> Job:
    """A job the guards passed: the VM's lease taken and the dispatch claimed (managed mode), no PUT yet."""
    job = world.job(world.manual("free-disk-space", request_id=request_id))
    world.runner.advance(job.id)
    claimed = world.store.get(job.id)
    assert claimed.status == jobs.DISPATCHING and claimed.run.get("claimedAt")
    return claimed


def _put_sent_elsewhere(world: World, job: Job) -> None:
    """The claimant's PUT reached Azure: its run command runs on the VM (its RUNNING write is not done)."""
    world.compute.start_run(
        RunRequest(
            vm_id=job.target,
            run_name=job.run["name"],
            os_type="linux",
            script="echo",
            parameters={},
            protected_parameters={},
            timeout_seconds=900,
        )
    )


def _holds_to_its_bound(world: World, ended: Job) -> None:
    """The ended job keeps its VM until its lease's bound, and its run counts as ending there."""
    until = parse_time(ended.run["leaseUntil"])
    assert ended.run.get("mayStillRun") is True and until is not None
    now = world.clock.now()
    assert world.store.lease_holder(ended.target_key, now) == ended.id
    assert not world.store.acquire_lease(
        ended.target_key, "job-other", 600, now, remediation="collect-diagnostics"
    )
    assert world.store.lease_holder(ended.target_key, until) is None  # and no longer
    facts = world.store.lease_facts(ended.target_key, "free-disk-space", until, runs_since=until - COOLDOWN)
    assert facts.last_run_ended_at == until


def _frees_the_vm(world: World, ended: Job) -> None:
    assert "mayStillRun" not in ended.run
    assert world.store.lease_holder(ended.target_key, world.clock.now()) is None


def _stop_like_the_cli(world: World):  # type: ignore[no-untyped-def]
    """``stop_run`` as the CLI gives it: delete the run command by name."""

    def stop(job: Job) -> tuple[str, bool]:
        try:
            world.compute.cancel_run(job.target, job.run["name"])
        except Transient as error:
            return f"could not be deleted ({error})", False
        return "deleted", True

    return stop


# -- an operator's cancel -----------------------------------------------------------------------


def test_a_cancel_between_the_put_and_the_running_write_deletes_the_run_command(world: World) -> None:
    job = _dispatching(world)
    _put_sent_elsewhere(world, job)

    saved = operations.cancel(
        world.store, world.clock, job.id, actor="alice", stop_run=_stop_like_the_cli(world)
    )

    assert saved.status == jobs.CANCELLED
    assert world.compute.cancelled == [job.run["name"]]
    _frees_the_vm(world, saved)


def test_a_cancel_of_a_claimed_dispatch_whose_stop_failed_keeps_the_vm(world: World) -> None:
    job = _dispatching(world)
    _put_sent_elsewhere(world, job)
    world.compute.errors["cancel_run"] = [Transient("ARM is unavailable")]

    saved = operations.cancel(
        world.store, world.clock, job.id, actor="alice", stop_run=_stop_like_the_cli(world)
    )

    assert saved.status == jobs.CANCELLED
    _holds_to_its_bound(world, saved)


def test_a_cancel_of_a_claimed_dispatch_with_no_way_to_stop_it_keeps_the_vm(world: World) -> None:
    job = _dispatching(world)

    saved = operations.cancel(world.store, world.clock, job.id, actor="alice")

    assert "may run to its end" in saved.history[-1].reason
    _holds_to_its_bound(world, saved)


# -- give_up, errors after an answered PUT ------------------------------------------------------


def test_give_up_on_a_claimed_dispatch_deletes_the_run_command(world: World) -> None:
    job = _dispatching(world)
    _put_sent_elsewhere(world, job)

    ended = world.runner.give_up(job.id, "the queue gave up on its message")

    assert world.compute.cancelled == [job.run["name"]]
    assert "was stopped" in ended.history[-1].reason
    _frees_the_vm(world, ended)


def test_give_up_on_a_claimed_dispatch_whose_stop_failed_keeps_the_vm(world: World) -> None:
    job = _dispatching(world)
    _put_sent_elsewhere(world, job)
    world.compute.errors["cancel_run"] = [Transient("ARM is unavailable")]

    ended = world.runner.give_up(job.id, "the queue gave up on its message")

    assert ended.status == jobs.FAILED
    _holds_to_its_bound(world, world.store.get(job.id))


def test_give_up_on_a_classic_dispatch_that_was_attempted_keeps_the_vm(tmp_path: Path) -> None:
    world = World(tmp_path, run_command_mode="action")
    job = world.job(world.manual("free-disk-space", request_id="r-1"))
    world.runner.advance(job.id)
    dispatching = world.store.get(job.id)
    now = world.clock.now().isoformat()
    world.store.update(replace(dispatching, run={**dispatching.run, "attemptedAt": now}))

    ended = world.runner.give_up(job.id, "the queue gave up on its message")

    assert "classic run command cannot be stopped" in ended.history[-1].reason
    assert world.compute.cancelled == []
    _holds_to_its_bound(world, world.store.get(job.id))


def test_a_permanent_error_after_an_answered_put_stops_the_run_or_keeps_the_vm(world: World) -> None:
    job = _dispatching(world)
    world.compute.errors["start_run"] = [Transient("503 after the PUT"), Permanent("403 on the retry")]
    world.compute.errors["cancel_run"] = [Transient("ARM is unavailable")]

    world.drain()

    ended = world.store.get(job.id)
    assert ended.status == jobs.FAILED and "could not be stopped" in ended.history[-1].reason
    _holds_to_its_bound(world, ended)


def test_too_many_retries_after_answered_puts_delete_the_run_command(world: World) -> None:
    job = _dispatching(world)
    world.compute.errors["start_run"] = [Transient("503") for _ in range(MAX_RETRIES + 1)]

    world.drain()

    ended = world.store.get(job.id)
    assert ended.status == jobs.FAILED and f"gave up after {MAX_RETRIES} retries" in ended.history[-1].reason
    assert world.compute.cancelled == [job.run["name"]]
    _frees_the_vm(world, ended)


# -- the kill switch ------------------------------------------------------------------------------


def _kill_switch(world: World) -> None:
    world.runner.settings = replace(world.settings, kill_switch=True)


def test_the_kill_switch_after_a_claim_takeover_deletes_the_claimants_run_command(world: World) -> None:
    job = _dispatching(world)
    _put_sent_elsewhere(world, job)
    world.runner._claims.clear()  # the claim is another execution's, which died after its PUT
    world.clock.advance(CLAIM_GRACE_SECONDS + 1)
    _kill_switch(world)

    world.runner.advance(job.id)

    ended = world.store.get(job.id)
    assert ended.status == jobs.SKIPPED and ended.history[-1].reason.startswith("kill-switch")
    assert world.compute.cancelled == [job.run["name"]]
    _frees_the_vm(world, ended)


def test_the_kill_switch_after_a_claim_takeover_keeps_the_vm_when_the_stop_fails(world: World) -> None:
    job = _dispatching(world)
    _put_sent_elsewhere(world, job)
    world.runner._claims.clear()
    world.clock.advance(CLAIM_GRACE_SECONDS + 1)
    _kill_switch(world)
    world.compute.errors["cancel_run"] = [Transient("ARM is unavailable")]

    world.runner.advance(job.id)

    ended = world.store.get(job.id)
    assert ended.status == jobs.SKIPPED
    _holds_to_its_bound(world, ended)


def test_the_kill_switch_on_a_claim_this_execution_never_sent_stops_nothing(world: World) -> None:
    job = _dispatching(world)
    _kill_switch(world)

    world.runner.advance(job.id)

    ended = world.store.get(job.id)
    assert ended.status == jobs.SKIPPED
    assert world.compute.cancelled == [] and world.compute.requests == []
    _frees_the_vm(world, ended)


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


def test_a_throttled_put_after_an_answered_one_keeps_the_claim_the_first_may_have_started(
    world: World,
) -> None:
    from autoremediation.errors import Throttled

    job = _dispatching(world)
    world.compute.errors["start_run"] = [Transient("503 after the PUT"), Throttled("429", retry_after=5)]
    world.runner.advance(job.id)  # the PUT is answered 503: retried later
    world.clock.advance(60)
    world.runner.advance(job.id)  # the retry is throttled
    world.compute.errors["cancel_run"] = [Transient("ARM is unavailable")]

    ended = world.runner.give_up(job.id, "the queue gave up on its message")

    _holds_to_its_bound(world, ended)


def test_a_refused_first_put_under_a_fresh_claim_stops_nothing(world: World) -> None:
    job = _dispatching(world)
    world.compute.errors["start_run"] = [Permanent("403")]

    world.runner.advance(job.id)

    ended = world.store.get(job.id)
    assert ended.status == jobs.FAILED and ended.history[-1].reason == "dispatch refused: 403"
    assert world.compute.cancelled == []
    _frees_the_vm(world, ended)


# -- a run command that started after its job ended -----------------------------------------------


def _cancelled_while_the_put_is_on_its_way(
    world: World, job: Job, *, then: tuple[Exception, ...] = ()
) -> None:
    """An operator's cancel lands after the claim and before the PUT: its delete finds nothing yet; the
    deletes after it raise ``then``."""
    start_run = world.compute.start_run

    def put(request: RunRequest):  # type: ignore[no-untyped-def]
        operations.cancel(world.store, world.clock, job.id, actor="alice", stop_run=_stop_like_the_cli(world))
        world.compute.errors["cancel_run"] = list(then)
        return start_run(request)

    world.compute.start_run = put  # type: ignore[method-assign]


def test_a_run_command_that_started_after_its_job_was_cancelled_is_deleted(world: World) -> None:
    from autoremediation.errors import NotFound

    job = _dispatching(world)
    _cancelled_while_the_put_is_on_its_way(world, job)

    step = world.runner.advance(job.id)

    assert step.job.status == jobs.CANCELLED
    assert world.compute.cancelled == [job.run["name"]] * 2  # the operator's (nothing yet), then the step's
    with pytest.raises(NotFound):
        world.compute.get_run(job.target, job.run["name"])
    assert "mayStillRun" not in world.store.get(job.id).run


def test_a_run_command_that_started_after_its_job_ended_and_cannot_be_deleted_is_on_record(
    world: World,
) -> None:
    job = _dispatching(world)
    _cancelled_while_the_put_is_on_its_way(world, job, then=(Transient("ARM is unavailable"),))

    world.runner.advance(job.id)

    ended = world.store.get(job.id)
    assert ended.status == jobs.CANCELLED and ended.run.get("mayStillRun") is True
    assert "could not be deleted" in ended.notes[-1]


# -- the CLI's cancel -------------------------------------------------------------------------------


def _cli_cancel(world: World, job: Job, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    """``remediate cancel`` on the world's store, its ARM calls on the world's compute."""
    from contextlib import contextmanager
    from io import StringIO
    from types import SimpleNamespace

    from autoremediation import cli_jobs
    from autoremediation.cli import main

    @contextmanager
    def engine(*_args, **_kw):  # type: ignore[no-untyped-def]
        yield SimpleNamespace(store=world.store, clock=world.clock, compute=world.compute)

    monkeypatch.setenv("REMEDIATION_SQLITE_PATH", str(tmp_path / "jobs.db"))
    monkeypatch.setattr(cli_jobs, "engine", engine)
    return main(["cancel", job.id, "--actor", "erin"], out=StringIO())


def test_the_cli_cancel_of_a_claimed_dispatch_deletes_the_run_command(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = _dispatching(world)
    _put_sent_elsewhere(world, job)

    assert _cli_cancel(world, job, tmp_path, monkeypatch) == 0

    saved = world.store.get(job.id)
    assert saved.status == jobs.CANCELLED
    assert world.compute.cancelled == [job.run["name"]]
    _frees_the_vm(world, saved)


def test_the_cli_cancel_of_a_claimed_dispatch_that_cannot_be_stopped_keeps_the_vm(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = _dispatching(world)
    world.compute.errors["cancel_run"] = [Transient("ARM is unavailable")]

    assert _cli_cancel(world, job, tmp_path, monkeypatch) == 0

    saved = world.store.get(job.id)
    assert saved.status == jobs.CANCELLED and "it may run to its end" in saved.history[-1].reason
    _holds_to_its_bound(world, saved)
