"""Sandboxes for the remediation scripts: one per test, removed also when the test fails."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from localfleet.sandbox import GuestSpec, Sandbox, ScriptResult, sandbox_available

from autoremediation.catalog import Remediation
from autoremediation.catalog_load import load_catalog

REPO_ROOT = Path(__file__).resolve().parents[2]
CATALOG = load_catalog(REPO_ROOT / "remediations")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    ok, reason = sandbox_available()
    for item in items:
        if item.path.is_relative_to(Path(__file__).parent):
            item.add_marker(pytest.mark.sandbox)
            if not ok:
                item.add_marker(pytest.mark.skip(reason=f"sandbox unavailable: {reason}"))


@dataclass(frozen=True)
class Run:
    """A finished script run with its parsed result line."""

    raw: ScriptResult
    result: dict[str, Any]

    @property
    def status(self) -> str:
        return str(self.result["status"])


def parse_result(stdout: str) -> dict[str, Any]:
    """The REMEDIATION_RESULT line, which the contract says is the last line of stdout."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    assert lines, "the script printed nothing"
    prefix = "REMEDIATION_RESULT "
    assert lines[-1].startswith(prefix), f"last line is not a result line: {lines[-1]!r}"
    result = json.loads(lines[-1][len(prefix) :])
    assert isinstance(result, dict)
    assert result["status"] in {"fixed", "already-ok", "not-fixed", "error"}
    assert isinstance(result["before"], dict) and isinstance(result["after"], dict)
    return result


def env_for(remediation: Remediation, given: Mapping[str, Any], *, dry_run: bool = False) -> dict[str, str]:
    """Parameters exactly as the dispatcher passes them to a Linux script."""
    plain, protected = remediation.run_parameters(
        remediation.resolve_parameters(given, "linux"), "linux", dry_run=dry_run
    )
    return {**plain, **protected}


def run_script(
    box: Sandbox, remediation_id: str, given: Mapping[str, Any] | None = None, *, dry_run: bool = False
) -> Run:
    remediation = CATALOG.get(remediation_id)
    return run_raw(box, remediation_id, env_for(remediation, given or {}, dry_run=dry_run))


def run_raw(box: Sandbox, remediation_id: str, env: Mapping[str, str]) -> Run:
    """Run a script with an environment that skipped validation (what a hostile caller would send)."""
    raw = box.run(CATALOG.get(remediation_id).script("linux"), env, timeout=60)
    assert not raw.timed_out, f"{remediation_id} timed out: {raw.stdout[-2000:]}"
    result = parse_result(raw.stdout)
    # The contract: exit 0 exactly for fixed / already-ok.
    assert (raw.exit_code == 0) == (result["status"] in {"fixed", "already-ok"}), (raw.exit_code, result)
    return Run(raw, result)


# What the make_sandbox fixture hands a test: make(spec=None, name="vm") -> a started Sandbox.
MakeSandbox = Callable[..., Sandbox]


@pytest.fixture
def make_sandbox(tmp_path: Path) -> Iterator[Callable[..., Sandbox]]:
    boxes: list[Sandbox] = []

    def make(spec: GuestSpec | None = None, name: str = "vm") -> Sandbox:
        box = Sandbox(name, spec or GuestSpec(), tmp_path / f"box-{len(boxes)}")
        boxes.append(box)
        box.start()
        return box

    yield make
    for box in boxes:
        box.close()


def host_firewall() -> str:
    """The host's own firewall, which no sandbox may change."""
    ipt = subprocess.run(["iptables", "-w", "-S"], capture_output=True, text=True, check=False).stdout
    nft = subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True, check=False).stdout
    return ipt + "\n" + nft


def tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``root`` with its size and mtime: equal trees mean nothing changed."""
    return {
        str(p.relative_to(root)): (p.lstat().st_size, p.lstat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file() or p.is_symlink()
    }
