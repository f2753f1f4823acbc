"""What the static checks read: every remediation folder of the catalog."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
REMEDIATIONS = REPO_ROOT / "remediations"
FOLDERS = sorted(p.parent for p in REMEDIATIONS.glob("*/remediation.yaml"))
SHELL_SCRIPTS = sorted(REMEDIATIONS.glob("*/*.sh"))
POWERSHELL_SCRIPTS = sorted(REMEDIATIONS.glob("*/*.ps1"))


def require_tool(name: str) -> str:
    """The tool's path; without it the test skips, except in CI where a missing tool is a failure."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (Debian package: {name}; `make setup` installs it)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path
