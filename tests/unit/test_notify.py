"""Notifications, pure parts: channels from the setting, what each format says, which transitions tell."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from autoremediation import jobs
from autoremediation.catalog_load import load_catalog
from autoremediation.errors import InvalidInput
from autoremediation.notify import messages
from autoremediation.notify.channels import Channel, parse_channel, parse_channels
from autoremediation.notify.notifier import Notifier
from autoremediation.policy import GuardSettings
from autoremediation.settings import Settings
from autoremediation.store.memory_queue import ManualClock
from autoremediation.store.sqlite import SqliteJobStore
from autoremediation.sweeper import APPROVAL_WARNING, APPROVAL_WARNING_NOTE, warn_expiring_approvals
from tests.helpers.catalogs import SHIPPED

NOW = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)
VM = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/web-07"
SAS = "https://acct.blob.core.windows.net/diag/x.zip?sv=2024&sig=SECRETSIG"
CATALOG = load_catalog(str(SHIPPED))

# -- channels ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (
            "https://prod-12.westus.logic.azure.com:443/workflows/abc/triggers/manual/paths/invoke?sig=t",
            "teams",
        ),
        (
            "https://default1234.56.environment.api.powerplatform.com/powerautomate/automations/x?sig=t",
            "teams",
        ),
        ("https://contoso.webhook.office.com/webhookb2/abc/IncomingWebhook/def/ghi", "teams"),
        ("https://hooks.slack.com/services/T000/B000/XXXX", "slack"),
        ("https://example.org/hooks/remediation", "json"),
        ("slack:https://chat.example.org/hook", "slack"),
        ("TEAMS:https://example.org/flow", "teams"),
        ("json:https://hooks.slack.com/services/T/B/X", "json"),
    ],
)
def test_the_format_follows_the_host_or_the_prefix(entry: str, expected: str) -> None:
    assert parse_channel(entry, 1).format == expected


def test_a_lookalike_host_is_not_slack() -> None:
    assert parse_channel("https://hooks.slack.com.evil.example/x", 1).format == "json"


@pytest.mark.parametrize(
    "entry",
    ["ftp://example.org/x", "hooks.slack.com/services/T/B/TOKEN", "http://example.org/TOKEN", "sms:+123"],
)
def test_a_bad_entry_is_refused_by_position_without_echoing_it(entry: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_channels(("https://ok.example/a", entry))
    assert "entry 2" in str(caught.value)
    assert "TOKEN" not in str(caught.value) and entry not in str(caught.value)


def test_plain_http_only_to_loopback() -> None:
    assert parse_channel("http://127.0.0.1:8080/hook", 1).format == "json"


def test_a_channel_never_shows_its_token() -> None:
    channel = parse_channel("https://hooks.slack.com/services/T000/B000/SECRET?x=SECRET2", 1)
    assert "SECRET" not in channel.shown and "SECRET" not in repr(channel) and "SECRET" not in str(channel)
    assert channel.shown == "slack:https://hooks.slack.com/…"


def test_settings_read_and_check_the_urls_and_keep_them_out_of_repr() -> None:
    settings = Settings.from_env(
        {"REMEDIATION_NOTIFY_URLS": "https://hooks.slack.com/services/T/B/SECRET, json:https://x.example/h"}
    )
    assert settings.notify_urls == ("https://hooks.slack.com/services/T/B/SECRET", "json:https://x.example/h")
    assert "SECRET" not in repr(settings)
    assert settings.notify_on_success is False and settings.notify_timeout_seconds == 10
    with pytest.raises(InvalidInput, match="entry 1"):
        Settings.from_env({"REMEDIATION_NOTIFY_URLS": "not a url"})
    assert Settings.from_env({"REMEDIATION_NOTIFY_ON_SUCCESS": "true"}).notify_on_success is True


# -- messages ------------------------------------------------------------------------------------------


def awaiting(remediation: str = "restore-management-access", **params: str) -> jobs.Job:
    job = jobs.new_job(
        idempotency_key="k-" + remediation,
        remediation=remediation,
        condition="nsg-lockout",
        target=VM,
        parameters=dict(params),
        now=NOW,
        actor="alert",
    )
    return jobs.transition(
        job,
        jobs.AWAITING_APPROVAL,
        now=NOW,
        actor="worker",
        reason="risk high: an operator approves",
        approval_required=True,
        approval_expires_at=(NOW + timedelta(hours=1)).isoformat(),
    )


def approval_notice() -> messages.Notice:
    job = awaiting()
    return messages.notice(messages.AWAITING_APPROVAL, job, CATALOG.redacted(job.remediation, job.parameters))


def test_teams_gets_a_workflows_message_with_one_adaptive_card() -> None:
    body = messages.body("teams", approval_notice())
    assert body["type"] == "message"
    [attachment] = body["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert (card["type"], card["version"]) == ("AdaptiveCard", "1.4")
    texts = " ".join(b.get("text", "") for b in card["body"])
    job_id = awaiting().id
    assert f"POST /api/remediations/{job_id}/approve" in texts and f"remediate approve {job_id}" in texts
    facts = {f["title"]: f["value"] for b in card["body"] if b["type"] == "FactSet" for f in b["facts"]}
    assert facts["VM"] == "web-07" and facts["Job"] == job_id


def test_slack_gets_blocks_and_a_fallback_text() -> None:
    body = messages.body("slack", approval_notice())
    assert body["text"].startswith("Remediation awaits approval")
    kinds = [b["type"] for b in body["blocks"]]
    assert kinds[0] == "header" and "section" in kinds and kinds[-1] == "context"
    context = " ".join(e["text"] for e in body["blocks"][-1]["elements"])
    assert "remediate approve" in context


def test_slack_control_characters_are_escaped() -> None:
    job = jobs.transition(awaiting(), jobs.EXPIRED, now=NOW, actor="sweeper", reason="<!channel> & co")
    notice = messages.notice(messages.FAILED, job, {})
    assert "<!channel>" not in str(messages.body("slack", notice)["blocks"])


def test_generic_json_carries_the_public_fields_and_how_to_approve() -> None:
    body = messages.body("json", approval_notice())
    job_id = awaiting().id
    assert body["event"] == "awaiting-approval"
    assert body["approve"] == {
        "api": f"POST /api/remediations/{job_id}/approve",
        "cli": f"remediate approve {job_id}",
        "reject": f"POST /api/remediations/{job_id}/reject",
        "console": f"/api/console/jobs/{job_id}",
    }
    assert body["job"]["id"] == job_id and body["job"]["vmName"] == "web-07"
    assert body["job"]["approvalExpiresAt"] == (NOW + timedelta(hours=1)).isoformat()


def test_secret_parameters_are_redacted_and_output_is_never_sent() -> None:
    job = jobs.new_job(
        idempotency_key="diag",
        remediation="collect-diagnostics",
        condition="diagnostics-requested",
        target=VM,
        parameters={"uploadUrl": SAS, "maxLogLines": "100"},
        now=NOW,
    )
    job = jobs.transition(job, jobs.DISPATCHING, now=NOW, actor="w", reason="ok")
    job = jobs.transition(job, jobs.RUNNING, now=NOW, actor="w", reason="started")
    job = jobs.transition(
        job,
        jobs.FAILED,
        now=NOW,
        actor="w",
        reason="exit 1",
        outcome={"outputTail": "token=abc", "exitCode": 1},
    )
    notice = messages.notice(messages.FAILED, job, CATALOG.redacted(job.remediation, job.parameters))
    for format_name in ("teams", "slack", "json"):
        text = str(messages.body(format_name, notice))
        assert "SECRETSIG" not in text and "token=abc" not in text
    assert messages.body("json", notice)["job"]["parameters"]["maxLogLines"] == "100"
    assert "approve" not in messages.body("json", notice)


# -- which transitions tell ----------------------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.sent: list[messages.Notice] = []

    def __call__(self, channels: Any, notice: messages.Notice, budget: float) -> list[Any]:
        self.sent.append(notice)
        return []


@pytest.fixture
def store(tmp_path: Path) -> SqliteJobStore:
    return SqliteJobStore(str(tmp_path / "jobs.db"))


def notifier(store: SqliteJobStore, *, on_success: bool = False) -> tuple[Notifier, Recorder]:
    recorder = Recorder()
    made = Notifier(
        (Channel("json", "https://x.example/h"),),
        catalog=CATALOG,
        store=store,
        clock=ManualClock(NOW),
        guards=GuardSettings(breaker_threshold=3),
        on_success=on_success,
        send=recorder,
    )
    return made, recorder


def ended(store: SqliteJobStore, key: str, status: str, at: datetime) -> jobs.Job:
    job, _ = store.create(
        jobs.new_job(
            idempotency_key=key,
            remediation="free-disk-space",
            condition="disk-full",
            target=VM,
            parameters={},
            now=at,
        )
    )
    job = store.update(jobs.transition(job, jobs.DISPATCHING, now=at, actor="w", reason="ok"))
    job = store.update(jobs.transition(job, jobs.RUNNING, now=at, actor="w", reason="started"))
    return store.update(jobs.transition(job, status, now=at, actor="w", reason=f"{status} on purpose"))


@pytest.mark.parametrize(
    ("status", "kinds"),
    [
        (jobs.FAILED, ["failed"]),
        (jobs.TIMED_OUT, ["timed-out"]),
        (jobs.CANCELLED, []),
    ],
)
def test_failures_and_time_outs_tell(store: SqliteJobStore, status: str, kinds: list[str]) -> None:
    made, recorder = notifier(store)
    job = ended(store, "one", status, NOW)
    made.on_transition(job, job.history[-1])
    assert [n.kind for n in recorder.sent] == kinds


def test_success_tells_only_when_asked(store: SqliteJobStore) -> None:
    job = ended(store, "ok", jobs.VERIFYING, NOW)
    job = store.update(jobs.transition(job, jobs.SUCCEEDED, now=NOW, actor="w", reason="fixed"))
    quiet, quiet_sent = notifier(store)
    quiet.on_transition(job, job.history[-1])
    loud, loud_sent = notifier(store, on_success=True)
    loud.on_transition(job, job.history[-1])
    assert quiet_sent.sent == [] and [n.kind for n in loud_sent.sent] == ["succeeded"]
    # A non-terminal step says nothing.
    loud.on_transition(job, job.history[-2])
    assert len(loud_sent.sent) == 1


def test_awaiting_approval_tells_with_how_to_approve(store: SqliteJobStore) -> None:
    made, recorder = notifier(store)
    job = awaiting()
    made.on_transition(job, job.history[-1])
    [notice] = recorder.sent
    assert notice.kind == "awaiting-approval" and any("remediate approve" in h for h in notice.how_to_approve)


def test_the_failure_that_opens_the_breaker_tells_once(store: SqliteJobStore) -> None:
    made, recorder = notifier(store)
    for index in range(5):
        job = ended(store, f"f{index}", jobs.FAILED, NOW + timedelta(minutes=index))
        made.on_transition(job, job.history[-1])
    kinds = [n.kind for n in recorder.sent]
    assert kinds.count("failed") == 5
    assert kinds.count("breaker-open") == 1
    assert kinds.index("breaker-open") == 3  # right after the third failure
    breaker = next(n for n in recorder.sent if n.kind == "breaker-open")
    assert breaker.extra["until"] == (NOW + timedelta(minutes=2, hours=1)).isoformat()


def test_failures_too_far_apart_open_no_breaker(store: SqliteJobStore) -> None:
    made, recorder = notifier(store)
    for index in range(3):
        job = ended(store, f"f{index}", jobs.FAILED, NOW + timedelta(minutes=50 * index))
        made.on_transition(job, job.history[-1])
    assert [n.kind for n in recorder.sent] == ["failed"] * 3


def test_a_sender_that_raises_never_reaches_the_job(store: SqliteJobStore) -> None:
    def broken(*args: Any) -> list[Any]:
        raise RuntimeError("boom")

    made = Notifier(
        (Channel("json", "https://x.example/h"),),
        catalog=CATALOG,
        store=store,
        clock=ManualClock(NOW),
        guards=GuardSettings(),
        send=broken,
    )
    job = ended(store, "x", jobs.FAILED, NOW)
    made.on_transition(job, job.history[-1])  # no exception
    made.approval_expiring(awaiting())


# -- the sweeper's approval warning --------------------------------------------------------------------


def test_an_approval_about_to_expire_is_announced_once(store: SqliteJobStore) -> None:
    job, _ = store.create(
        jobs.new_job(
            idempotency_key="a",
            remediation="restore-management-access",
            condition="nsg-lockout",
            target=VM,
            parameters={},
            now=NOW,
        )
    )
    store.update(
        jobs.transition(
            job,
            jobs.AWAITING_APPROVAL,
            now=NOW,
            actor="worker",
            reason="approval",
            approval_required=True,
            approval_expires_at=(NOW + timedelta(hours=1)).isoformat(),
        )
    )
    told: list[str] = []
    early = NOW + timedelta(hours=1) - APPROVAL_WARNING - timedelta(seconds=1)
    assert warn_expiring_approvals(store, early, lambda j: told.append(j.id)) == []
    inside = NOW + timedelta(hours=1) - APPROVAL_WARNING + timedelta(seconds=1)
    assert warn_expiring_approvals(store, inside, lambda j: told.append(j.id)) == [job.id]
    assert warn_expiring_approvals(store, inside + timedelta(minutes=5), lambda j: told.append(j.id)) == []
    assert told == [job.id]
    assert store.get(job.id).notes[-1].endswith(APPROVAL_WARNING_NOTE)
    after = NOW + timedelta(hours=1, seconds=1)
    assert warn_expiring_approvals(store, after, lambda j: told.append(j.id)) == []


def test_an_approved_job_is_not_announced(store: SqliteJobStore) -> None:
    from dataclasses import replace

    job, _ = store.create(
        jobs.new_job(
            idempotency_key="b",
            remediation="restore-management-access",
            condition="nsg-lockout",
            target=VM,
            parameters={},
            now=NOW,
        )
    )
    job = jobs.transition(
        job,
        jobs.AWAITING_APPROVAL,
        now=NOW,
        actor="worker",
        reason="approval",
        approval_expires_at=(NOW + timedelta(minutes=10)).isoformat(),
    )
    store.update(replace(job, approved_by="bob"))
    assert warn_expiring_approvals(store, NOW, lambda j: None) == []


def test_slack_text_stays_within_block_kit_limits() -> None:
    job = jobs.transition(awaiting(), jobs.EXPIRED, now=NOW, actor="sweeper", reason="x" * 5000)
    body = messages.body("slack", messages.notice(messages.FAILED, job, {}))
    assert len(body["blocks"][1]["text"]["text"]) == messages.SLACK_TEXT_LIMIT
    assert all(len(f["text"]) <= messages.SLACK_FIELD_LIMIT for f in body["blocks"][2]["fields"])
    assert len(body["blocks"][2]["fields"]) <= 10


def test_a_secret_that_fails_its_pattern_is_not_echoed_in_the_reason() -> None:
    """The skip reason goes to the job record, telemetry and webhooks: a secret's value is never in it."""
    from autoremediation.catalog import SECRET_SHOWN, ParameterError
    from autoremediation.catalog_load import _parameter

    # The shipped catalog has no secret parameter any more (the diagnostics SAS is minted at
    # dispatch): a secret declared the way a catalog author would.
    secret = _parameter(
        "uploadUrl",
        {
            "type": "string",
            "description": "u",
            "pattern": r"^(?!.*\.\.)https://[a-z0-9./]+\?[A-Za-z0-9=&%]+$",
            "secret": True,
        },
    )
    bad = SAS.replace("/diag/", "/../")
    with pytest.raises(ParameterError) as caught:
        secret.validate(bad)
    assert "SECRETSIG" not in str(caught.value) and SECRET_SHOWN in str(caught.value)
    with pytest.raises(ParameterError, match="'lots'"):
        CATALOG.get("collect-diagnostics").parameters["maxLogLines"].validate("lots")
