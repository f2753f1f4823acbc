"""free-disk-space on a real, size-limited /var filled to 93 % with logs, caches, dumps and user data."""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from localfleet.sandbox import DiskSpec, GuestSpec, Sandbox, seeded_files

from .conftest import MakeSandbox, host_firewall, run_raw, run_script, tree

FULL_VAR = GuestSpec(disks=(DiskSpec("/var", 64, 93),), ssh_listening=False)
USER_DATA = [f.guest_path for f in seeded_files("/var") if f.kind == "user"]
ACTIVE = [f.guest_path for f in seeded_files("/var") if f.kind == "active"]
APT_CACHE = [f.guest_path for f in seeded_files("/var") if f.guest_path.startswith("/var/cache/apt/")]
OLD_ROTATED = [
    "/var/log/syslog.2.gz",
    "/var/log/syslog.3.gz",
    "/var/log/auth.log.1",
    "/var/log/kern.log.old",
    "/var/log/dpkg.log-20260101",
    "/var/log/nginx/access.log.4.gz",
]


def keep_rotated_logs(box: Sandbox) -> None:
    """Make the old rotated logs young, so that no target the catalog allows (at most 50 %) is reachable
    and every step runs."""
    now = time.time()
    for path in OLD_ROTATED:
        os.utime(box.host_path(path), (now, now))


def exists(box: Sandbox, guest_path: str) -> bool:
    return box.host_path(guest_path).exists()


def free_percent(box: Sandbox) -> float:
    used, total = box.disk_usage("/var")
    return (total - used) * 100 / total


@pytest.fixture
def full_var(make_sandbox: MakeSandbox) -> Sandbox:
    box = make_sandbox(FULL_VAR)
    assert free_percent(box) == pytest.approx(7, abs=0.5)
    return box


def test_frees_the_disk_to_the_target_and_stops_there(full_var: Sandbox) -> None:
    run = run_script(full_var, "free-disk-space", {"mountPoint": "/var", "targetFreePercent": 20})

    assert run.status == "fixed"
    assert run.result["before"]["freePercent"] < 8
    assert run.result["after"]["freePercent"] >= 20
    assert free_percent(full_var) >= 20  # the filesystem agrees with the report
    assert run.result["after"]["sizeBytes"] == 64 * 1024 * 1024
    # The package cache was enough: the logs, the journal and the core dumps are still there.
    assert not any(exists(full_var, p) for p in APT_CACHE)
    assert all(exists(full_var, p) for p in OLD_ROTATED)
    assert exists(full_var, "/var/crash/_usr_sbin_appd.0.crash")
    assert [a["step"] for a in run.result["actions"]] == ["package-cache"]


def test_deep_clean_keeps_live_logs_recent_files_and_user_data(full_var: Sandbox) -> None:
    run = run_script(full_var, "free-disk-space", {"mountPoint": "/var", "targetFreePercent": 50})

    assert run.status == "fixed", run.raw.stdout
    assert free_percent(full_var) >= 50
    assert not any(exists(full_var, p) for p in OLD_ROTATED)
    assert not exists(full_var, "/var/crash/_usr_sbin_appd.0.crash")
    assert not exists(full_var, "/var/lib/systemd/coredump/core.appd.0.1d2c.zst")
    assert not exists(full_var, "/var/tmp/build-cache.tar")
    archived = list(full_var.host_path("/var/log/journal/3f1e0c").glob("system@*.journal"))
    # journalctl does the vacuuming; a guest without it keeps its journal.
    assert archived == [] if shutil.which("journalctl") else len(archived) == 1
    # Younger than olderThanDays, live, or user data: all still there.
    assert exists(full_var, "/var/log/syslog.1")
    assert exists(full_var, "/var/tmp/session-recent.bin")
    for path in ACTIVE + USER_DATA:
        assert exists(full_var, path), path


def test_second_run_is_already_ok_and_changes_nothing(full_var: Sandbox) -> None:
    assert run_script(full_var, "free-disk-space", {"mountPoint": "/var"}).status == "fixed"
    before = tree(full_var.host_path("/var"))

    again = run_script(full_var, "free-disk-space", {"mountPoint": "/var"})

    assert again.status == "already-ok"
    assert again.result["actions"] == []
    assert tree(full_var.host_path("/var")) == before


def test_dry_run_changes_nothing_and_says_what_it_would_free(full_var: Sandbox) -> None:
    before = tree(full_var.host_path("/var"))

    run = run_script(full_var, "free-disk-space", {"mountPoint": "/var"}, dry_run=True)

    assert run.result["dryRun"] is True
    assert run.status == "not-fixed"
    assert run.result["wouldFreeBytes"] > 0.13 * 64 * 1024 * 1024  # enough to reach 20 %
    assert run.result["after"]["freeBytes"] == run.result["before"]["freeBytes"]
    assert tree(full_var.host_path("/var")) == before


