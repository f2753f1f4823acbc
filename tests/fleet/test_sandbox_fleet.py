"""A Linux fleet VM with a guest really runs the catalog's script in a sandbox, in both run command modes."""

from __future__ import annotations

from pathlib import Path

import pytest
from localfleet.guest import sandbox_support
from localfleet.server import FleetServer

from autoremediation.azure.compute import AzureCompute
from autoremediation.catalog_load import load_catalog
from autoremediation.ports import RunRequest, RunStatus
from autoremediation.settings import Settings
from autoremediation.verification import refused_input

from .conftest import REPO_ROOT, vm_id

pytestmark = [pytest.mark.fleet, pytest.mark.sandbox]

SCRIPT = REPO_ROOT / "remediations" / "free-disk-space" / "linux.sh"
PARAMS = {"MOUNT_POINT": "/var", "TARGET_FREE_PERCENT": "20", "OLDER_THAN_DAYS": "7", "DRY_RUN": "0"}


@pytest.fixture(scope="module")
def script() -> str:
    ok, reason = sandbox_support()
    if not ok:
        pytest.skip(f"no guest sandbox here: {reason}")
    if not SCRIPT.is_file():
        pytest.skip(f"{SCRIPT.relative_to(REPO_ROOT)} is not in the catalog yet")
    # As dispatched: the shared prelude joined in by the catalog loader.
    return load_catalog(REPO_ROOT / "remediations").get("free-disk-space").script("linux")


def run(compute: AzureCompute, script: str, name: str, params: dict[str, str] = PARAMS) -> RunStatus:
    request = RunRequest(
        vm_id=vm_id("vm-linux-disk"),
        run_name=name,
        os_type="linux",
        script=script,
        parameters=params,
        timeout_seconds=120,
    )
    status = compute.start_run(request)
    while not status.done:
        # The sandbox answers when the script ends; each poll is a real ARM GET.
        status = compute.get_run(request.vm_id, name)
    return status


def used_percent(fleet: FleetServer) -> float:
    usage = fleet.fleet.sandboxes.disk_usage(fleet.vm_id("vm-linux-disk").lower(), "/var")
    assert usage is not None
    used, total = usage
    return 100.0 * used / total


@pytest.mark.parametrize("mode", ["managed", "action"])
def test_free_disk_space_really_frees_the_guest_disk(script: str, mode: str, tmp_path: Path) -> None:
    with FleetServer(workdir=tmp_path / "fleet") as fleet:
        assert fleet.fleet.sandboxes.enabled
        compute = AzureCompute(
            Settings(arm_endpoint=fleet.base_url, arm_ca_bundle=fleet.ca_bundle),
            mode=mode,
            polling_interval=0,
        )
        dry = run(compute, script, "dry", {**PARAMS, "DRY_RUN": "1"})
        before = used_percent(fleet)
        assert dry.result is not None, dry.output + dry.error
        assert before > 85  # a dry run deleted nothing
        first = run(compute, script, "first")
        assert (first.state, first.exit_code) == ("succeeded", 0), first.output + first.error
        assert first.result is not None and first.result["status"] == "fixed"
        assert used_percent(fleet) <= 80
        again = run(compute, script, "again")
        assert again.result is not None and again.result["status"] == "already-ok"
        assert again.exit_code == 0


@pytest.mark.parametrize("mode", ["managed", "action"])
def test_a_bogus_mount_point_is_a_refused_run_in_both_modes(script: str, mode: str, tmp_path: Path) -> None:
    """What the breaker and the cooldown must not count: the real script refuses (exit 2, status error)
    and the engine recognises it as refused whatever the run command mode (classic mode recovers the
    exit code through its wrapper)."""
    with FleetServer(workdir=tmp_path / "fleet") as fleet:
        compute = AzureCompute(
            Settings(arm_endpoint=fleet.base_url, arm_ca_bundle=fleet.ca_bundle),
            mode=mode,
            polling_interval=0,
        )
        status = run(compute, script, "bogus", {**PARAMS, "MOUNT_POINT": "/no-such-mount"})
        assert status.exit_code == 2, status.output + status.error
        assert status.result is not None and "not a mount point" in status.result["reason"]
        assert refused_input(status.exit_code, status.result)
        assert used_percent(fleet) > 85  # the full disk was not touched


ACCESS_SCRIPT = REPO_ROOT / "remediations" / "restore-management-access" / "linux.sh"


def test_restore_access_gives_the_same_verdict_in_both_modes(tmp_path: Path) -> None:
    ok, reason = sandbox_support()
    if not ok:
        pytest.skip(f"no guest sandbox here: {reason}")
    if not ACCESS_SCRIPT.is_file():
        pytest.skip("restore-management-access/linux.sh is not in the catalog yet")
    script = load_catalog(REPO_ROOT / "remediations").get("restore-management-access").script("linux")
    verdicts = {}
    for mode in ("managed", "action"):
        # A fresh demo fleet per mode: vm-linux-locked's guest firewall drops port 22.
        with FleetServer(workdir=tmp_path / mode) as fleet:
            compute = AzureCompute(
                Settings(arm_endpoint=fleet.base_url, arm_ca_bundle=fleet.ca_bundle),
                mode=mode,
                polling_interval=0,
            )
            request = RunRequest(
                vm_id=vm_id("vm-linux-locked"),
                run_name="access",
                os_type="linux",
                script=script,
                parameters={"PORT": "22", "MANAGEMENT_SOURCES": "10.1.0.0/24", "DRY_RUN": "0"},
                timeout_seconds=120,
            )
            status = compute.start_run(request)
            while not status.done:
                status = compute.get_run(request.vm_id, request.run_name)
            assert status.result is not None, status.output + status.error
            verdicts[mode] = (
                status.state,
                status.exit_code,
                status.result["status"],
                status.result["before"],
                status.result["after"],
            )
    assert verdicts["managed"] == verdicts["action"]
    assert verdicts["managed"][:3] == ("succeeded", 0, "fixed")
    assert verdicts["managed"][4] == {"listening": True, "firewallBlocks": False}


def test_a_script_the_guest_cannot_start_is_a_failed_run(tmp_path: Path) -> None:
    ok, reason = sandbox_support()
    if not ok:
        pytest.skip(f"no guest sandbox here: {reason}")
    with FleetServer(workdir=tmp_path / "fleet") as fleet:
        compute = AzureCompute(
            Settings(arm_endpoint=fleet.base_url, arm_ca_bundle=fleet.ca_bundle), polling_interval=0
        )
        # An environment name the guest refuses: the run fails with the reason, the emulator keeps serving.
        request = RunRequest(
            vm_id=vm_id("vm-linux-disk"),
            run_name="bad",
            os_type="linux",
            script="#!/bin/bash\necho hi\n",
            parameters={"BAD=NAME": "x"},
        )
        compute.start_run(request)
        status = compute.get_run(request.vm_id, "bad")
        assert status.state == "failed" and status.exit_code is None
        assert "could not start the script" in status.error
        assert compute.get_vm(vm_id("vm-linux-disk")).power_state == "running"
