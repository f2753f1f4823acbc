"""restart-service, fix-time-sync and collect-diagnostics in the sandbox's guest."""

from __future__ import annotations

import base64

import pytest
from localfleet.sandbox import GuestSpec

from .conftest import MakeSandbox, run_raw, run_script, tree

BLOB_URL = "https://diagstore01.blob.core.windows.net/diagnostics/vm-linux-disk/job-1.tar.gz"
SAS = "sv=2024-11-04&sr=b&sp=cw&se=2030-01-01T00%3A00%3A00Z&sig=c2VjcmV0LXNpZ25hdHVyZQ/%3D%3D"
TOKEN = base64.b64encode(SAS.encode()).decode()


def upload_env(**extra: str) -> dict[str, str]:
    return {"UPLOAD_URL": BLOB_URL, "UPLOAD_TOKEN": TOKEN, "MAX_LOG_LINES": "200", "DRY_RUN": "0", **extra}


def test_failed_service_is_restarted(make_sandbox: MakeSandbox) -> None:
    box = make_sandbox(GuestSpec(services=(("nginx", "failed"),)))

    run = run_script(box, "restart-service", {"serviceName": "nginx.service"})

    assert run.status == "fixed"
    assert run.result["before"] == {"activeState": "failed"}
    assert run.result["after"] == {"activeState": "active"}
    assert box.unit_state("nginx") == "active"
    assert run_script(box, "restart-service", {"serviceName": "nginx"}).status == "already-ok"


def test_service_that_fails_to_start_is_not_fixed(make_sandbox: MakeSandbox) -> None:
    box = make_sandbox(GuestSpec(services=(("appd", "broken"),)))

    run = run_script(box, "restart-service", {"serviceName": "appd"})

    assert run.status == "not-fixed"
    assert run.result["restartSucceeded"] is False
    assert run.result["after"]["activeState"] == "failed"


def test_unknown_service_is_an_error(make_sandbox: MakeSandbox) -> None:
    box = make_sandbox(GuestSpec())

    run = run_script(box, "restart-service", {"serviceName": "no-such-unit"})

    assert run.status == "error"
    assert run.result["reason"] == "unit not found on this VM"


def test_restart_dry_run_changes_nothing(make_sandbox: MakeSandbox) -> None:
    box = make_sandbox(GuestSpec(services=(("nginx", "inactive"),)))

    run = run_script(box, "restart-service", {"serviceName": "nginx"}, dry_run=True)

    assert run.status == "not-fixed"
    assert box.unit_state("nginx") == "inactive"


def test_stopped_time_service_is_enabled_and_started(make_sandbox: MakeSandbox) -> None:
    box = make_sandbox(GuestSpec(ssh_listening=False, services=(("systemd-timesyncd", "inactive"),)))

    run = run_script(box, "fix-time-sync")

    assert run.status == "fixed"
    assert run.result["before"]["serviceActive"] is False
    assert run.result["after"]["serviceActive"] is True
    assert run.result["after"]["service"] == "systemd-timesyncd"
    assert box.unit_state("systemd-timesyncd") == "active"
    assert (box.state_dir / "units" / "systemd-timesyncd.enabled").exists()


def test_time_sync_without_a_time_service_is_an_error(make_sandbox: MakeSandbox) -> None:
    box = make_sandbox(GuestSpec(ssh_listening=False))

    run = run_script(box, "fix-time-sync")

    assert run.status == "error"
    assert "no time service" in run.result["reason"]


def test_diagnostics_build_an_archive_never_print_the_sas_and_leave_nothing_behind(
    make_sandbox: MakeSandbox,
) -> None:
    box = make_sandbox(GuestSpec(firewall_drop_ports=(22,)))
    guest_tmp = tree(box.host_path("/tmp"))
    guest_var = tree(box.host_path("/var"))
    rules = box.firewall_rules()

    run = run_raw(box, "collect-diagnostics", upload_env())

    # The guest has no route to Azure: the archive is built, the upload fails, and says so.
    assert run.status == "not-fixed"
    assert run.result["after"]["uploaded"] is False
    assert run.result["after"]["archiveBytes"] > 0
    assert run.result["after"]["items"] >= 8
    assert run.result["blobUrl"] == BLOB_URL
    assert "sig=" not in run.raw.stdout + run.raw.stderr and TOKEN not in run.raw.stdout + run.raw.stderr
    assert tree(box.host_path("/tmp")) == guest_tmp  # the temporary directory is gone
    assert tree(box.host_path("/var")) == guest_var
    assert box.firewall_rules() == rules


@pytest.mark.parametrize(
    ("env", "reason"),
    [
        ({"UPLOAD_URL": "http://diagstore01.blob.core.windows.net/c1/x"}, "UPLOAD_URL must be"),
        ({"UPLOAD_URL": "https://attacker.example.com/c1/x"}, "UPLOAD_URL must be"),
        (
            {"UPLOAD_URL": "https://attackerstore1.blob.core.windows.net.evil.example/c1/x"},
            "UPLOAD_URL must be",
        ),
        ({"UPLOAD_URL": BLOB_URL + "?sig=a"}, "UPLOAD_URL must be"),  # a SAS never travels in the URL
        ({"UPLOAD_TOKEN": "not base64!"}, "UPLOAD_TOKEN must be"),
        ({"UPLOAD_TOKEN": base64.b64encode(b'sig=a" -o /etc/x').decode()}, "UPLOAD_TOKEN must be"),
        (
            {"UPLOAD_TOKEN": base64.b64encode(b"sig=a\nupload-file = /etc/shadow").decode()},
            "UPLOAD_TOKEN must be",
        ),
    ],
)
def test_diagnostics_refuse_anything_but_a_blob_url_and_a_plain_sas(
    make_sandbox: MakeSandbox, env: dict[str, str], reason: str
) -> None:
    box = make_sandbox(GuestSpec())

    run = run_raw(box, "collect-diagnostics", upload_env(**env))

    assert run.status == "error"
    assert str(run.result["reason"]).startswith(reason)
