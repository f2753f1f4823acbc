"""One structured outcome event per job transition; Azure Monitor wired only when configured."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from datetime import UTC, datetime

from autoremediation import jobs, telemetry
from autoremediation.settings import Settings
from tests.helpers.catalogs import REPO

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def make_job() -> jobs.Job:
    return jobs.new_job(
        idempotency_key="k",
        remediation="free-disk-space",
        condition="disk-full",
        target="/subscriptions/s/resourceGroups/r/providers/Microsoft.Compute/virtualMachines/v",
        parameters={},
        now=NOW,
        campaign_id="c-1",
    )


def test_transition_event_fields() -> None:
    job = jobs.transition(make_job(), jobs.SKIPPED, now=NOW, actor="worker", reason="opt-in: no tag")
    event = telemetry.transition_event(job, job.history[-1])
    assert event["event"] == "remediation.transition"
    assert (event["from"], event["to"], event["actor"], event["reason"]) == (
        "planned",
        "skipped",
        "worker",
        "opt-in: no tag",
    )
    assert event["jobId"] == job.id and event["campaignId"] == "c-1"
    assert "exitCode" in event  # terminal: the outcome fields are present (None when nothing ran)


def test_emit_logs_one_json_line_per_transition(caplog) -> None:
    job = jobs.transition(make_job(), jobs.DISPATCHING, now=NOW, actor="worker", reason="guards passed")
    with caplog.at_level(logging.INFO, logger="autoremediation.outcome"):
        telemetry.emit_transition(job, job.history[-1])
    [record] = caplog.records
    assert json.loads(record.getMessage())["to"] == "dispatching"
    assert record.custom_dimensions["remediation"] == "free-disk-space"  # type: ignore[attr-defined]
    assert "exitCode" not in json.loads(record.getMessage())


def test_no_connection_string_means_no_exporter() -> None:
    code = (
        "import sys; from autoremediation import telemetry; from autoremediation.settings import Settings;"
        "print(telemetry.configure(Settings()), any(m.startswith('azure.monitor') for m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert done.stdout.split() == ["False", "False"]
    assert telemetry.configure(Settings()) is False
