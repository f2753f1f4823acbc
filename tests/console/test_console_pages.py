"""The console's pages and actions through the registered functions, with App Service's header contract."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest

from autoremediation import jobs
from autoremediation.console.local import ROUTES
from autoremediation.console.security import CONTENT_SECURITY_POLICY
from tests.console.conftest import add_job
from tests.functions.conftest import (
    OPERATOR,
    READER,
    Engine,
    call,
    function_json,
    oid_of,
    principal,
    registered,
)

ORIGIN = "https://app.example"


def page(
    name: str,
    route: str,
    *,
    who: str | None = None,
    params: dict[str, str] | None = None,
    route_params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> Any:
    sent = dict(headers or {})
    if who is not None:
        sent["X-MS-CLIENT-PRINCIPAL"] = who
    request = func.HttpRequest(
        method="GET",
        url=f"{ORIGIN}/api/{route}",
        headers=sent,
        params=params or {},
        route_params=route_params or {},
        body=b"",
    )
    return call(name, request)


def text(response: Any) -> str:
    return response.get_body().decode()


def token_of(response: Any) -> str:
    cookie = response.headers.get("Set-Cookie", "")
    match = re.match(r"__Host-console-csrf=([^;]+);", cookie)
    assert match, cookie
    return match.group(1)


def post(
    name: str,
    route: str,
    form: dict[str, str],
    *,
    who: str,
    cookie: str | None,
    route_params: dict[str, str],
    origin: str | None = ORIGIN,
    site: str | None = "same-origin",
) -> Any:
    from urllib.parse import urlencode

    headers = {"X-MS-CLIENT-PRINCIPAL": who, "Content-Type": "application/x-www-form-urlencoded"}
    if cookie is not None:
        headers["Cookie"] = f"__Host-console-csrf={cookie}"
    if origin is not None:
        headers["Origin"] = origin
    if site is not None:
        headers["Sec-Fetch-Site"] = site
    request = func.HttpRequest(
        method="POST",
        url=f"{ORIGIN}/api/{route}",
        headers=headers,
        params={},
        route_params=route_params,
        body=urlencode(form).encode(),
    )
    return call(name, request)


def decide(job_id: str, verb: str, *, who: str, token: str | None, reason: str = "", **kw: Any) -> Any:
    form = {"reason": reason} if token is None else {"csrf": token, "reason": reason}
    return post(
        "console_decide",
        f"console/jobs/{job_id}/{verb}",
        form,
        who=who,
        cookie=token,
        route_params={"id": job_id, "decision": verb},
        **kw,
    )


BOB = principal(OPERATOR, name="bob@contoso.com")
ALICE = principal(OPERATOR, name="alice@contoso.com")
READ_ONLY = principal(READER, name="rita@contoso.com")


def test_without_app_service_authentication_the_console_shows_nothing(tmp_path: Path) -> None:
    from autoremediation.services import set_services
    from autoremediation.settings import Settings
    from tests.functions.conftest import make_engine

    engine = make_engine(tmp_path, Settings(sqlite_path=str(tmp_path / "off.db"), poll_seconds=15))
    set_services(engine.services)
    add_job(engine, "k1")

    response = page("console_home", "console", who=BOB)

    assert response.status_code == 403
    assert "App Service authentication" in text(response)
    assert "vm-linux-locked" not in text(response)


def test_a_request_without_an_identity_is_asked_to_sign_in(console_engine: Engine) -> None:
    add_job(console_engine, "k1")

    response = page("console_home", "console")

    assert response.status_code == 401
    assert "vm-linux-locked" not in text(response)


def test_an_identity_without_an_app_role_is_refused(console_engine: Engine) -> None:
    response = page("console_home", "console", who=principal(name="mallory@contoso.com"))

    assert response.status_code == 403
    assert "Remediation.Operator or Remediation.Reader" in text(response)


def test_pending_approvals_show_the_evidence_and_who_asked(console_engine: Engine) -> None:
    job_id = add_job(console_engine, "k1", requested_by="alert")

    response = page("console_home", "console", who=BOB)

    body = text(response)
    assert response.status_code == 200
    assert job_id in body
    assert "deny-ssh-subnet" in body and "nsg-subnet" in body and "100" in body
    # The same one-line reason the CLI and the approval request give, from the same code.
    why = (
        "Inbound TCP 22 from 10.0.1.0/26 is denied by rule deny-ssh-subnet (priority 100) "
        "of subnet NSG nsg-subnet"
    )
    assert why in body
    assert "risk high" in body
    assert "asked by <strong>alert</strong>" in body
    assert 'action="/api/console/jobs/' + job_id + '/approve"' in body


def test_every_page_has_a_strict_content_security_policy_and_no_script(console_engine: Engine) -> None:
    job_id = add_job(console_engine, "k1")
    pages = [
        page("console_home", "console", who=BOB),
        page("console_jobs", "console/jobs", who=BOB),
        page("console_job", f"console/jobs/{job_id}", who=BOB, route_params={"id": job_id}),
        page("console_campaigns", "console/campaigns", who=BOB),
        page("console_home", "console"),  # the sign-in answer too
    ]
    for response in pages:
        assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
        assert "script-src" not in CONTENT_SECURITY_POLICY and "default-src 'none'" in CONTENT_SECURITY_POLICY
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert "<script" not in text(response).lower()


def test_values_from_payloads_are_escaped(console_engine: Engine) -> None:
    job_id = add_job(
        console_engine,
        "k1",
        reason='<script>alert("x")</script>',
        evidence={"rule": "<img src=x onerror=alert(1)>"},
    )

    body = text(page("console_job", f"console/jobs/{job_id}", who=BOB, route_params={"id": job_id}))

    assert "<script>alert" not in body and "<img src=x" not in body
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in body
    assert "&lt;img src=x onerror=alert(1)&gt;" in body


def test_secret_parameters_are_never_shown(console_engine: Engine) -> None:
    job_id = add_job(
        console_engine,
        "k1",
        remediation="collect-diagnostics",
        parameters={"uploadSasUrl": "https://acct.blob.core.windows.net/c?sig=TOPSECRET"},
    )

    body = text(page("console_job", f"console/jobs/{job_id}", who=BOB, route_params={"id": job_id}))

    assert "TOPSECRET" not in body
    assert "(secret)" in body


def test_an_operator_approves_with_the_form_token(console_engine: Engine) -> None:
    job_id = add_job(console_engine, "k1")
    token = token_of(page("console_home", "console", who=BOB))

    response = decide(job_id, "approve", who=BOB, token=token, reason="checked the NSG")

    assert response.status_code == 303
    assert response.headers["Location"] == f"/api/console/jobs/{job_id}?done=approved"
    job = console_engine.store.get(job_id)
    assert job.approved_by == oid_of("bob@contoso.com")
    assert job.review["name"] == "bob@contoso.com" and job.review["reason"] == "checked the NSG"
    assert any(
        f"approved by bob@contoso.com ({oid_of('bob@contoso.com')}): checked the NSG" in n for n in job.notes
    )
    assert job_id in console_engine.queued()


@pytest.mark.parametrize(
    ("token", "cookie", "origin", "site"),
    [
        (None, None, ORIGIN, "same-origin"),  # no token at all: the session cookie alone
        ("forged", "real", ORIGIN, "same-origin"),  # a token that is not the cookie's
        ("same", "same", "https://evil.example", None),  # another origin
        ("same", "same", None, "cross-site"),  # the browser says another site sent it
        ("same", "same", "null", None),  # an opaque origin (sandboxed frame, data: URL)
    ],
)
def test_a_decision_without_proof_of_the_console_page_is_refused(
    console_engine: Engine, token: str | None, cookie: str | None, origin: str | None, site: str | None
) -> None:
    job_id = add_job(console_engine, "k1")
    form = {"reason": "x"} if token is None else {"csrf": token, "reason": "x"}

    response = post(
        "console_decide",
        f"console/jobs/{job_id}/approve",
        form,
        who=BOB,
        cookie=cookie,
        route_params={"id": job_id, "decision": "approve"},
        origin=origin,
        site=site,
    )

    assert response.status_code == 403
    job = console_engine.store.get(job_id)
    assert job.status == jobs.AWAITING_APPROVAL and job.approved_by is None
    assert console_engine.queued() == []


def test_the_requester_cannot_approve_their_own_request(console_engine: Engine) -> None:
    job_id = add_job(console_engine, "k1", requested_by=oid_of("alice@contoso.com"))
    token = token_of(page("console_home", "console", who=ALICE))

    shown = text(page("console_job", f"console/jobs/{job_id}", who=ALICE, route_params={"id": job_id}))
    response = decide(job_id, "approve", who=ALICE, token=token)

    assert "another operator must approve it" in shown
    assert response.status_code == 409
    assert "separation of duties" in text(response)
    assert console_engine.store.get(job_id).approved_by is None


def test_a_reader_sees_jobs_but_cannot_decide(console_engine: Engine) -> None:
    job_id = add_job(console_engine, "k1")
    home = page("console_home", "console", who=READ_ONLY)

    response = decide(job_id, "approve", who=READ_ONLY, token=token_of(home))

    assert job_id in text(home) and "/approve" not in text(home)
    assert response.status_code == 403
    assert console_engine.store.get(job_id).approved_by is None


def test_a_rejection_needs_a_reason_and_records_it(console_engine: Engine) -> None:
    job_id = add_job(console_engine, "k1")
    token = token_of(page("console_home", "console", who=BOB))

    refused = decide(job_id, "reject", who=BOB, token=token, reason="  ")
    response = decide(job_id, "reject", who=BOB, token=token, reason="rule is intended: maintenance")

    assert refused.status_code == 400 and "reason is required" in text(refused)
    assert response.status_code == 303
    job = console_engine.store.get(job_id)
    assert job.status == jobs.CANCELLED
    assert job.history[-1].actor == oid_of("bob@contoso.com")
    assert (
        job.history[-1].reason
        == f"rejected by bob@contoso.com ({oid_of('bob@contoso.com')}): rule is intended: maintenance"
    )


def test_the_job_page_shows_the_timeline_outcome_and_output(console_engine: Engine) -> None:
    job_id = add_job(
        console_engine,
        "k1",
        remediation="free-disk-space",
        status=jobs.SUCCEEDED,
        parameters={"mountPoint": "/var"},
        evidence={},
    )

    body = text(page("console_job", f"console/jobs/{job_id}", who=READ_ONLY, route_params={"id": job_id}))

    for reason in ("all guards passed", "run command started", "script reported fixed"):
        assert reason in body
    assert "freePercent" in body and "7.0" in body and "21.5" in body
    assert "cleaning /var/log" in body


def test_jobs_filter_by_vm_name_status_and_remediation(console_engine: Engine) -> None:
    locked = add_job(console_engine, "k1", vm="vm-linux-locked")
    disk = add_job(
        console_engine,
        "k2",
        vm="vm-linux-disk",
        remediation="free-disk-space",
        status=jobs.SUCCEEDED,
        parameters={"mountPoint": "/var"},
    )
    other = add_job(
        console_engine,
        "k3",
        vm="vm-web-07",
        remediation="free-disk-space",
        status=jobs.FAILED,
        parameters={"mountPoint": "/var"},
    )

    def listed(**params: str) -> str:
        response = page("console_jobs", "console/jobs", who=BOB, params=params)
        assert response.status_code == 200
        return text(response)

    by_name = listed(vm="linux")
    assert locked in by_name and disk in by_name and other not in by_name
    by_status = listed(status=jobs.FAILED)
    assert other in by_status and disk not in by_status and locked not in by_status
    by_remediation = listed(remediation="restore-management-access")
    assert locked in by_remediation and disk not in by_remediation


def test_a_bad_filter_says_which_and_shows_no_jobs(console_engine: Engine) -> None:
    add_job(console_engine, "k1")

    response = page("console_jobs", "console/jobs", who=BOB, params={"status": "bogus"})

    assert response.status_code == 400
    assert "status &#39;bogus&#39; is not one of" in text(response)


def test_the_stylesheet_is_served_and_nothing_else(console_engine: Engine) -> None:
    css = page("console_static", "console/static/console.css", route_params={"name": "console.css"})
    other = page("console_static", "console/static/..%2Fpages.py", route_params={"name": "../pages.py"})

    assert css.status_code == 200 and css.headers["Content-Type"].startswith("text/css")
    assert b":focus-visible" in css.get_body()
    assert other.status_code == 404


def test_the_console_routes_are_anonymous_for_the_host_and_the_local_server_knows_each(
    console_engine: Engine,
) -> None:
    """No function key: a browser would have to carry it in a URL. App Service authentication guards."""
    registered_routes = set()
    for name in registered():
        if not name.startswith("console"):
            continue
        [trigger] = [b for b in function_json(name)["bindings"] if b["type"] == "httpTrigger"]
        assert trigger["authLevel"].lower() == "anonymous"
        registered_routes.add((trigger["methods"][0].upper(), trigger["route"], name))
    assert registered_routes == set(ROUTES)


def test_the_local_console_signs_requests_in_itself_and_ignores_identity_headers_a_client_sends(
    console_engine: Engine,
) -> None:
    """``remediate console`` plays App Service's part: a client-sent principal never reaches the app."""
    import threading
    import urllib.request

    from autoremediation.console.local import serving

    job_id = add_job(console_engine, "k1")
    with serving(0, name="local-reader", role="reader") as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            forged = urllib.request.Request(server.url, headers={"X-MS-CLIENT-PRINCIPAL": BOB})
            with urllib.request.urlopen(forged, timeout=10) as answer:
                body = answer.read().decode()
        finally:
            server.shutdown()
            thread.join(timeout=10)

    assert "Signed in as <strong>local-reader</strong> (read only)" in body
    assert job_id in body and "/approve" not in body
