"""``remediate run`` and ``remediate campaign`` notify like the Function App: same runner, same channels."""

from __future__ import annotations

import argparse
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from localfleet.server import FleetServer

from autoremediation import campaign_cli
from tests.e2e.test_cli_fleet import disk_alert, nsg_event, remediate
from tests.fleet.conftest import SUB, small_fleet
from tests.helpers.receivers import Receiver

pytestmark = pytest.mark.fleet


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    with Receiver("ok") as made:
        monkeypatch.setenv("REMEDIATION_NOTIFY_URLS", f"json:{made.url}/hook/TOKEN")
        monkeypatch.setenv("REMEDIATION_NOTIFY_ON_SUCCESS", "true")
        yield made


def test_remediate_run_notifies_success_and_approval(
    fleet: FleetServer, receiver: Receiver, tmp_path: Path
) -> None:
    code, out = remediate("run", disk_alert(tmp_path))
    assert code == 0, out
    [done] = [r.json() for r in receiver.requests]
    assert done["event"] == "succeeded" and done["job"]["vmName"] == "vm-disk"
    code, out = remediate("run", nsg_event(tmp_path, "nsg-locked", "ev-notify"))
    assert code == 0, out
    waiting = receiver.requests[-1].json()
    assert waiting["event"] == "awaiting-approval" and waiting["job"]["vmName"] == "vm-locked"
    assert waiting["approve"]["cli"] == f"remediate approve {waiting['job']['id']}"


def test_a_campaign_notifies_each_job(
    receiver: Receiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fixed = {"status": "fixed", "before": {"freePercent": 4}, "after": {"freePercent": 41}}
    spec = small_fleet(
        {
            "name": "ring-{index:02d}",
            "count": 3,
            "tags": {"autoremediation": "enabled"},
            "outcomes": [{"durationSeconds": 0.1, "result": fixed}],
        }
    )
    with FleetServer(spec, sandbox=False) as server:
        for name, value in {
            "REMEDIATION_ARM_ENDPOINT": server.base_url,
            "REMEDIATION_ARM_CA_BUNDLE": server.ca_bundle,
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
                "autoremediation=enabled",
                "--param",
                "mountPoint=/var",
                "--max-concurrency",
                "2",
                "--max-errors",
                "0",
                "--workers",
                "2",
            ]
        )
        out, err = io.StringIO(), io.StringIO()
        code = campaign_cli.run_campaign(args, out, campaign_cli.default_services, err=err)
    assert code == 0, err.getvalue()
    told = [r.json() for r in receiver.requests]
    assert sorted(t["job"]["vmName"] for t in told) == ["ring-01", "ring-02", "ring-03"]
    assert {t["event"] for t in told} == {"succeeded"}
    assert len({t["job"]["campaignId"] for t in told}) == 1
