"""The ``remediate`` command as an operator meets it: exit codes, one-line errors, the JSON shape."""

from __future__ import annotations

import json
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest

from autoremediation.cli import main
from tests.helpers.catalogs import REPO, make_catalog

SAMPLES = REPO / "samples"


def run(argv, capsys, stdin: str | None = None, monkeypatch=None):
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", StringIO(stdin))
    out = StringIO()
    code = main(argv, out=out)
    return code, out.getvalue(), capsys.readouterr().err


def test_plan_json_shape(capsys) -> None:
    code, out, err = run(
        ["plan", "--json", str(SAMPLES / "disk-full-alert.json"), str(SAMPLES / "manual-request.json")],
        capsys,
    )
    assert (code, err) == (0, "")
    data = json.loads(out)
    assert set(data) == {"signals", "plans", "notes"}
    assert [s["source"] for s in data["signals"]] == ["alert", "manual"]
    assert {"id", "source", "type", "state", "targets"} <= set(data["signals"][0])
    assert data["signals"][0]["state"] == "fired"
    plan = data["plans"][0]
    assert {"signal", "condition", "target", "remediation", "parameters", "decision", "reason"} <= set(plan)
    assert plan["target"].endswith("/virtualMachines/vm-linux-disk")
    assert (plan["condition"], plan["remediation"], plan["decision"]) == (
        "disk-full",
        "free-disk-space",
        "dispatch",
    )
    assert plan["parameters"]["mountPoint"] == "/var"
    assert plan["signal"] == data["signals"][0]["id"]


def test_plan_resolved_alert_that_azure_still_records_as_fired_is_refused(capsys) -> None:
    # The demo fleet's Azure Monitor holds the disk-full alert as Fired: a Resolved claim is not confirmed.
    code, out, _ = run(["plan", "--json", str(SAMPLES / "disk-full-alert-resolved.json")], capsys)
    data = json.loads(out)
    assert code == 0 and data["signals"][0]["state"] == "resolved"
    assert data["plans"] == []
    assert [n["message"].split(" Azure Monitor records")[0] for n in data["notes"]] == ["provenance:"]
    assert "as Fired, the payload says resolved" in data["notes"][0]["message"]


def test_plan_reads_stdin(capsys, monkeypatch) -> None:
    payload = (SAMPLES / "manual-request.json").read_text()
    code, out, _ = run(["plan", "--json", "-"], capsys, stdin=payload, monkeypatch=monkeypatch)
    assert code == 0 and json.loads(out)["plans"][0]["remediation"] == "free-disk-space"


def test_plan_table_is_readable(capsys) -> None:
    code, out, _ = run(["plan", str(SAMPLES / "disk-full-alert.json")], capsys)
    assert code == 0
    assert "1 signal(s), 1 plan(s)" in out and "vm-linux-disk" in out and "free-disk-space" in out


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"hello": "world"}', "unrecognised payload"),
        (
            '{"remediation": "format-disk", "targets": ["/subscriptions/s/resourceGroups/r/providers/'
            'Microsoft.Compute/virtualMachines/v"], "parameters": {}, "reason": "x", "dryRun": false, '
            '"requestId": "r1"}',
            "unknown remediation 'format-disk'",
        ),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path: Path, capsys, content: str, message: str) -> None:
    path = tmp_path / "payload.json"
    path.write_text(content)
    code, out, err = run(["plan", str(path)], capsys)
    assert code == 2 and out == ""
    assert message in err and err.count("\n") == 1 and str(path) in err
    assert "Traceback" not in err


def test_missing_file_and_usage_errors(capsys) -> None:
    code, _, err = run(["plan", "/nonexistent/alert.json"], capsys)
    assert code == 2 and "cannot read" in err and err.count("\n") == 1
    code, _, err = run(["frobnicate"], capsys)
    assert code == 2 and "invalid choice" in err and err.count("\n") == 1
    code, _, err = run(["plan"], capsys)
    assert code == 2 and err.count("\n") == 1


def test_validate_shipped_catalog(capsys) -> None:
    code, out, _ = run(["validate"], capsys)
    assert code == 0 and out.startswith("ok: ") and "remediations" in out


def test_validate_lists_every_problem(tmp_path: Path, capsys) -> None:
    root = make_catalog(tmp_path / "c", routes="routes: [{name: a, match: {source: alert}, condition: nope}]")
    (root / "free-disk-space" / "README.md").unlink()
    code, out, _ = run(["--catalog", str(root), "validate"], capsys)
    assert code == 1
    assert "README.md: missing" in out
    assert "no remediation in the catalog handles 'nope'" in out
    # The stub scripts of make_catalog also miss what validate checks in scripts and READMEs.
    assert f"{out.count('error: ')} problem(s)" in out


