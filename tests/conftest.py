"""Fixtures shared by every test package."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def shared_fixtures() -> Path:
    """Reference payloads published by Microsoft, kept next to the repository (not in it)."""
    folder = REPO_ROOT.parent / "shared" / "fixtures" / "azure"
    if not folder.is_dir():
        pytest.skip(f"reference payloads not present at {folder}")
    return folder


@pytest.fixture(autouse=True)
def _private_state_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Per-user state (the default job store) goes to a folder of the test's own, never to ~/.local."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("xdg-state")))
