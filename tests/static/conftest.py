"""What the static checks read: every remediation folder of the catalog."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from autoremediation.catalog_load import load_catalog

REPO_ROOT = Path(__file__).resolve().parents[2]
REMEDIATIONS = REPO_ROOT / "remediations"
FOLDERS = sorted(p.parent for p in REMEDIATIONS.glob("*/remediation.yaml"))
# The checks read each script as it is dispatched: the shared prelude joined in by the catalog loader.
_JOINED = Path(tempfile.mkdtemp(prefix="joined-scripts-"))
atexit.register(shutil.rmtree, _JOINED, True)


def _joined(os_type: str, suffix: str) -> list[Path]:
    catalog = load_catalog(REMEDIATIONS)
    paths = []
    for remediation in sorted(catalog.remediations.values(), key=lambda r: r.id):
        if os_type in remediation.scripts:
            path = _JOINED / remediation.id / f"{os_type}{suffix}"
            path.parent.mkdir(exist_ok=True)
            path.write_text(remediation.script(os_type), encoding="utf-8")
            paths.append(path)
    return paths


SHELL_SCRIPTS = _joined("linux", ".sh")
POWERSHELL_SCRIPTS = _joined("windows", ".ps1")
SCRIPT_ID = lambda p: f"{p.parent.name}/{p.name}"  # noqa: E731 - a pytest id function


def require_tool(name: str) -> str:
    """The tool's path; without it the test skips, except in CI where a missing tool is a failure."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (Debian package: {name}; `make setup` installs it)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path