def test_unreachable_target_is_not_fixed_and_user_data_survives(full_var: Sandbox) -> None:
    keep_rotated_logs(full_var)
    run = run_script(full_var, "free-disk-space", {"mountPoint": "/var", "targetFreePercent": 50})

    assert run.status == "not-fixed"
    assert run.raw.exit_code == 1
    assert run.result["after"]["freePercent"] > run.result["before"]["freePercent"]
    for path in ACTIVE + USER_DATA:
        assert exists(full_var, path), path


@pytest.mark.parametrize(
    ("env", "reason"),
    [
        ({"OLDER_THAN_DAYS": "2"}, "OLDER_THAN_DAYS must be at least 3"),
        ({"TARGET_FREE_PERCENT": "51"}, "TARGET_FREE_PERCENT must be at most 50"),
    ],
)
def test_the_script_keeps_the_floors_whatever_the_caller_checked(full_var: Sandbox, env, reason) -> None:
    """The catalog refuses these before dispatch; the script refuses them again, changing nothing."""
    before = tree(full_var.host_path("/var"))

    run = run_raw(full_var, "free-disk-space", {"MOUNT_POINT": "/var", "DRY_RUN": "0", **env})

    assert (run.raw.exit_code, run.status) == (2, "error")
    assert reason in run.result["reason"]
    assert tree(full_var.host_path("/var")) == before


def test_a_directory_that_is_not_a_mount_point_is_refused(full_var: Sandbox) -> None:
    before = tree(full_var.host_path("/var"))

    run = run_script(full_var, "free-disk-space", {"mountPoint": "/var/log"})

    assert run.status == "error"
    assert "not a mount point" in run.result["reason"]
    assert tree(full_var.host_path("/var")) == before


def test_other_mounts_are_left_alone(make_sandbox: MakeSandbox) -> None:
    # /tmp is another filesystem than the /var disk: its old temp files are not the target's.
    box = make_sandbox(FULL_VAR)
    old_tmp = box.host_path("/tmp/old-upload-9f2a.tmp")
    assert old_tmp.exists()
    keep_rotated_logs(box)

    run = run_script(box, "free-disk-space", {"mountPoint": "/var", "targetFreePercent": 50})

    assert run.status == "not-fixed"
    assert old_tmp.exists()


@pytest.fixture
def host_canaries() -> Iterator[list[Path]]:
    """Old, junk-looking files on the host: a script that escaped its sandbox would delete them."""
    tag = uuid.uuid4().hex[:8]
    paths = [Path(f"/tmp/ar-host-canary-{tag}.tmp"), Path(f"/var/log/ar-host-canary-{tag}.log.1")]
    old = time.time() - 90 * 86400
    for path in paths:
        path.write_text("must survive\n")
        os.utime(path, (old, old))
    yield paths
    for path in paths:
        path.unlink(missing_ok=True)


def test_nothing_outside_the_sandbox_changes(make_sandbox: MakeSandbox, host_canaries: list[Path]) -> None:
    box = make_sandbox(GuestSpec(disks=(DiskSpec("/", 64, 93),), ssh_listening=False))
    firewall = host_firewall()

    run = run_script(box, "free-disk-space", {"mountPoint": "/", "targetFreePercent": 50})

    assert run.result["after"]["freePercent"] > run.result["before"]["freePercent"]
    assert not box.host_path("/tmp/old-upload-9f2a.tmp").exists()  # the guest's /tmp was cleaned
    assert all(path.exists() for path in host_canaries)  # the host's was not
    assert host_firewall() == firewall


def test_container_images_are_only_pruned_on_request(full_var: Sandbox) -> None:
    params = {"mountPoint": "/var", "targetFreePercent": 50}
    keep_rotated_logs(full_var)

    off = run_script(full_var, "free-disk-space", params)
    on = run_script(full_var, "free-disk-space", {**params, "pruneContainerImages": True})

    notes = {r["step"]: r["note"] for r in (off.result["actions"])}
    assert notes["container-images"] == ""  # not asked: docker is never called
    notes = {r["step"]: r["note"] for r in (on.result["actions"])}
    # The guest has no reachable Docker daemon: the step says so and the run goes on.
    assert notes["container-images"] in {"docker not installed", "docker daemon not reachable"}
    assert on.status == "not-fixed"
