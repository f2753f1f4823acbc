"""Alert write-back: the alert learns how its job ended, and the job never suffers for it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from autoremediation import jobs
from autoremediation.errors import Transient
from autoremediation.jobs import Job, Transition
from autoremediation.ports import AlertRecord
from autoremediation.writeback import alert_writeback
from tests.helpers.fakes import FakeAlerts, vm_id

ALERT = "/subscriptions/00000000-0000-0000-0000-00000000000a/providers/Microsoft.AlertsManagement/alerts/a1"
NOW = datetime(2026, 11, 25, 10, 20, tzinfo=UTC)


def job(source: str = "alert", alert_id: str | None = ALERT) -> Job:
    return jobs.new_job(
        idempotency_key=f"{source}|x",
        remediation="free-disk-space",
        condition="disk-full",
        target=vm_id("vm-1"),
        parameters={},
        now=NOW,
        signal_source=source,
        alert_id=alert_id,
    )


def ended(status: str, reason: str) -> Transition:
    return Transition(NOW.isoformat(), jobs.VERIFYING, status, "worker", reason)


@pytest.fixture
def alerts() -> FakeAlerts:
    fake = FakeAlerts()
    fake.add(AlertRecord(ALERT, "rule", vm_id("vm-1"), "Fired", alert_state="Acknowledged"))
    return fake


def test_a_job_that_succeeded_closes_its_alert_naming_the_job(alerts: FakeAlerts) -> None:
    made = job()
    alert_writeback(alerts)(made, ended(jobs.SUCCEEDED, "the script reported fixed"))
    [(alert_id, state, comment)] = alerts.changes
    assert (alert_id, state) == (ALERT, "Closed")
    assert (
        made.id in comment and "free-disk-space on vm-1" in comment and "the script reported fixed" in comment
    )


@pytest.mark.parametrize("status", [jobs.FAILED, jobs.TIMED_OUT])
def test_a_failed_job_comments_with_the_reason_and_keeps_the_state(alerts: FakeAlerts, status: str) -> None:
    made = job()
    alert_writeback(alerts)(made, ended(status, "exit code 3: /var is still 97% used"))
    [(_, state, comment)] = alerts.changes
    assert state == "Acknowledged"  # what Azure Monitor holds: a comment only
    assert made.id in comment and status in comment and "/var is still 97% used" in comment


@pytest.mark.parametrize(
    ("setting", "state"), [("new", "New"), ("acknowledged", "Acknowledged"), ("closed", "Closed")]
)
def test_the_state_a_failure_leaves_is_configurable(alerts: FakeAlerts, setting: str, state: str) -> None:
    alert_writeback(alerts, setting)(job(), ended(jobs.FAILED, "boom"))
    assert [c[1] for c in alerts.changes] == [state]
    assert alerts.reads == 0  # no need to read the current state


@pytest.mark.parametrize(
    "status", [jobs.SKIPPED, jobs.CANCELLED, jobs.EXPIRED, jobs.RUNNING, jobs.AWAITING_APPROVAL]
)
def test_other_transitions_leave_the_alert_alone(alerts: FakeAlerts, status: str) -> None:
    alert_writeback(alerts)(job(), ended(status, "whatever"))
    assert alerts.changes == []


def test_jobs_not_from_an_alert_write_nothing(alerts: FakeAlerts) -> None:
    alert_writeback(alerts)(job("manual", None), ended(jobs.SUCCEEDED, "fixed"))
    alert_writeback(alerts)(job("event", None), ended(jobs.FAILED, "broke"))
    assert alerts.changes == []


def test_write_back_never_fails_the_job(alerts: FakeAlerts, caplog: pytest.LogCaptureFixture) -> None:
    alerts.failure = Transient("Azure Monitor is away")
    alert_writeback(alerts)(job(), ended(jobs.SUCCEEDED, "fixed"))  # does not raise
    assert "could not write its outcome back" in caplog.text and "Azure Monitor is away" in caplog.text
    alerts.failure = None
    alerts.alerts.clear()  # the alert is gone: reading its state fails, still nothing raised
    alert_writeback(alerts)(job(), ended(jobs.FAILED, "broke"))
    assert alerts.changes == []
