"""The sandbox itself: isolation, limits, timeouts and a clean teardown."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from localfleet.sandbox import DiskSpec, GuestSpec, Sandbox

from autoremediation.errors import InvalidInput

from .conftest import MakeSandbox

SH = "#!/bin/bash\n"


def netns_names() -> str:
    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout


def mounts() -> str:
    return Path("/proc/self/mountinfo").read_text()


def test_disks_are_filled_to_the_requested_level(make_sandbox: MakeSandbox) -> None:
    box = make_sandbox(GuestSpec(disks=(DiskSpec("/var", 64, 93), DiskSpec("/data", 16, 50))))

    used, total = box.disk_usage("/var")
    assert total == 64 * 1024 * 1024
    assert used / total == pytest.approx(0.93, abs=0.005)
    used, total = box.disk_usage("/data")
    assert used / total == pytest.approx(0.50, abs=0.01)
    df = box.run(SH + "df -P -B1 /var /data | tail -n 2", {}, 10).stdout.split()
    assert df[1] == str(64 * 1024 * 1024) and df[7] == str(16 * 1024 * 1024)


def test_a_full_disk_is_really_full(make_sandbox: MakeSandbox) -> None:
    box = make_sandbox(GuestSpec(disks=(DiskSpec("/data", 4, 90),)))

    done = box.run(SH + "head -c 8000000 /dev/zero > /data/big", {}, 10)

    assert done.exit_code != 0
    assert "No space left on device" in done.stderr


def test_the_guest_sees_the_host_read_only_and_only_loopback(make_sandbox: MakeSandbox) -> None:
    box = make_sandbox(GuestSpec())
    marker = f"/usr/sandbox-escape-{box.netns}"

    done = box.run(SH + f"touch {marker}; ip -o link | awk '{{print $2}}'; hostname", {}, 10)

    assert "Read-only file system" in done.stderr
    assert not Path(marker).exists()
    assert done.stdout.split() == ["lo:", "vm"]


def test_environment_reaches_the_script_verbatim(make_sandbox: MakeSandbox) -> None:
    box = make_sandbox(GuestSpec())
    value = "a b;$(echo no)`id`\nline2"

    done = box.run(SH + 'printf "%s" "$VALUE"', {"VALUE": value}, 10)

    assert done.stdout == value


def test_a_script_that_overruns_its_timeout_is_killed(make_sandbox: MakeSandbox) -> None:
    box = make_sandbox(GuestSpec())

    done = box.run(SH + "echo started; exec sleep 600", {}, timeout=0.5)

    assert done.timed_out
    assert done.exit_code is None
    assert done.stdout == "started\n"


def test_start_script_can_be_polled_and_killed(make_sandbox: MakeSandbox) -> None:
    box = make_sandbox(GuestSpec())
    process = box.start_script(SH + "exec sleep 600", {}, timeout=600)

    assert process.wait(timeout=0) is None
    process.kill()
    result = process.wait()

    assert result is not None and result.killed and not result.timed_out


def test_background_children_do_not_hold_the_run(make_sandbox: MakeSandbox) -> None:
    box = make_sandbox(GuestSpec())

    done = box.run(SH + "sleep 600 &\necho done", {}, timeout=60)

    assert done.exit_code == 0 and not done.timed_out
    assert done.stdout == "done\n"


def test_close_removes_namespace_mounts_and_files(tmp_path: Path) -> None:
    box = Sandbox("vm", GuestSpec(disks=(DiskSpec("/var", 8, 50),), sshd_stopped=True), tmp_path / "box")
    box.start()
    assert box.run(SH + "systemctl start ssh", {}, 10).exit_code == 0
    pid = int((box.state_dir / "pids" / "listener-22").read_text())
    assert box.netns in netns_names()

    box.close()

    assert box.netns not in netns_names()
    assert str(tmp_path / "box") not in mounts()
    assert not (tmp_path / "box").exists()
    assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
    box.close()  # twice is fine


def test_a_failed_start_cleans_up(tmp_path: Path) -> None:
    box = Sandbox(
        "vm", GuestSpec(disks=(DiskSpec("/var", 8, 50),), services=(("x", "bogus"),)), tmp_path / "b"
    )

    with pytest.raises(InvalidInput):
        box.start()

    assert box.netns not in netns_names()
    assert str(tmp_path / "b") not in mounts()


@pytest.mark.parametrize(
    "disk",
    [
        DiskSpec("var", 8, 50),
        DiskSpec("/var/../etc", 8, 50),
        DiskSpec("/var", 0, 50),
        DiskSpec("/var", 8, 100),
    ],
)
def test_bad_specs_are_refused(tmp_path: Path, disk: DiskSpec) -> None:
    with pytest.raises(InvalidInput):
        Sandbox("vm", GuestSpec(disks=(disk,)), tmp_path / "box")


def test_a_finished_script_is_reported_by_a_zero_timeout_poll(make_sandbox: MakeSandbox) -> None:
    # The local fleet polls with wait(timeout=0): once the script has exited, that poll must answer.
    box = make_sandbox(GuestSpec())
    process = box.start_script(SH + "echo hi", {}, timeout=60)
    os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOWAIT)  # exited, not yet reaped

    result = process.wait(timeout=0)

    assert result is not None and result.exit_code == 0 and result.stdout == "hi\n"
