"""``remediate campaign``: exit codes, progress on stderr, resume; the engine on SQLite and a fake Compute."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path
from typing import Any

import pytest

from autoremediation import campaign_cli
from autoremediation.services import Services
from tests.helpers.fakes import vm_id
from tests.unit.test_campaigns_support import CampaignWorld, make_compute, vm_names


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def parse(world: CampaignWorld, argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="remediate")
    commands = parser.add_subparsers(dest="command", required=True)

    def factory(args: argparse.Namespace) -> Services:
        return world.services

    campaign_cli.add_parser(commands, services_factory=factory)
    return parser.parse_args(["campaign", *argv])


def invoke(world: CampaignWorld, argv: list[str], err: io.StringIO | None = None) -> tuple[int, str, str]:
    args = parse(world, argv)
    out, err = io.StringIO(), err if err is not None else io.StringIO()
    code = campaign_cli.run_campaign(args, out, lambda a: world.services, err=err)
    return code, out.getvalue(), err.getvalue()


BASE = ["--remediation", "free-disk-space", "--resource-group", "rg", "--param", "mountPoint=/var"]


def test_a_completed_campaign_exits_0_with_a_line_per_progress_change(tmp_path: Path) -> None:
    world = CampaignWorld(tmp_path, make_compute(6))
    code, out, err = invoke(world, [*BASE, "--max-concurrency", "2", "--max-errors", "0"])

    assert code == 0
    assert out.startswith("campaign campaign-") and "completed: 6 succeeded, 0 failed" in out
    lines = err.splitlines()
    assert "free-disk-space on 6 VM(s), 2 at a time, stop after 0 error(s)" in lines[0]
    assert "\r" not in err
    assert lines[-1].startswith("[########################] 100% 6/6  ok 6")
    assert len(lines) == len(set(lines))  # a line per change, never the same line twice


def test_on_a_terminal_the_bar_redraws_in_place(tmp_path: Path) -> None:
    world = CampaignWorld(tmp_path, make_compute(3))
    tty = Tty()
    code, _, _ = invoke(world, [*BASE, "--max-concurrency", "1", "--max-errors", "0"], err=tty)

    assert code == 0
    text = tty.getvalue()
    assert text.count("\r") >= 3  # redrawn in place, once per change
    last = text.rsplit("\r", 1)[-1]
    assert "3/3" in last and "ok 3" in last and "(completed)" in last


def test_a_campaign_stopped_on_errors_exits_1_and_says_why(tmp_path: Path) -> None:
    compute = make_compute(10)
    compute.failing = set(vm_names(10))
    world = CampaignWorld(tmp_path, compute)
    code, out, _ = invoke(world, [*BASE, "--max-concurrency", "2", "--max-errors", "10%", "--json"])

    assert code == 1
    status = json.loads(out)
    assert status["status"] == "stopped"
    assert status["stopReason"].startswith("2 VM(s) failed, more than the 1 allowed")
    assert status["counts"]["cancelled"] == 10 - len(compute.requests)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--resource-group", "rg", "--max-concurrency", "1", "--max-errors", "0"],
            "--remediation is required",
        ),
        (["--remediation", "free-disk-space", "--max-concurrency", "1", "--max-errors", "0"], "name the VMs"),
        ([*BASE, "--max-errors", "0"], "--max-concurrency is required"),
        ([*BASE, "--max-concurrency", "ten", "--max-errors", "0"], "maxConcurrency 'ten' must be"),
        (
            [*BASE, "--max-concurrency", "1", "--max-errors", "0", "--param", "oops"],
            "--param 'oops' must look",
        ),
        (
            [*BASE, "--max-concurrency", "1", "--max-errors", "0", "--targets", "/nonexistent/vms.txt"],
            "--targets cannot be combined",
        ),
        (
            [
                "--remediation",
                "nope",
                "--resource-group",
                "rg",
                "--max-concurrency",
                "1",
                "--max-errors",
                "0",
            ],
            "unknown remediation 'nope'",
        ),
        (["--resume", "campaign-unknown"], "no campaign 'campaign-unknown'"),
        (["--resume", "x", "--remediation", "free-disk-space"], "--resume takes the campaign id alone"),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path: Path, argv: list[str], message: str) -> None:
    world = CampaignWorld(tmp_path, make_compute(2))
    code, out, err = invoke(world, argv)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("remediate campaign: ") and message in err


def test_targets_file(tmp_path: Path) -> None:
    world = CampaignWorld(tmp_path, make_compute(4))
    listing = tmp_path / "vms.txt"
    listing.write_text(f"# canary ring\n{vm_id('vm001')}\n\n{vm_id('vm003')}\n")
    code, out, _ = invoke(
        world,
        [
            "--remediation",
            "free-disk-space",
            "--targets",
            str(listing),
            "--max-concurrency",
            "5",
            "--max-errors",
            "0",
            "--json",
        ],
    )
    assert code == 0
    assert json.loads(out)["counts"]["succeeded"] == 2
    assert sorted(r.vm_id for r in world.compute.requests) == [vm_id("vm001"), vm_id("vm003")]

    unreadable = tmp_path / "bad.json"
    unreadable.write_text("[not json")
    code, _, err = invoke(
        world,
        [
            "--remediation",
            "free-disk-space",
            "--targets",
            str(unreadable),
            "--max-concurrency",
            "5",
            "--max-errors",
            "0",
        ],
    )
    assert code == 2 and "not valid JSON" in err


def test_resume_by_id_after_the_driver_died(tmp_path: Path) -> None:
    world = CampaignWorld(tmp_path, make_compute(8))
    from autoremediation import campaigns

    started = campaigns.start_campaign(
        world.services,
        {
            "remediation": "free-disk-space",
            "targets": {"resourceGroup": "rg"},
            "maxConcurrency": 3,
            "maxErrors": 0,
            "id": "ring-1",
        },
        actor="alice",
    )
    assert started["counts"]["inFlight"] == 3
    world.services = world.new_services()  # the process that started it is gone, with its queue

    code, out, _ = invoke(world, ["--resume", "ring-1", "--json"])
    assert code == 0
    status: dict[str, Any] = json.loads(out)
    assert status["counts"]["succeeded"] == 8
    assert set(world.compute.executions.values()) == {1}


def test_skipped_vms_are_listed_with_their_reasons(tmp_path: Path) -> None:
    from tests.helpers.fakes import vm_facts

    compute = make_compute(3)
    compute.add(vm_facts("vm-out", tags={}))  # has not opted in
    compute.add(vm_facts("vm-out2", tags={}))
    world = CampaignWorld(tmp_path, compute)
    code, out, _ = invoke(world, [*BASE, "--max-concurrency", "5", "--max-errors", "0"])
    assert code == 0, out
    assert "3 succeeded, 0 failed, 2 skipped" in out
    assert "  skipped 2: opt-in: the VM has not opted in (tag autoremediation=enabled is missing)" in out


def test_a_dry_run_campaign_says_nothing_changed_and_what_the_scripts_answered(tmp_path: Path) -> None:
    world = CampaignWorld(tmp_path, make_compute(2))
    code, out, _ = invoke(world, [*BASE, "--max-concurrency", "2", "--max-errors", "0", "--dry-run"])
    assert code == 0, out
    assert "2 dry-run (nothing changed)" in out
    assert "  2 VM(s): dry run: " in out


def test_ctrl_c_stops_the_campaign_with_the_resume_command(tmp_path: Path, monkeypatch) -> None:
    world = CampaignWorld(tmp_path, make_compute(4))

    def interrupted(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(campaign_cli, "drive", interrupted)
    code, out, err = invoke(world, [*BASE, "--max-concurrency", "1", "--max-errors", "0", "--id", "ring-9"])
    assert (code, out) == (130, "")
    assert err.splitlines()[-1] == (
        "remediate campaign: interrupted; jobs already sent keep their state. "
        "Resume with: remediate campaign --resume ring-9"
    )


def test_campaign_takes_azure_or_a_fleet_file(tmp_path: Path) -> None:
    world = CampaignWorld(tmp_path, make_compute(1))
    assert parse(world, [*BASE, "--azure"]).azure is True
    assert parse(world, [*BASE, "--fleet", "f.yaml"]).fleet == "f.yaml"
    with pytest.raises(SystemExit):
        parse(world, [*BASE, "--azure", "--fleet", "f.yaml"])
