"""Notifications delivered for real: local HTTP receivers on 127.0.0.1 stand in for Teams, Slack, webhooks.

Delivery on its own (retries, a receiver that fails first, one that hangs, one that refuses), then the
Function App's worker and sweeper timer telling receivers what happened to jobs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from azure.functions.timer import TimerRequest

from autoremediation import jobs
from autoremediation.blueprints import runtime
from autoremediation.errors import Permanent
from autoremediation.notify import delivery, messages
from autoremediation.notify.channels import Channel, parse_channel
from autoremediation.services import set_services
from autoremediation.settings import Settings
from autoremediation.sweeper import APPROVAL_WARNING
from tests.functions.conftest import Engine, call, http, json_of, make_engine, sample
from tests.helpers.receivers import Receiver

TOKEN = "SECRET-TOKEN-4f2a"


@pytest.fixture(autouse=True)
def _quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(delivery, "FIRST_BACKOFF_SECONDS", 0.01)


@pytest.fixture
def receivers() -> Iterator[dict[str, Receiver]]:
    made = {name: Receiver(name) for name in ("ok", "fail:2", "hang", "status:400")}
    yield made
    for receiver in made.values():
        receiver.stop()


NOW = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)


def notice() -> messages.Notice:
    job = jobs.new_job(
        idempotency_key="k",
        remediation="free-disk-space",
        condition="disk-full",
        target="/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/web-07",
        parameters={},
        now=NOW,
    )
    job = jobs.transition(job, jobs.DISPATCHING, now=NOW, actor="w", reason="ok")
    job = jobs.transition(job, jobs.FAILED, now=NOW, actor="w", reason="dispatch refused")
    return messages.notice(messages.FAILED, job, {})


def channel(receiver: Receiver, fmt: str = "json") -> Channel:
    return parse_channel(f"{fmt}:{receiver.url}/hooks/{TOKEN}", 1)


# -- delivery ------------------------------------------------------------------------------------------


def test_a_notice_is_one_json_post(receivers: dict[str, Receiver]) -> None:
    [result] = delivery.deliver([channel(receivers["ok"])], notice(), budget=5)
    assert result.delivered and result.attempts == 1
    [request] = receivers["ok"].requests
    assert request.path == f"/hooks/{TOKEN}"
    assert request.headers["content-type"] == "application/json"
    body = request.json()
    assert body["event"] == "failed" and body["job"]["vmName"] == "web-07"


def test_a_receiver_that_fails_first_gets_the_notice_on_a_retry(receivers: dict[str, Receiver]) -> None:
    [result] = delivery.deliver([channel(receivers["fail:2"])], notice(), budget=5)
    assert result.delivered and result.attempts == 3
    bodies = [r.json() for r in receivers["fail:2"].requests]
    assert len(bodies) == 3 and all(b == bodies[0] for b in bodies)


def test_a_refusal_is_not_retried(receivers: dict[str, Receiver]) -> None:
    [result] = delivery.deliver([channel(receivers["status:400"])], notice(), budget=5)
    assert not result.delivered and result.detail == "HTTP 400"
    assert len(receivers["status:400"].requests) == 1


def test_a_hanging_receiver_costs_the_budget_not_the_other_channels(
    receivers: dict[str, Receiver], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="autoremediation.notify"):
        hung, fine = delivery.deliver(
            [channel(receivers["hang"]), channel(receivers["ok"], "slack")], notice(), budget=1
        )
    assert fine.delivered and not hung.delivered
    assert len(receivers["hang"].requests) >= 1
    assert receivers["ok"].requests[0].json()["blocks"]
    assert TOKEN not in caplog.text and "/hooks/" not in caplog.text
    assert "could not notify json:http://127.0.0.1/…" in caplog.text


def test_attempts_are_bounded_when_every_answer_is_503() -> None:
    with Receiver("fail:100") as receiver:
        [result] = delivery.deliver([channel(receiver)], notice(), budget=5)
        assert not result.delivered and result.detail == "HTTP 503"
        assert len(receiver.requests) == delivery.MAX_ATTEMPTS


# -- through the Function App --------------------------------------------------------------------------


@pytest.fixture
def notified(tmp_path: Path) -> Iterator[tuple[Engine, Receiver, Receiver]]:
    teams, plain = Receiver("ok"), Receiver("ok")
    settings = Settings(
        sqlite_path=str(tmp_path / "jobs.db"),
        poll_seconds=15,
        notify_urls=(f"teams:{teams.url}/workflows/{TOKEN}", f"{plain.url}/hook/{TOKEN}"),
        notify_timeout_seconds=5,
        platform_auth=True,  # App Service authentication in front, as deployed
    )
    engine = make_engine(tmp_path, settings)
    set_services(engine.services)
    runtime.reset_telemetry_flag()
    yield engine, teams, plain
    set_services(None)
    engine.store.close()
    teams.stop()
    plain.stop()


def request_approval(engine: Engine) -> str:
    body = {**sample("manual-request.json"), "remediation": "restore-management-access", "parameters": {}}
    body["requestId"] = "ops-notify-1"
    response = call("remediations_create", http("POST", "remediations", body))
    job_id: str = json_of(response)["jobIds"][0]
    engine.queued()
    engine.deliver(job_id)
    assert engine.store.get(job_id).status == jobs.AWAITING_APPROVAL
    return job_id


def test_the_worker_tells_every_channel_a_job_awaits_approval_and_how_to_approve(notified) -> None:
    engine, teams, plain = notified
    job_id = request_approval(engine)
    [card] = [r.json() for r in teams.requests]
    assert card["type"] == "message"
    content = card["attachments"][0]["content"]
    assert content["type"] == "AdaptiveCard"
    assert f"remediate approve {job_id}" in str(content["body"])
    [generic] = [r.json() for r in plain.requests]
    assert generic["event"] == "awaiting-approval"
    assert generic["approve"]["api"] == f"POST /api/remediations/{job_id}/approve"
    assert generic["job"]["status"] == "awaiting-approval"


def test_a_failed_job_is_told_a_succeeded_one_is_not_by_default(notified) -> None:
    engine, teams, plain = notified
    engine.compute.errors["start_run"] = [Permanent("the VM refused", status=400)]
    response = call("remediations_create", http("POST", "remediations", sample("manual-request.json")))
    [job_id] = json_of(response)["jobIds"]
    for _ in range(5):
        for queued in engine.queued():
            engine.deliver(queued)
    assert engine.store.get(job_id).status == jobs.FAILED
    assert [r.json()["event"] for r in plain.requests] == ["failed"]
    assert "dispatch refused" in plain.requests[0].json()["summary"]
    [card] = [r.json()["attachments"][0]["content"] for r in teams.requests]
    assert card["body"][0]["text"] == "Remediation failed"


def test_the_sweeper_warns_once_before_an_approval_expires_then_tells_it_expired(notified) -> None:
    engine, _, plain = notified
    job_id = request_approval(engine)
    expires = engine.store.get(job_id).approval_expires_at
    assert expires is not None
    engine.clock.advance((timedelta(minutes=60) - APPROVAL_WARNING + timedelta(minutes=1)).total_seconds())
    call("sweeper", TimerRequest(past_due=False))
    engine.clock.advance(300)
    call("sweeper", TimerRequest(past_due=False))
    events = [r.json()["event"] for r in plain.requests]
    assert events == ["awaiting-approval", "approval-expiring"]
    engine.clock.advance(15 * 60)
    call("sweeper", TimerRequest(past_due=False))
    assert [r.json()["event"] for r in plain.requests][2:] == ["expired"]
    assert engine.store.get(job_id).status == jobs.EXPIRED


def test_a_broken_receiver_never_fails_the_job(tmp_path: Path) -> None:
    with Receiver("status:500") as broken:
        settings = Settings(
            sqlite_path=str(tmp_path / "jobs.db"),
            poll_seconds=15,
            notify_urls=(f"{broken.url}/h",),
            notify_on_success=True,
            notify_timeout_seconds=1,
            platform_auth=True,
        )
        engine = make_engine(tmp_path, settings)
        set_services(engine.services)
        try:
            response = call(
                "remediations_create", http("POST", "remediations", sample("manual-request.json"))
            )
            [job_id] = json_of(response)["jobIds"]
            for _ in range(10):
                due = engine.queue.due_in()
                if due is None:
                    break
                engine.clock.advance(due)
                for queued in engine.queued():
                    engine.deliver(queued)
            assert engine.store.get(job_id).status == jobs.SUCCEEDED
            assert broken.requests and broken.requests[0].json()["event"] == "succeeded"
        finally:
            set_services(None)
            engine.store.close()
