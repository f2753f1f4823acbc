"""POST /api/alerts: the Action Group webhook."""

from __future__ import annotations

import copy
from pathlib import Path

from autoremediation import jobs
from autoremediation.blueprints.responses import MAX_BODY_BYTES
from autoremediation.errors import Transient
from autoremediation.ports import AlertRuleRecord
from autoremediation.services import set_services
from autoremediation.store.table import TableJobStore
from tests.functions.conftest import RG, Engine, call, http, json_of, make_engine, sample, vm_id


def post_alert(body: object) -> object:
    return call("alerts", http("POST", "alerts", body))


def test_an_alert_creates_and_queues_one_job_per_vm(engine: Engine) -> None:
    response = post_alert(sample("disk-full-alert.json"))

    assert response.status_code == 202
    body = json_of(response)
    assert len(body["jobIds"]) == 1
    job = engine.store.get(body["jobIds"][0])
    assert job.status == jobs.PLANNED
    assert job.target.lower() == vm_id("vm-linux-disk").lower()
    assert job.parameters["mountPoint"] == "/var"
    assert job.requested_by == "action-group"
    assert engine.queued() == [job.id]


def test_a_duplicate_delivery_answers_with_the_same_jobs_and_queues_nothing_new(engine: Engine) -> None:
    first = json_of(post_alert(sample("disk-full-alert.json")))
    engine.queued()

    again = post_alert(sample("disk-full-alert.json"))

    assert again.status_code == 202
    body = json_of(again)
    assert body["jobIds"] == first["jobIds"]
    assert [j["created"] for j in body["jobs"]] == [False]
    assert engine.queued() == []


def test_resolved_cancels_the_job_the_fired_alert_made(engine: Engine) -> None:
    fired = json_of(post_alert(sample("disk-full-alert.json")))
    resolved_sample = sample("disk-full-alert-resolved.json")
    essentials = resolved_sample["data"]["essentials"]
    engine.services.alerts.resolve(essentials["alertId"], essentials["resolvedDateTime"])  # Azure first

    resolved = post_alert(resolved_sample)

    assert resolved.status_code == 202
    assert json_of(resolved)["resolvedJobs"] == fired["jobIds"]
    assert engine.store.get(fired["jobIds"][0]).status == jobs.CANCELLED


def test_bad_payloads_get_400_with_the_reason_and_write_nothing(engine: Engine) -> None:
    broken = copy.deepcopy(sample("disk-full-alert.json"))
    del broken["data"]["essentials"]["alertId"]
    cases = {
        b"{not json": "not JSON",
        b"": "no body",
        b"[1, 2]": "not a Common Alert Schema alert",
        b'{"schemaId": "somethingElse", "data": {}}': "schemaId",
    }
    for raw, reason in cases.items():
        response = post_alert(raw)
        assert response.status_code == 400, raw
        assert reason in json_of(response)["error"], (raw, json_of(response))
    response = post_alert(broken)
    assert response.status_code == 400
    assert "alertId" in json_of(response)["error"]
    assert engine.store.list() == []
    assert engine.queued() == []


def test_the_webhook_refuses_manual_requests_which_need_the_operator_api(engine: Engine) -> None:
    response = post_alert(sample("manual-request.json"))

    assert response.status_code == 400
    assert "Common Alert Schema" in json_of(response)["error"]
    assert engine.store.list() == []


def test_a_body_over_one_megabyte_gets_413(engine: Engine) -> None:
    alert = sample("disk-full-alert.json")
    alert["data"]["customProperties"]["padding"] = "x" * MAX_BODY_BYTES

    response = post_alert(alert)

    assert response.status_code == 413
    assert str(MAX_BODY_BYTES) in json_of(response)["error"]
    assert engine.store.list() == []


def test_a_storage_outage_gets_503_with_retry_after(tmp_path: Path) -> None:
    # A real Table Storage client aimed at a port where nothing listens: the outage an Action Group
    # should wait out and retry.
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    unreachable = TableJobStore.from_connection_string(
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
        f"TableEndpoint=http://127.0.0.1:{port}/devstoreaccount1;",
        table_prefix="outage",
        retry_total=0,
    )
    made = make_engine(tmp_path, store=unreachable)
    set_services(made.services)

    response = post_alert(sample("disk-full-alert.json"))

    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) >= 1
    assert "storage" in json_of(response)["error"]
    assert made.queued() == []


def test_azure_monitor_unreachable_gets_503_so_the_action_group_retries(engine: Engine) -> None:
    engine.services.alerts.failure = Transient("read alert: connection failed")  # type: ignore[attr-defined]

    response = post_alert(sample("disk-full-alert.json"))

    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) >= 1
    assert "provenance: Azure Monitor could not confirm" in json_of(response)["error"]
    assert engine.store.list() == [] and engine.queued() == []


def test_a_forged_alert_is_answered_but_makes_no_job(engine: Engine) -> None:
    forged = copy.deepcopy(sample("disk-full-alert.json"))
    forged["data"]["essentials"]["alertId"] = forged["data"]["essentials"]["alertId"][:-4] + "dead"
    forged["data"]["customProperties"] = {"remediation": "restart-service", "serviceName": "systemd-exit"}

    response = post_alert(forged)

    assert response.status_code == 202
    body = json_of(response)
    assert body["jobIds"] == [] and body["plans"] == []
    assert body["notes"][0]["message"].startswith("provenance: Azure Monitor has no alert")
    assert engine.store.list() == [] and engine.queued() == []


def test_an_alert_that_sets_a_tuning_knob_makes_a_skipped_job_and_queues_nothing(engine: Engine) -> None:
    # Custom properties count as the rule resource in ARM holds them, so the knob is set on the rule.
    rule = f"{RG}/providers/Microsoft.Insights/scheduledQueryRules/disk-full-linux"
    knobs = {"olderThanDays": "1", "targetFreePercent": "90"}
    engine.services.alerts.rules[rule.lower()] = AlertRuleRecord(rule, knobs, scopes=(RG,))  # type: ignore[attr-defined]

    response = post_alert(sample("disk-full-alert.json"))

    assert response.status_code == 202  # the Action Group must not retry a refusal
    job = engine.store.get(json_of(response)["jobIds"][0])
    assert job.status == jobs.SKIPPED
    assert job.history[-1].reason.startswith(
        "parameters: parameter 'olderThanDays': may not come from an alert"
    )
    assert engine.queued() == []
