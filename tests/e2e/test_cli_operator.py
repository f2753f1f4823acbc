"""An operator's day with ``remediate``: dry runs, retry, cancel, names, JSON, and the environment's faults.

Real SDK clients against the local ARM emulator and a SQLite store, as in ``test_cli_fleet``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator
from localfleet.server import FleetServer

from autoremediation.cli import main
from tests.e2e.test_cli_fleet import HERE, disk_alert, jobs, nsg_event, remediate
from tests.helpers.catalogs import REPO

pytestmark = pytest.mark.fleet
OPENAPI = yaml.safe_load((REPO / "autoremediation" / "openapi.yaml").read_text())


def test_a_dry_run_says_would_fix_and_a_real_run_of_the_same_alert_still_runs(
    fleet: FleetServer, tmp_path: Path
) -> None:
    alert = disk_alert(tmp_path)
    code, out = remediate("run", "--dry-run", alert)
    assert code == 0, out
    assert "[dry run]" in out and "DRY-RUN" in out and "dry run: nothing was changed" in out
    [rehearsal] = jobs()
    assert (rehearsal["status"], rehearsal["outcomeKind"], rehearsal["dryRun"]) == (
        "succeeded",
        "dry-run",
        True,
    )
    assert rehearsal["outcome"]["verification"].startswith("dry run: ")
    code, table = remediate("jobs")
    assert "dry-run" in table and "yes" in table.splitlines()[2]

    code, out = remediate("run", "--json", alert)
    assert code == 0
    [real] = json.loads(out)["jobs"]
    assert real["id"] != rehearsal["id"] and real["dryRun"] is False and real["outcomeKind"] == "succeeded"


def test_reject_then_retry_makes_a_linked_job_found_by_prefix(fleet: FleetServer, tmp_path: Path) -> None:
    remediate("run", nsg_event(tmp_path, "nsg-locked", "ev-retry"))
    [waiting] = jobs("--status", "awaiting-approval")
    remediate("reject", waiting["id"][:10], "--actor", "bob")
    code, out = remediate("retry", waiting["id"][4:12], "--actor", "carol", "--reason", "window open")
    assert code == 0, out
    [new] = jobs("--status", "awaiting-approval")
    assert new["id"] != waiting["id"] and new["retryOf"] == waiting["id"]
    assert f"{new['id']}: new attempt of {waiting['id']}" in out
    code, out = remediate("retry", waiting["id"])
    assert code == 0 and f"was retried before as {new['id']}" in out
    assert len(jobs()) == 2


def test_cancel_a_waiting_job_and_refuse_an_ended_one(fleet: FleetServer, tmp_path: Path) -> None:
    remediate("run", nsg_event(tmp_path, "nsg-locked", "ev-cancel"))
    [waiting] = jobs("--status", "awaiting-approval")
    code, out = remediate("cancel", waiting["id"], "--actor", "dave", "--reason", "wrong VM")
    assert code == 0 and "cancelled (cancelled by dave: wrong VM)" in out
    assert jobs()[0]["status"] == "cancelled"
    code, _ = remediate("cancel", waiting["id"])
    assert code == 2
    assert fleet.runs_started("vm-locked") == 0


def test_jobs_by_vm_name_and_by_campaign_and_json_as_the_api_documents(
    fleet: FleetServer, tmp_path: Path
) -> None:
    remediate("run", disk_alert(tmp_path))
    remediate("run", nsg_event(tmp_path, "nsg-locked", "ev-names"))
    [disk] = jobs("--target", "vm-disk")
    assert disk["target"].endswith("/virtualMachines/vm-disk")
    assert jobs("--target", "VM-LOCKED")[0]["remediation"] == "restore-management-access"
    assert jobs("--campaign", "campaign-none") == []
    code, out = remediate("show", "--json", disk["id"][:12])
    assert code == 0
    shown = json.loads(out)
    schema = {**OPENAPI["components"]["schemas"]["Job"], "components": OPENAPI["components"]}
    errors = [e.message for e in Draft202012Validator(schema).iter_errors(shown)]
    assert errors == []
    assert shown == disk  # one shape for one job, in the list and alone
    assert all("_" not in key for key in shown)


def test_a_manual_request_without_id_or_dry_run_gets_a_generated_id(
    fleet: FleetServer, tmp_path: Path
) -> None:
    request = json.loads((REPO / "samples" / "manual-request.json").read_text())
    request.pop("requestId"), request.pop("dryRun")
    request["targets"] = [
        f"/subscriptions/{fleet.subscription}/resourceGroups/rg-e2e/providers/"
        "Microsoft.Compute/virtualMachines/vm-disk"
    ]
    path = tmp_path / "request.json"
    path.write_text(json.dumps(request))
    code, out = remediate("run", str(path))
    assert code == 0, out
    [line] = [x for x in out.splitlines() if "requestId req-" in x]
    assert "generated: add it to" in line
    [job] = jobs()
    assert job["dryRun"] is False and line.split()[1] in job["idempotencyKey"]


def test_read_only_commands_create_no_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    state = tmp_path / "state"
    monkeypatch.setenv("XDG_STATE_HOME", str(state))
    monkeypatch.delenv("REMEDIATION_SQLITE_PATH", raising=False)
    from io import StringIO

    out = StringIO()
    assert main(["jobs"], out=out) == 0 and "no jobs yet" in out.getvalue()
    assert main(["show", "abc"], out=StringIO()) == 2
    assert "there are no jobs yet" in capsys.readouterr().err
    assert not state.exists()


def test_a_wrong_ca_bundle_is_one_line_and_exit_3_before_any_job(tmp_path: Path, monkeypatch) -> None:
    import trustme

    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    with FleetServer(HERE / "fleet.yaml", workdir=tmp_path / "fleet") as server:
        env = {
            **os.environ,
            "REMEDIATION_SQLITE_PATH": str(tmp_path / "jobs.db"),
            "REMEDIATION_ARM_ENDPOINT": server.base_url,
            "REMEDIATION_ARM_CA_BUNDLE": str(other),
        }
        done = subprocess.run(
            [sys.executable, "-m", "autoremediation.cli", "run", disk_alert(tmp_path)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 3
    assert done.stderr.count("\n") == 1 and "TLS certificate" in done.stderr
    assert "REMEDIATION_ARM_CA_BUNDLE" in done.stderr
    assert not (tmp_path / "jobs.db").exists()


def test_no_azure_credential_is_one_line_and_exit_3(monkeypatch, capsys, tmp_path: Path) -> None:
    from azure.core.exceptions import ClientAuthenticationError

    from autoremediation.azure import clients

    class NoCredential:
        def get_token(self, *scopes: str) -> None:
            raise ClientAuthenticationError(
                "DefaultAzureCredential failed to retrieve a token\nAttempted: ..."
            )

    monkeypatch.setattr(clients, "credential", lambda settings: NoCredential())
    monkeypatch.delenv("REMEDIATION_ARM_ENDPOINT", raising=False)
    monkeypatch.setenv("REMEDIATION_SQLITE_PATH", str(tmp_path / "jobs.db"))
    from io import StringIO

    code = main(["run", "--azure", str(REPO / "samples" / "manual-request.json")], out=StringIO())
    err = capsys.readouterr().err
    assert code == 3
    assert err.startswith("remediate: no Azure credential: sign in with `az login`") and err.count("\n") == 1


def test_version_comes_from_the_package_metadata(capsys) -> None:
    from importlib.metadata import version

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"remediate {version('azure-vm-autoremediation')}"


def test_a_reader_that_goes_away_ends_the_command_quietly(tmp_path: Path) -> None:
    read, write = os.pipe()
    os.close(read)  # like `| head` that has already exited
    try:
        done = subprocess.run(
            [sys.executable, "-m", "autoremediation.cli", "catalog", "--json"],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    finally:
        os.close(write)
    assert (done.returncode, done.stderr) == (141, "")


STUCK_FLEET = """
subscriptions:
  - id: 00000000-0000-0000-0000-0000000000c1
    resourceGroups:
      - name: rg-cancel
        location: westeurope
        virtualMachines:
          - name: vm-slow
            os: windows
            tags: {autoremediation: enabled}
            outcomes:
              - {stuck: true, result: {status: fixed, before: {}, after: {}}}
