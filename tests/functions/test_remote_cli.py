"""``remediate --app URL``: the real CLI and azure-core pipeline against the registered handlers, behind a
stand-in for App Service authentication (tests/helpers/easyauth.py) on 127.0.0.1, with the header
contract the platform uses. Local and remote commands print the same thing for the same jobs."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import requests

from autoremediation import cli, jobs, remote
from autoremediation.errors import RemoteError
from autoremediation.services import set_services
from tests.functions.conftest import (
    OLGA,
    OLGA_OID,
    OMAR_OID,
    OPERATOR,
    READER,
    RITA_OID,
    SAMPLES,
    Engine,
    call,
    http,
    json_of,
    make_engine,
    registered,
    sample,
    signed_in,
    vm_id,
)
from tests.helpers.easyauth import EasyAuthFrontEnd, TokenIssuer


def deployed_excluded_paths() -> tuple[str, ...]:
    """The paths infra/modules/authentication.bicep lets through without a token."""
    from tests.infra import bicep

    tree = bicep.parse(bicep.INFRA / "modules" / "authentication.bicep")
    return tuple(str(p) for p in bicep.array_literals(bicep.declaration(tree, "var", "excludedPaths").value))


IDENTIFIER_URI = "api://00000000-0000-0000-0000-0000000000aa/vm-autoremediation-test"
SCOPE = f"{IDENTIFIER_URI}/.default"


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Engine, EasyAuthFrontEnd]]:
    made = make_engine(tmp_path)
    # The app publishes its scope, as deployed (REMEDIATION_APP_SCOPE): the CLI finds it there.
    made.services.settings = replace(made.services.settings, app_scope=SCOPE)
    set_services(made.services)
    with EasyAuthFrontEnd(registered(), IDENTIFIER_URI, deployed_excluded_paths()) as front:
        # The local commands read the same job store; requests verifies the stand-in's certificate.
        monkeypatch.setenv("REMEDIATION_SQLITE_PATH", str(tmp_path / "jobs.db"))
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", front.ca_bundle)
        monkeypatch.delenv("REMEDIATION_APP_URL", raising=False)
        monkeypatch.delenv("REMEDIATION_APP_SCOPE", raising=False)
        yield made, front
    set_services(None)
    made.store.close()


def as_user(
    monkeypatch: pytest.MonkeyPatch, front: EasyAuthFrontEnd, oid: str, name: str, *roles: str
) -> TokenIssuer:
    issuer = TokenIssuer(front, oid=oid, name=name, roles=roles)
    monkeypatch.setattr(remote, "default_credential", lambda: issuer)
    return issuer


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = cli.main(list(argv), out=out)
    return code, out.getvalue()


def awaiting(engine: Engine, request_id: str = "ops-remote-1") -> str:
    body = {
        **sample("manual-request.json"),
        "requestId": request_id,
        "remediation": "restore-management-access",
        "parameters": {},
    }
    response = call("remediations_create", http("POST", "remediations", body, headers=OLGA))
    job_id: str = json_of(response)["jobIds"][0]
    engine.queued()
    engine.deliver(job_id)
    assert engine.store.get(job_id).status == jobs.AWAITING_APPROVAL
    return job_id


@pytest.mark.parametrize(
    "command",
    [
        ("jobs",),
        ("jobs", "--json"),
        ("show", "JOB"),
        ("show", "JOB", "--json"),
        ("catalog",),
        ("catalog", "--json"),
        ("plan", str(SAMPLES / "disk-full-alert.json")),
    ],
    ids=lambda c: " ".join(c),
)
def test_remote_commands_print_what_the_local_ones_print(
    app: tuple[Engine, EasyAuthFrontEnd], monkeypatch: pytest.MonkeyPatch, command: tuple[str, ...]
) -> None:
    engine, front = app
    job_id = awaiting(engine)
    argv = [job_id if part == "JOB" else part for part in command]
    issuer = as_user(monkeypatch, front, RITA_OID, "rita@contoso.com", READER)

    local_code, local = run(*argv)
    remote_code, remote_out = run("--app", front.base_url, *argv)

    assert (remote_code, remote_out) == (local_code, local)
    assert local.strip()
    assert issuer.scopes and set(issuer.scopes) == {SCOPE}  # found in the app's /api/openapi


def test_an_operator_approves_remotely_and_the_record_names_both_people(
    app: tuple[Engine, EasyAuthFrontEnd], monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, front = app
    job_id = awaiting(engine)
    as_user(monkeypatch, front, OMAR_OID, "omar@contoso.com", OPERATOR)
    monkeypatch.setenv("REMEDIATION_APP_URL", front.base_url)  # the setting instead of --app

    code, out = run("approve", job_id, "--reason", "CHG-9 ssh lockout on web-01")

    assert (code, out) == (0, f"{job_id}: approved by omar@contoso.com\n")
    job = engine.store.get(job_id)
    assert (job.requested_by, job.approved_by) == (OLGA_OID, OMAR_OID)
    assert job.review["reason"] == "CHG-9 ssh lockout on web-01"
    assert engine.queued() == [job_id]  # the app's worker runs it


def test_the_requester_cannot_approve_remotely(
    app: tuple[Engine, EasyAuthFrontEnd], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    engine, front = app
    job_id = awaiting(engine)
    as_user(monkeypatch, front, OLGA_OID, "olga@contoso.com", OPERATOR)

    code, out = run("--app", front.base_url, "approve", job_id, "--reason", "mine")

    assert (code, out) == (2, "")
    assert "separation of duties" in capsys.readouterr().err
    assert engine.store.get(job_id).approved_by is None


def test_a_reader_cannot_reject_and_says_why(
    app: tuple[Engine, EasyAuthFrontEnd], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    engine, front = app
    job_id = awaiting(engine)
    as_user(monkeypatch, front, RITA_OID, "rita@contoso.com", READER)

    code, _ = run("--app", front.base_url, "reject", job_id, "--reason", "no")

    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "refused you (403)" in err and OPERATOR in err
    assert engine.store.get(job_id).status == jobs.AWAITING_APPROVAL


def test_reject_remotely_prints_what_local_reject_prints(
    app: tuple[Engine, EasyAuthFrontEnd], monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, front = app
    job_id = awaiting(engine)
    as_user(monkeypatch, front, OMAR_OID, "omar@contoso.com", OPERATOR)

    code, out = run("--app", front.base_url, "reject", job_id, "--reason", "not during the sale")

    job = engine.store.get(job_id)
    assert code == 0 and out == f"{job_id}: cancelled ({job.history[-1].reason})\n"
    assert job.review["by"] == OMAR_OID and job.history[-1].reason.endswith("not during the sale")


def test_a_campaign_is_started_and_read_back_remotely(
    app: tuple[Engine, EasyAuthFrontEnd], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    engine, front = app
    as_user(monkeypatch, front, OMAR_OID, "omar@contoso.com", OPERATOR)
    targets = tmp_path / "targets.txt"
    targets.write_text(vm_id("vm-linux-disk") + "\n")
    start = ("campaign", "--id", "c-remote", "--remediation", "free-disk-space", "--targets", str(targets))

    code, out = run("--app", front.base_url, *start, "--max-concurrency", "1", "--max-errors", "0")
    again_code, again = run("--app", front.base_url, "campaign", "--resume", "c-remote")

    assert code == 0 and out.startswith("campaign c-remote running: ")
    assert again_code == 1 and again.startswith("campaign c-remote running: ")
    [job] = engine.store.list(campaign_id="c-remote")
    assert job.requested_by == OMAR_OID and job.requested_by_name == "omar@contoso.com"


def test_a_token_for_another_audience_is_turned_away_at_the_front_end(
    app: tuple[Engine, EasyAuthFrontEnd], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, front = app
    monkeypatch.setenv("REMEDIATION_APP_SCOPE", "api://some-other-app/.default")
    as_user(monkeypatch, front, OMAR_OID, "omar@contoso.com", OPERATOR)

    code, _ = run("--app", front.base_url, "jobs")

    assert code == 2 and "refused you (401)" in capsys.readouterr().err


def test_a_call_without_a_token_is_sent_to_sign_in_and_the_cli_says_so(
    app: tuple[Engine, EasyAuthFrontEnd],
) -> None:
    _, front = app
    client = remote.AppClient(front.base_url, None, SCOPE, connection_verify=front.ca_bundle, retries=0)

    with pytest.raises(RemoteError, match=r"sent you to sign in \(302\)"):
        client.call("GET", "remediations", signed=False)


def test_client_sent_principal_headers_are_stripped(app: tuple[Engine, EasyAuthFrontEnd]) -> None:
    engine, front = app
    job_id = awaiting(engine)
    reader = front.issue(oid=RITA_OID, name="rita@contoso.com", roles=(READER,))
    forged = signed_in(OPERATOR, oid=OMAR_OID, name="forged-approver@evil.example")

    answer = requests.post(
        f"{front.base_url}/api/remediations/{job_id}/approve",
        json={"reason": "forged"},
        headers={"Authorization": f"Bearer {reader}", **forged},
        verify=front.ca_bundle,
        timeout=30,
    )
    anonymous = requests.get(
        f"{front.base_url}/api/remediations",
        headers=forged,
        verify=front.ca_bundle,
        timeout=30,
        allow_redirects=False,
    )

    assert answer.status_code == 403 and "rita@contoso.com needs the app role" in answer.json()["error"]
    assert front.seen[-1]["X-MS-CLIENT-PRINCIPAL-ID"] == RITA_OID
    assert anonymous.status_code == 302  # the front end: no credential, off to sign in
    assert anonymous.headers["Location"].startswith("/.auth/login/aad")
    assert engine.store.get(job_id).approved_by is None


def test_commands_that_run_here_only_say_so(
    app: tuple[Engine, EasyAuthFrontEnd], capsys: pytest.CaptureFixture[str]
) -> None:
    _, front = app

    code, _ = run("--app", front.base_url, "validate")

    assert code == 2 and "validate runs on this machine only" in capsys.readouterr().err


@pytest.mark.parametrize(
    "url", ["http://app.example", "http://127.0.0.1:7071", "ftp://x", "not a url", "https://"]
)
def test_a_bad_app_url_is_one_line_and_exit_2(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = run("--app", url, "jobs")

    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "https://" in err


def test_an_app_that_does_not_publish_its_scope_asks_for_the_setting(
    app: tuple[Engine, EasyAuthFrontEnd], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, front = app
    engine.services.settings = replace(engine.services.settings, app_scope=None)
    as_user(monkeypatch, front, OMAR_OID, "omar@contoso.com", OPERATOR)

    code, _ = run("--app", front.base_url, "catalog")

    assert code == 2 and "REMEDIATION_APP_SCOPE" in capsys.readouterr().err


def test_the_alert_webhook_takes_the_action_group_token_and_the_public_paths_none(
    app: tuple[Engine, EasyAuthFrontEnd],
) -> None:
    """Behind App Service authentication the Action Group's secure webhook still delivers."""
    from autoremediation.blueprints.webhook_auth import ACTION_GROUPS_APP_ID, SECURE_WEBHOOK_ROLE

    engine, front = app
    action_group = front.issue(
        oid="0e0e0e0e-5555-4555-8555-000000000005",
        name="AzNS AAD Webhook",
        roles=(SECURE_WEBHOOK_ROLE,),
        appid=ACTION_GROUPS_APP_ID,
    )
    operator = front.issue(oid=OMAR_OID, name="omar@contoso.com", roles=(OPERATOR,))
    url = f"{front.base_url}/api/alerts"
    body = sample("disk-full-alert.json")

    keyless = requests.post(url, json=body, verify=front.ca_bundle, timeout=30, allow_redirects=False)
    not_the_action_group = requests.post(
        url, json=body, headers={"Authorization": f"Bearer {operator}"}, verify=front.ca_bundle, timeout=30
    )
    assert engine.store.list() == []
    alert = requests.post(
        url,
        json=body,
        headers={"Authorization": f"Bearer {action_group}"},
        verify=front.ca_bundle,
        timeout=30,
    )
    health = requests.get(f"{front.base_url}/api/health", verify=front.ca_bundle, timeout=30)
    document = requests.get(f"{front.base_url}/api/openapi", verify=front.ca_bundle, timeout=30)

    assert keyless.status_code == 302
    assert not_the_action_group.status_code == 403
    assert alert.status_code == 202 and len(engine.store.list()) == 1
    assert health.json()["operatorAuthentication"] == "app-service"
    assert document.json()["info"]["x-entra-scope"] == SCOPE


def test_remote_show_prints_a_jobs_evidence_as_the_local_show_does(
    app: tuple[Engine, EasyAuthFrontEnd], monkeypatch: pytest.MonkeyPatch
) -> None:
    """One rendering serves both: the detector's evidence an approver needs is never lost on the way."""
    from dataclasses import replace

    engine, front = app
    job_id = awaiting(engine)
    job = engine.store.get(job_id)
    evidence = {"rule": "deny-ssh-subnet", "priority": 100, "level": "subnet", "port": 22}
    engine.store.update(replace(job, evidence=evidence))
    as_user(monkeypatch, front, RITA_OID, "rita@contoso.com", READER)

    local_code, local = run("show", job_id)
    remote_code, remote_out = run("--app", front.base_url, "show", job_id)

    assert (remote_code, remote_out) == (local_code, local)
    assert "deny-ssh-subnet" in local and "evidence:" in local
