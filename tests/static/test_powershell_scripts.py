"""A syntax check of every PowerShell script (PowerShell itself cannot run in the test suite)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import tree_sitter_powershell
from tree_sitter import Language, Node, Parser

from .conftest import POWERSHELL_SCRIPTS, SCRIPT_ID

PARSER = Parser(Language(tree_sitter_powershell.language()))


def problems(node: Node, source: bytes) -> list[str]:
    found = []
    if node.type == "ERROR" or node.is_missing:
        row, column = node.start_point
        snippet = source[node.start_byte : node.end_byte][:60].decode(errors="replace")
        found.append(f"{'missing' if node.is_missing else 'error'} at {row + 1}:{column + 1}: {snippet!r}")
    for child in node.children:
        found.extend(problems(child, source))
    return found


def test_the_checker_finds_a_syntax_error() -> None:
    source = b"param([string]$A = '1'\nif ($A -eq { Write-Output 'x'\n"
    assert problems(PARSER.parse(source).root_node, source)


def test_there_are_scripts_to_check() -> None:
    assert len(POWERSHELL_SCRIPTS) >= 5


@pytest.mark.parametrize("script", POWERSHELL_SCRIPTS, ids=SCRIPT_ID)
def test_parses_without_errors(script: Path) -> None:
    source = script.read_bytes()
    assert problems(PARSER.parse(source).root_node, source) == []


@pytest.mark.parametrize("script", POWERSHELL_SCRIPTS, ids=SCRIPT_ID)
def test_never_evaluates_text_as_code(script: Path) -> None:
    text = script.read_text().lower()
    for word in ("invoke-expression", "iex ", "[scriptblock]::create", "add-type", "start-process"):
        assert word not in text, f"{script}: {word}"
    assert re.search(r"\$erroractionpreference = 'stop'", text)
    assert "set-strictmode" in text