"""


def test_cancel_of_a_running_job_deletes_its_managed_run_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    from io import StringIO

    from autoremediation import jobs as states
    from autoremediation.services import Services
    from autoremediation.settings import Settings

    fleet_file = tmp_path / "fleet.yaml"
    fleet_file.write_text(STUCK_FLEET)
    with FleetServer(fleet_file, workdir=tmp_path / "fleet") as server:
        monkeypatch.setenv("REMEDIATION_SQLITE_PATH", str(tmp_path / "jobs.db"))
        monkeypatch.setenv("REMEDIATION_ARM_ENDPOINT", server.base_url)
        monkeypatch.setenv("REMEDIATION_ARM_CA_BUNDLE", server.ca_bundle)
        services = Services(Settings.from_env())
        request = {
            "remediation": "free-disk-space",
            "targets": [server.vm_id("vm-slow")],
            "reason": "drive C: full",
        }
        [entry] = services.intake.submit(request, actor="op").jobs
        job = entry.job
        for _ in range(5):
            job = services.runner.advance(job.id).job
            if job.status == states.RUNNING:
                break
        assert job.status == states.RUNNING
        server.reset_calls()

        code = main(["cancel", job.id[:14], "--actor", "erin", "--reason", "too slow"], out=StringIO())

        assert code == 0, capsys.readouterr().err
        cancelled = services.store.get(job.id)
        assert cancelled.status == states.CANCELLED
        assert cancelled.history[-1].reason == (
            f"cancelled by erin: too slow; run command {job.run['name']} deleted, which stops its script"
        )
        assert server.calls_matching("DELETE", f"*/runCommands/{job.run['name']}*")


def test_a_transient_arm_error_is_retried_and_the_retry_is_shown(
    fleet: FleetServer, tmp_path: Path, capsys
) -> None:
    fleet.inject("GET */virtualMachines/vm-disk", "error", status=503, times=1)
    code, out = remediate("run", disk_alert(tmp_path))
    assert code == 0, out
    err = capsys.readouterr().err
    [line] = [x for x in err.splitlines() if x.startswith("  retrying: ")]
    assert "ServiceUnavailable" in line and "retry 1/3" in line
    assert jobs()[0]["status"] == "succeeded"
