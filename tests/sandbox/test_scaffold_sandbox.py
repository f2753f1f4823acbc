"""The scaffold of ``remediate new`` in the sandbox: not-fixed, so its test fails until filled in."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from localfleet.sandbox import GuestSpec

from autoremediation.catalog_load import load_catalog
from autoremediation.scaffold import scaffold

from .conftest import REPO_ROOT, MakeSandbox, env_for, parse_result


def test_the_scaffold_changes_nothing_and_says_not_fixed(make_sandbox: MakeSandbox, tmp_path: Path) -> None:
    root = tmp_path / "remediations"
    shutil.copytree(REPO_ROOT / "remediations", root)
    scaffold(root, "clear-tmp")
    remediation = load_catalog(root).get("clear-tmp")
    box = make_sandbox(GuestSpec())

    for dry_run in (False, True):
        raw = box.run(remediation.script("linux"), env_for(remediation, {}, dry_run=dry_run), timeout=60)
        result = parse_result(raw.stdout)
        assert result["status"] == "not-fixed" and raw.exit_code != 0, raw.stdout
        assert result["before"] == result["after"] == {"healthy": False}


def test_the_generated_sandbox_test_fails_until_the_script_is_written(tmp_path: Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(REPO_ROOT / "remediations", project / "remediations")
    shutil.copytree(
        REPO_ROOT / "tests", project / "tests", ignore=shutil.ignore_patterns("test_*.py", "__pycache__")
    )
    written = scaffold(project / "remediations", "clear-tmp", tests=project / "tests" / "sandbox")
    [test_file] = [p for p in written if p.suffix == ".py"]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", str(test_file)],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1, done.stdout[-2000:]
    # The fix test fails until the script fixes something; the dry-run test already holds for the stub.
    assert "1 failed, 1 passed" in done.stdout
    assert "FAILED tests/sandbox/test_clear_tmp.py::test_clear_tmp_fixes_the_condition" in done.stdout
