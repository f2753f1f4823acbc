"""The local fleet the end-to-end CLI tests run against (named to the CLI through the environment), and
Azurite (started once per test session) for the tests with many worker processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from localfleet.server import FleetServer

from tests.azurite import azurite, azurite_connection_string  # noqa: F401

HERE = Path(__file__).parent


@pytest.fixture
def fleet(tmp_path: Path, monkeypatch) -> Iterator[FleetServer]:
    with FleetServer(HERE / "fleet.yaml", workdir=tmp_path / "fleet") as server:
        monkeypatch.setenv("REMEDIATION_SQLITE_PATH", str(tmp_path / "jobs.db"))
        monkeypatch.setenv("REMEDIATION_ARM_ENDPOINT", server.base_url)
        monkeypatch.setenv("REMEDIATION_ARM_CA_BUNDLE", server.ca_bundle)
        monkeypatch.delenv("REMEDIATION_STORAGE", raising=False)
        monkeypatch.delenv("REMEDIATION_MANAGEMENT_SOURCES", raising=False)
        yield server
