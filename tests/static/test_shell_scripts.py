"""shellcheck and shfmt on every shell script of the catalog."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from .conftest import SCRIPT_ID, SHELL_SCRIPTS, require_tool

# One style for every script: 2-space indent, indented `case` branches.
SHFMT_FLAGS = ["-i", "2", "-ci"]


def test_there_are_scripts_to_check() -> None:
    assert len(SHELL_SCRIPTS) >= 5


@pytest.mark.parametrize("script", SHELL_SCRIPTS, ids=SCRIPT_ID)
def test_shellcheck_is_clean(script: Path) -> None:
    tool = require_tool("shellcheck")
    done = subprocess.run(
        [tool, "--shell=bash", "--severity=style", str(script)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("script", SHELL_SCRIPTS, ids=SCRIPT_ID)
def test_shfmt_has_nothing_to_change(script: Path) -> None:
    tool = require_tool("shfmt")
    done = subprocess.run([tool, "-d", *SHFMT_FLAGS, str(script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("script", SHELL_SCRIPTS, ids=SCRIPT_ID)
def test_strict_mode_and_no_eval(script: Path) -> None:
    text = script.read_text()
    assert text.startswith("#!/bin/bash\n")
    assert "\nset -euo pipefail\n" in text
    # A command position: the start of a line or after ; & | ( { then/do.
    command = re.compile(r"(^|[;&|({]|\bthen|\bdo)\s*(eval|source|\.)\s")
    offenders = [line for line in text.splitlines() if command.search(line.split(" #", 1)[0])]
    assert offenders == []
    assert "bash -c" not in text and "sh -c" not in text
