"""The kill switch and dry run are read again right before every outside action (NSG write, run command)."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoremediation import operations
from autoremediation.errors import InvalidInput
from autoremediation.ports import Switches
from autoremediation.settings import EnvironmentSwitches
from autoremediation.switches import current_switches
from tests.unit.test_runner import World


class Board:
    """A switch source an operator flips while jobs wait; counts how often the runner asked."""

    def __init__(self) -> None:
        self.now = Switches()
        self.asked = 0
        self.error: Exception | None = None

    def switches(self) -> Switches:
        self.asked += 1
        if self.error is not None:
            raise self.error
        return self.now


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


@pytest.fixture
def board(world: World) -> Board:
    board = Board()
    world.runner.switch_source = board
    return board


def to_dispatching(world: World, **kw) -> str:
    result = world.manual(**kw) if kw else world.alert()
    job_id = result.jobs[0].job.id
    world.runner.advance(job_id)  # planned -> dispatching (the lease is taken, nothing sent yet)
    assert world.store.get(job_id).status == "dispatching"
    return job_id


def test_kill_switch_thrown_while_a_job_waits_in_dispatching_stops_it(world: World, board: Board) -> None:
    job_id = to_dispatching(world)
    board.now = Switches(kill_switch=True)
    world.drain()
    job = world.store.get(job_id)
    assert job.status == "skipped"
    assert job.history[-1].reason.startswith("kill-switch: ")
    assert "before the run command" in job.history[-1].reason
    assert world.compute.calls["start_run"] == 0
    assert world.store.lease_holder(job.target_key, world.clock.now()) is None


def test_kill_switch_stops_the_nsg_write_of_an_approved_job(world: World, board: Board) -> None:
    result = world.manual("restore-management-access")
    world.drain()
    job_id = result.jobs[0].job.id
    operations.approve(world.store, world.queue, world.clock, job_id, actor="alice")
    world.runner.advance(job_id)  # approved -> dispatching
    assert world.store.get(job_id).status == "dispatching"
    board.now = Switches(kill_switch=True)
    world.drain()
    job = world.store.get(job_id)
    assert job.status == "skipped" and "control-plane step nsg-allow-management" in job.history[-1].reason
    assert world.cp_calls == [] and world.compute.calls["start_run"] == 0


def test_dry_run_switched_on_while_dispatching_makes_the_run_a_dry_run(world: World, board: Board) -> None:
    job_id = to_dispatching(world)
    board.now = Switches(dry_run=True)
    world.drain()
    job = world.store.get(job_id)
    assert job.dry_run is True
    assert world.compute.requests[0].parameters["DRY_RUN"] == "1"
    assert any("dry run was switched on" in note for note in job.notes)
    assert job.outcome["verified"] is False


def test_dry_run_switched_on_before_the_nsg_write_reaches_it(world: World, board: Board) -> None:
    result = world.manual("restore-management-access")
    world.drain()
    job_id = result.jobs[0].job.id
    operations.approve(world.store, world.queue, world.clock, job_id, actor="alice")
    world.runner.advance(job_id)
    board.now = Switches(dry_run=True)
    world.drain()
    assert world.cp_calls == [(job_id, True)]
    assert world.compute.requests[0].parameters["DRY_RUN"] == "1"


def test_the_switches_are_asked_before_each_outside_action(world: World, board: Board) -> None:
    result = world.manual("restore-management-access")
    world.drain()
    job_id = result.jobs[0].job.id
    operations.approve(world.store, world.queue, world.clock, job_id, actor="alice")
    before = board.asked
    world.drain()
    # decide (after approval), before the NSG write, before the run command PUT
    assert board.asked - before == 3
    assert world.store.get(job_id).status == "succeeded"


def test_a_switch_that_cannot_be_read_stops_the_job(world: World, board: Board) -> None:
    job_id = to_dispatching(world)
    board.error = InvalidInput("setting REMEDIATION_KILL_SWITCH='maybe' is not a boolean (use true or false)")
    world.drain()
    job = world.store.get(job_id)
    assert job.status == "skipped" and "cannot be read" in job.history[-1].reason
    assert world.compute.calls["start_run"] == 0


def test_kill_switch_at_planned_needs_no_vm_read(world: World, board: Board) -> None:
    board.now = Switches(kill_switch=True)
    result = world.alert()
    world.drain()
    assert world.job(result).history[-1].reason.startswith("kill-switch")
    assert world.compute.calls["get_vm"] == 0


def test_switches_off_leave_the_job_as_it_was(world: World, board: Board) -> None:
    job_id = to_dispatching(world)
    world.drain()
    job = world.store.get(job_id)
    assert job.status == "succeeded" and job.dry_run is False and job.notes == ()


def test_environment_switches_read_the_environment_each_time() -> None:
    env: dict[str, str] = {}
    source = EnvironmentSwitches(env)
    assert source.switches() == Switches(False, False)
    env["REMEDIATION_KILL_SWITCH"] = "true"
    assert source.switches() == Switches(kill_switch=True, dry_run=False)
    env["REMEDIATION_DRY_RUN"] = "1"
    assert source.switches() == Switches(kill_switch=True, dry_run=True)
    env["REMEDIATION_KILL_SWITCH"] = "maybe"
    with pytest.raises(InvalidInput, match="REMEDIATION_KILL_SWITCH"):
        source.switches()


def test_the_app_reads_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REMEDIATION_KILL_SWITCH", "on")
    assert EnvironmentSwitches().switches().kill_switch is True
    monkeypatch.setenv("REMEDIATION_KILL_SWITCH", "off")
    assert EnvironmentSwitches().switches().kill_switch is False


@pytest.mark.parametrize(
    ("given", "fresh", "expected"),
    [
        ((False, False), Switches(False, False), Switches(False, False)),
        ((True, False), Switches(False, False), Switches(True, False)),  # a fresh read never turns it off
        ((False, True), Switches(False, False), Switches(False, True)),
        ((False, False), Switches(True, False), Switches(True, False)),
        ((False, False), Switches(False, True), Switches(False, True)),
    ],
)
def test_either_source_turns_a_switch_on_none_turns_it_off(given, fresh, expected) -> None:
    board = Board()
    board.now = fresh
    switches, why = current_switches(*given, board)
    assert switches == expected
    assert (why != "") is expected.kill_switch
    assert current_switches(*given, None)[0] == Switches(*given)
