"""``remediate new``: the scaffold passes ``validate`` and the static checks every script passes."""

from __future__ import annotations

import shutil
import subprocess
from io import StringIO
from pathlib import Path

import pytest

from autoremediation.cli import main

from .conftest import REMEDIATIONS, require_tool
from .test_powershell_scripts import PARSER, problems
from .test_shell_scripts import SHFMT_FLAGS


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    root = tmp_path / "remediations"
    shutil.copytree(REMEDIATIONS, root)
    (tmp_path / "tests" / "sandbox").mkdir(parents=True)
    return root


def remediate(*argv: str) -> tuple[int, str]:
    out = StringIO()
    return main(list(argv), out=out), out.getvalue()


def test_a_new_remediation_validates_and_says_what_comes_next(catalog: Path) -> None:
    code, out = remediate("--catalog", str(catalog), "new", "clear-tmp", "--condition", "tmp-full")
    assert code == 0, out
    folder = catalog / "clear-tmp"
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md",
        "linux.sh",
        "remediation.yaml",
        "windows.ps1",
    ]
    assert (catalog.parent / "tests" / "sandbox" / "test_clear_tmp.py").is_file()
    assert "add a route for condition tmp-full" in out
    code, out = remediate("--catalog", str(catalog), "validate")
    assert code == 0, out
    assert "note: no route reaches clear-tmp" in out and out.splitlines()[-1].startswith("ok: 6 remediations")


def test_new_refuses_a_taken_or_malformed_id(catalog: Path, capsys) -> None:
    assert remediate("--catalog", str(catalog), "new", "free-disk-space")[0] == 2
    assert "exists already" in capsys.readouterr().err
    assert remediate("--catalog", str(catalog), "new", "Clear_Tmp")[0] == 2
    assert "is not a remediation id" in capsys.readouterr().err


def test_the_scaffold_scripts_pass_the_static_checks(catalog: Path) -> None:
    remediate("--catalog", str(catalog), "new", "clear-tmp")
    script = catalog / "clear-tmp" / "linux.sh"
    shellcheck = subprocess.run(
        [require_tool("shellcheck"), "--shell=bash", "--severity=style", str(script)],
        capture_output=True,
        text=True,
    )
    assert shellcheck.returncode == 0, shellcheck.stdout
    shfmt = subprocess.run(
        [require_tool("shfmt"), "-d", *SHFMT_FLAGS, str(script)], capture_output=True, text=True
    )
    assert shfmt.returncode == 0, shfmt.stdout
    source = (catalog / "clear-tmp" / "windows.ps1").read_bytes()
    assert problems(PARSER.parse(source).root_node, source) == []


def test_validate_says_in_words_what_a_string_parameter_needs(catalog: Path) -> None:
    remediate("--catalog", str(catalog), "new", "clear-tmp")
    yaml_file = catalog / "clear-tmp" / "remediation.yaml"
    yaml_file.write_text(yaml_file.read_text().replace("    pattern: '^[A-Za-z0-9_.-]{1,64}$'\n", ""))
    code, out = remediate("--catalog", str(catalog), "validate")
    assert code == 1
    [line] = [x for x in out.splitlines() if "parameters.target" in x]
    assert "a string parameter needs a pattern" in line and "or an enum" in line
    assert "is not valid under any of the given schemas" not in out


def test_validate_reports_what_the_static_tests_would(catalog: Path) -> None:
    remediate("--catalog", str(catalog), "new", "clear-tmp")
    folder = catalog / "clear-tmp"
    (folder / "linux.sh").write_text(
        (folder / "linux.sh").read_text().replace('TARGET="${TARGET-example}"', "")
    )
    (folder / "README.md").write_text((folder / "README.md").read_text().replace("## Risks", "## Dangers"))
    ps1 = folder / "windows.ps1"
    ps1.write_text(ps1.read_text().replace("    [string]$Target = 'example',\n", ""))
    code, out = remediate("--catalog", str(catalog), "validate")
    assert code == 1
    errors = [line for line in out.splitlines() if line.startswith("error: ")]
    assert len(errors) == 3, out
    assert any("linux.sh: read parameter target as TARGET with a default" in e for e in errors)
    assert any("README.md: add a section '## Risks'" in e for e in errors)
    assert any(
        "windows.ps1: the param() block must declare, in this order, [string]$Target, [string]$DryRun" in e
        for e in errors
    )


def test_validate_refuses_a_pattern_that_lets_shell_syntax_through(catalog: Path) -> None:
    remediate("--catalog", str(catalog), "new", "clear-tmp")
    yaml_file = catalog / "clear-tmp" / "remediation.yaml"
    yaml_file.write_text(yaml_file.read_text().replace("'^[A-Za-z0-9_.-]{1,64}$'", "'^.{1,64}$'"))
    code, out = remediate("--catalog", str(catalog), "validate")
    assert code == 1
    assert "parameters.target.pattern accepts ';': narrow it so ';' cannot reach the script" in out