def test_broken_routes_are_listed(tmp_path: Path, capsys) -> None:
    root = make_catalog(tmp_path / "c", routes="routes: [{name: a, match: {source: alert}, condition: nope}]")
    code, out, _ = run(["--catalog", str(root), "validate"], capsys)
    assert code == 1 and "routes.yaml" in out and "'nope'" in out


def test_catalog_json(capsys) -> None:
    code, out, _ = run(["catalog", "--json"], capsys)
    ids = [r["id"] for r in json.loads(out)["remediations"]]
    assert code == 0 and "free-disk-space" in ids and "restore-management-access" in ids
    code, out, _ = run(["catalog"], capsys)
    assert "restore-management-access" in out and "high (approval)" in out


def test_console_script_runs_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2")
    done = subprocess.run(
        [sys.executable, "-m", "autoremediation.cli", "plan", str(bad)],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_bad_setting_is_one_line(capsys, monkeypatch) -> None:
    monkeypatch.setenv("REMEDIATION_KILL_SWITCH", "maybe")
    code, _, err = run(["catalog"], capsys)
    assert code == 2 and "REMEDIATION_KILL_SWITCH" in err and err.count("\n") == 1


def test_secret_parameters_are_never_shown(tmp_path: Path, capsys, monkeypatch) -> None:
    from datetime import UTC, datetime

    from autoremediation import jobs
    from autoremediation.store.sqlite import SqliteJobStore

    monkeypatch.setenv("REMEDIATION_SQLITE_PATH", str(tmp_path / "jobs.db"))
    sas = "https://diag.blob.core.windows.net/c/x.tgz?sv=2024&sig=SECRETSIG"
    job = jobs.new_job(
        idempotency_key="k",
        remediation="collect-diagnostics",
        condition="diagnostics-requested",
        target="/subscriptions/s/resourceGroups/r/providers/Microsoft.Compute/virtualMachines/v",
        parameters={"uploadUrl": sas},
        now=datetime(2026, 11, 25, tzinfo=UTC),
    )
    SqliteJobStore(str(tmp_path / "jobs.db")).create(job)
    for argv in (["show", job.id], ["show", job.id, "--json"], ["jobs", "--json"]):
        code, out, _ = run(argv, capsys)
        assert code == 0 and "SECRETSIG" not in out and "(secret)" in out
    assert SqliteJobStore(str(tmp_path / "jobs.db")).get(job.id).parameters["uploadUrl"] == sas


def test_plan_confirms_the_samples_with_azure_monitor_and_they_still_dispatch(capsys) -> None:
    code, out, _ = run(["plan", "--json", str(SAMPLES / "disk-full-alert.json")], capsys)
    data = json.loads(out)
    assert code == 0 and [p["decision"] for p in data["plans"]] == ["dispatch"] and data["notes"] == []


def test_plan_on_forged_alerts_shows_neither_a_dispatch_nor_an_approval(capsys, tmp_path) -> None:
    forged = []
    for name in ("disk-full-alert.json", "nsg-rule-write-alert.json"):
        payload = json.loads((SAMPLES / name).read_text())
        essentials = payload["data"]["essentials"]
        essentials["alertId"] = essentials["alertId"][:-12] + "0123456789ab"  # an alert Azure never raised
        payload["data"]["customProperties"] = {
            "remediation": "restart-service",
            "serviceName": "systemd-exit",
        }
        path = tmp_path / name
        path.write_text(json.dumps(payload))
        forged.append(str(path))
    code, out, _ = run(["plan", *forged], capsys)
    assert code == 0
    assert "dispatch" not in out and "await-approval" not in out
    assert out.count("note: provenance: Azure Monitor has no alert") == 2


def test_ctrl_c_is_one_clean_message_and_exit_130(capsys, monkeypatch, tmp_path: Path) -> None:
    from autoremediation import cli_jobs

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setenv("REMEDIATION_SQLITE_PATH", str(tmp_path / "jobs.db"))
    monkeypatch.setattr(cli_jobs, "work", interrupted)
    code, _, err = run(["run", str(SAMPLES / "manual-request.json")], capsys)
    assert code == 130
    assert err == (
        "\nremediate: interrupted; unfinished jobs stay on record (remediate jobs), "
        "stop one with: remediate cancel JOB\n"
    )
