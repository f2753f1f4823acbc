"""The classic-mode wrappers: parameters become environment variables, the exit status is reported,
and neither script text nor parameter values are ever expanded by the wrapper."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import tree_sitter_powershell
from tree_sitter import Language, Parser

from autoremediation import runresult
from autoremediation.azure import wrappers
from autoremediation.errors import InvalidInput


def run_linux(script: str, parameters: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Run the wrapper as the Linux agent would: a file, with the parameter values as positional arguments."""
    if not shutil.which("bash"):
        pytest.skip("bash is not installed")
    path = tmp_path / "script.sh"
    path.write_text(wrappers.linux_wrapper(script))
    args = [p["value"] for p in wrappers.linux_arguments(parameters)]
    return subprocess.run(
        ["bash", str(path), *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )


def test_parameters_arrive_as_environment_and_exit_status_is_reported(tmp_path: Path) -> None:
    script = '#!/bin/bash\necho "mount=$MOUNT_POINT target=$TARGET_FREE_PERCENT"\necho oops >&2\nexit 3\n'
    done = run_linux(script, {"MOUNT_POINT": "/var/log", "TARGET_FREE_PERCENT": "20"}, tmp_path)
    assert done.returncode == 3
    assert done.stdout == "mount=/var/log target=20\n"
    stderr, code = runresult.pop_exit_marker(done.stderr)
    assert (stderr, code) == ("oops\n", 3)


def test_values_and_script_text_are_never_expanded(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    value = f"$(touch {marker}) `touch {marker}` ; touch {marker}"
    script = f'#!/bin/bash\nprintf "%s\\n" "$MOUNT_POINT"\necho \'$(touch {marker})\' "$HOME_LITERAL"\n'
    done = run_linux(script, {"MOUNT_POINT": value}, tmp_path)
    assert done.returncode == 0
    assert done.stdout.splitlines()[0] == value
    assert not marker.exists()
    assert runresult.pop_exit_marker(done.stderr)[1] == 0


def test_a_bad_parameter_name_stops_before_the_script(tmp_path: Path) -> None:
    path = tmp_path / "script.sh"
    path.write_text(wrappers.linux_wrapper("#!/bin/bash\necho ran\n"))
    done = subprocess.run(["bash", str(path), "lower=1"], capture_output=True, text=True, check=False)
    assert done.returncode == 2 and done.stdout == ""
    assert runresult.pop_exit_marker(done.stderr)[1] == 2
    with pytest.raises(InvalidInput, match="UPPER_SNAKE"):
        wrappers.linux_arguments({"mountPoint": "/"})


def test_a_script_cannot_end_the_here_document(tmp_path: Path) -> None:
    probe = wrappers.linux_wrapper("echo hi\n")
    delimiter = probe.split("<<'", 1)[1].split("'", 1)[0]
    tricky = f"echo hi\n{delimiter}\n"
    assert wrappers.linux_wrapper(tricky) != probe  # the delimiter depends on the script itself
    done = run_linux(tricky + "echo after\n", {}, tmp_path)
    # Cut at the old delimiter, the wrapper itself would print "after" before the script's "hi".
    assert done.stdout == "hi\nafter\n"


def test_windows_wrapper_is_valid_powershell() -> None:
    parser = Parser(Language(tree_sitter_powershell.language()))
    script = (
        "param([string]$MountPoint = 'C:', [string]$DryRun = '0')\nWrite-Output \"$MountPoint\"\nexit 0\n"
    )
    text = wrappers.windows_wrapper(script, ["MountPoint", "DryRun"])
    tree = parser.parse(text.encode())
    assert not tree.root_node.has_error
    assert text.startswith("param(\n    [string]$MountPoint,\n    [string]$DryRun\n)")
    assert "REMEDIATION_EXIT_CODE" in text
    assert wrappers.windows_arguments({"MountPoint": "C:"}) == [{"name": "MountPoint", "value": "C:"}]


def test_windows_wrapper_refuses_what_would_break_it() -> None:
    with pytest.raises(InvalidInput, match="here-string"):
        wrappers.windows_wrapper("'@\nWrite-Output hi", [])
    with pytest.raises(InvalidInput, match="PascalCase"):
        wrappers.windows_wrapper("Write-Output hi", ["Mount-Point"])
