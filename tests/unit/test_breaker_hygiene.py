"""The circuit breaker counts only runs that tried and failed: never a refused input, never a guard skip."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoremediation.catalog_load import load_catalog
from autoremediation.ports import RunRequest, RunStatus
from autoremediation.verification import refused_input, refused_run, verify
from tests.helpers.catalogs import make_catalog
from tests.helpers.fakes import fixed_result, vm_facts
from tests.unit.test_runner import World


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def refused(request: RunRequest) -> RunStatus:
    """What free-disk-space says for a mount point the VM does not have: exit 2, status error."""
    reason = "MOUNT_POINT is not a mount point on this VM"
    return RunStatus(
        state="failed",
        exit_code=2,
        output=f'REMEDIATION_RESULT {{"status":"error","reason":"{reason}"}}',
        result={"status": "error", "reason": reason, "before": {}, "after": {}},
    )


def bogus_then_real(world: World, outcome) -> str:
    """Three alerts for a bogus mount on three VMs, then a real alert on a fourth: its final reason."""
    world.compute.outcome = outcome
    for n in range(3):
        world.compute.add(vm_facts(f"vm-b{n}"))
        world.alert(f"bogus-{n}", target=f"vm-b{n}", mount="/no-such-mount")
        world.drain()
    world.compute.outcome = fixed_result
    world.compute.add(vm_facts("vm-real"))
    real = world.alert("real", target="vm-real", mount="/var")
    world.drain()
    return world.job(real).history[-1].reason


def test_three_bogus_mount_points_do_not_open_the_breaker(world: World) -> None:
    reason = bogus_then_real(world, refused)
    assert not reason.startswith("circuit-breaker"), reason
    assert sum(1 for r in world.compute.requests if r.vm_id.endswith("vm-real")) == 1


def test_refused_runs_are_failed_and_say_why(world: World) -> None:
    world.compute.outcome = refused
    result = world.alert("bogus", mount="/no-such-mount")
    world.drain()
    job = world.job(result)
    assert job.status == "failed"
    assert job.outcome["refused"] is True
    assert "refused to act" in job.history[-1].reason
    assert "MOUNT_POINT is not a mount point on this VM" in job.history[-1].reason


def test_runs_that_tried_and_failed_still_open_the_breaker(world: World) -> None:
    def broken(request: RunRequest) -> RunStatus:
        return RunStatus(state="failed", exit_code=1, result={"status": "error", "reason": "rm failed"})

    assert bogus_then_real(world, broken).startswith("circuit-breaker")


def test_guard_skips_never_count(world: World) -> None:
    for n in range(4):
        world.compute.add(vm_facts(f"vm-s{n}", power_state="deallocated"))
        world.alert(f"s-{n}", target=f"vm-s{n}")
        world.drain()
    real = world.alert("real")
    world.drain()
    assert world.job(real).status == "succeeded"


@pytest.mark.parametrize(
    ("exit_code", "result", "expected"),
    [
        (2, {"status": "error"}, True),
        (None, {"status": "refused"}, True),  # classic mode without an exit code: the status says it
        (0, {"status": "refused"}, True),
        (1, {"status": "error"}, False),
        (2, {"status": "fixed"}, False),  # a script that claims a fix and exits 2 is broken: it counts
        (2, None, False),  # died without a result: it may have changed something
        (None, {"status": "error"}, False),
    ],
)
def test_what_counts_as_refused(exit_code, result, expected) -> None:
    assert refused_input(exit_code, result) is expected
    assert refused_run({"exitCode": exit_code, "result": result}) is expected


def test_verdict_of_a_refused_run_is_a_failure_marked_refused(tmp_path: Path) -> None:
    remediation = load_catalog(make_catalog(tmp_path)).get("free-disk-space")
    verdict = verify(remediation, exit_code=2, result={"status": "error", "reason": "bad"}, parameters={})
    assert (verdict.ok, verdict.refused) == (False, True)
    plain = verify(remediation, exit_code=1, result={"status": "error"}, parameters={})
    assert (plain.ok, plain.refused) == (False, False)


def test_a_refused_run_does_not_hold_the_real_fix_back_for_the_cooldown(world: World) -> None:
    world.compute.outcome = refused
    bogus = world.alert("bogus", mount="/no-such-mount")
    world.drain()
    assert world.job(bogus).status == "failed"
    world.compute.outcome = fixed_result
    world.clock.advance(5 * 60)
    real = world.alert("real", mount="/var")
    world.drain()
    assert world.job(real).status == "succeeded"
