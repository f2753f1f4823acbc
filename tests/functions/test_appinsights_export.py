"""The real azure-monitor-opentelemetry exporter, pointed at a local ingestion endpoint.

A separate process (the exporter's providers are process-wide and cannot be undone) configures telemetry
the way the Function App does, writes transitions through the engine's store, and flushes. The local
server stands in for ``/v2.1/track``: what it receives is what Application Insights would store.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from autoremediation import telemetry
from tests.helpers.catalogs import REPO
from tests.helpers.receivers import Receiver

VM = (
    "/subscriptions/00000000-0000-0000-0000-00000000000a/resourceGroups/rg"
    "/providers/Microsoft.Compute/virtualMachines/web-07"
)

SCRIPT = f"""
import sys
from datetime import UTC, datetime, timedelta
from autoremediation import jobs, telemetry
from autoremediation.services import Services
from autoremediation.settings import Settings

settings = Settings(sqlite_path=sys.argv[2], appinsights_connection_string=sys.argv[1])
assert telemetry.configure(settings)
store = Services(settings).store
now = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)
later = now + timedelta(seconds=30)
job, _ = store.create(jobs.new_job(idempotency_key="night-1", remediation="free-disk-space",
    condition="disk-full", target="{VM}", parameters={{}}, now=now, actor="alert", reason="alert disk",
    campaign_id="camp-1"))
job = store.update(jobs.transition(job, jobs.DISPATCHING, now=now, actor="worker", reason="guards passed"))
job = store.update(jobs.transition(job, jobs.RUNNING, now=now, actor="worker", reason="run command started"))
verifying = jobs.transition(job, jobs.VERIFYING, now=later, actor="worker", reason="run command ended",
    outcome={{"exitCode": 3, "runSeconds": 12.5}})
store.update(jobs.transition(verifying, jobs.FAILED, now=later, actor="worker", reason="status not-fixed",
    outcome={{**verifying.outcome, "verification": "the script reported not-fixed"}}))
other, _ = store.create(jobs.new_job(idempotency_key="night-2", remediation="free-disk-space",
    condition="disk-full", target="{VM}", parameters={{}}, now=later, actor="alert"))
store.update(jobs.transition(other, jobs.SKIPPED, now=later, actor="worker",
    reason="circuit-breaker: free-disk-space failed 3 times"))

from opentelemetry._logs import get_logger_provider
from opentelemetry.metrics import get_meter_provider
get_logger_provider().force_flush()
get_meter_provider().force_flush()
"""


@pytest.fixture(scope="module")
def envelopes(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    tmp: Path = tmp_path_factory.mktemp("appinsights")
    with Receiver("ok") as ingestion:
        port = ingestion.server.server_address[1]
        connection = (
            "InstrumentationKey=00000000-0000-0000-0000-000000000000;"
            f"IngestionEndpoint=http://127.0.0.1:{port}/"
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith(("APPLICATIONINSIGHTS_", "OTEL_"))}
        env["APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL"] = "true"  # statsbeat posts to Microsoft's host
        env["OTEL_EXPERIMENTAL_RESOURCE_DETECTORS"] = "otel"  # no IMDS probe for an Azure VM
        done = subprocess.run(
            [sys.executable, "-c", SCRIPT, connection, str(tmp / "jobs.db")],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        requests = list(ingestion.requests)
    assert requests, "the exporter sent nothing"
    assert {r.path for r in requests} == {"/v2.1/track"}
    return [item for r in requests for item in r.items()]


def _events(envelopes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in envelopes if e["data"]["baseType"] == "EventData"]


def test_each_transition_is_one_custom_event_with_flat_dimensions(envelopes: list[dict[str, Any]]) -> None:
    events = _events(envelopes)
    assert [e["data"]["baseData"]["name"] for e in events] == [telemetry.EVENT_NAME] * 7
    assert all(e["name"] == "Microsoft.ApplicationInsights.Event" for e in events)
    by_state = {
        e["data"]["baseData"]["properties"]["to"]: e["data"]["baseData"]["properties"] for e in events
    }
    assert sorted(by_state) == ["dispatching", "failed", "planned", "running", "skipped", "verifying"]
    failed = by_state["failed"]
    assert {k: failed[k] for k in ("jobId", "remediation", "condition", "target", "vmName")} == {
        "jobId": failed["jobId"],
        "remediation": "free-disk-space",
        "condition": "disk-full",
        "target": VM,
        "vmName": "web-07",
    }
    assert failed["jobId"].startswith("job-")
    assert (failed["from"], failed["actor"], failed["reason"]) == ("verifying", "worker", "status not-fixed")
    assert (failed["exitCode"], failed["verdict"], failed["runSeconds"]) == (
        "3",
        "the script reported not-fixed",
        "12.5",
    )
    assert (failed["dryRun"], failed["campaignId"]) == ("false", "camp-1")
    assert by_state["skipped"]["guard"] == "circuit-breaker"
    assert "guard" not in failed and "from" not in by_state["planned"]
    # Flat: no attribute holds a nested structure's repr, and the marker itself is not a dimension.
    for event in events:
        props = event["data"]["baseData"]["properties"]
        ours = set(props) - {"logger_name"}  # the exporter's own addition
        assert ours <= set(telemetry.EVENT_FIELDS), ours - set(telemetry.EVENT_FIELDS)
        assert not any(v.startswith(("{", "[")) for v in props.values())
        assert event["iKey"] == "00000000-0000-0000-0000-000000000000"


def test_one_write_with_two_transitions_gives_two_events(envelopes: list[dict[str, Any]]) -> None:
    states = [e["data"]["baseData"]["properties"]["to"] for e in _events(envelopes)]
    assert states.count("verifying") == 1 and states.count("failed") == 1


def _metrics(envelopes: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    found = []
    for envelope in envelopes:
        if envelope["data"]["baseType"] != "MetricData":
            continue
        base = envelope["data"]["baseData"]
        found += [
            {**m, "properties": base.get("properties", {})} for m in base["metrics"] if m["name"] == name
        ]
    return found


def test_jobs_are_counted_by_outcome(envelopes: list[dict[str, Any]]) -> None:
    counted = {
        (m["properties"]["remediation"], m["properties"]["outcome"]): m["value"]
        for m in _metrics(envelopes, telemetry.JOBS_METRIC)
    }
    assert counted == {("free-disk-space", "failed"): 1, ("free-disk-space", "skipped"): 1}


def test_run_duration_is_a_histogram(envelopes: list[dict[str, Any]]) -> None:
    [duration] = _metrics(envelopes, telemetry.RUN_DURATION_METRIC)
    assert duration["value"] == 12.5 and duration.get("count", 1) == 1
    assert duration["properties"]["outcome"] == "failed"
