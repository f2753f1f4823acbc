"""``remediate campaign`` as an operator runs it: settings from the environment, the emulator as ARM."""

from __future__ import annotations

import argparse
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from localfleet.server import FleetServer

from autoremediation import campaign_cli

from .conftest import SUB, small_fleet

pytestmark = pytest.mark.fleet

FIXED = {"status": "fixed", "before": {"freePercent": 4}, "after": {"freePercent": 41}}


@pytest.fixture
def ring_fleet() -> Iterator[FleetServer]:
    spec = small_fleet(
        {
            "name": "ring-{index:02d}",
            "count": 6,
            "tags": {"autoremediation": "enabled", "ring": "a"},
            "outcomes": [{"durationSeconds": 0.2, "result": FIXED}],
        },
        {"name": "late-{index:02d}", "count": 2, "tags": {"autoremediation": "enabled", "ring": "b"}},
    )
    with FleetServer(spec, sandbox=False) as server:
        yield server


def test_the_cli_runs_a_campaign_on_the_fleet_with_worker_threads(
    ring_fleet: FleetServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {
        "REMEDIATION_ARM_ENDPOINT": ring_fleet.base_url,
        "REMEDIATION_ARM_CA_BUNDLE": ring_fleet.ca_bundle,
        "AZURE_SUBSCRIPTION_ID": SUB,
        "REMEDIATION_SQLITE_PATH": str(tmp_path / "jobs.db"),
        "REMEDIATION_POLL_SECONDS": "0.1",
    }.items():
        monkeypatch.setenv(name, value)
    parser = argparse.ArgumentParser(prog="remediate")
    campaign_cli.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        [
            "campaign",
            "--remediation",
            "free-disk-space",
            "--tag",
            "ring=a",
            "--param",
            "mountPoint=/var",
            "--max-concurrency",
            "50%",
            "--max-errors",
            "0",
            "--workers",
            "4",
        ]
    )
    out, err = io.StringIO(), io.StringIO()

    code = campaign_cli.run_campaign(args, out, campaign_cli.default_services, err=err)

    assert code == 0, err.getvalue()
    assert "completed: 6 succeeded, 0 failed, 0 skipped, 0 cancelled of 6" in out.getvalue()
    assert "free-disk-space on 6 VM(s), 3 at a time" in err.getvalue()
    assert all(ring_fleet.runs_started(f"ring-{i:02d}") == 1 for i in range(1, 7))
    assert all(ring_fleet.runs_started(f"late-{i:02d}") == 0 for i in range(1, 3))
