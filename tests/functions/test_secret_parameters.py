"""Parameters the catalog declares secret never leave through the API; the stored job keeps them."""

from __future__ import annotations

import json

from tests.functions.conftest import Engine, call, http, json_of, vm_id

UPLOAD_URL = "https://diagstore01.blob.core.windows.net/diagnostics/vm.tar.gz?sv=2024-01-01&sig=s3cr3tSIG"


def diagnostics_request(**changes: object) -> dict[str, object]:
    body: dict[str, object] = {
        "remediation": "collect-diagnostics",
        "targets": [vm_id("vm-linux-disk")],
        "parameters": {"uploadUrl": UPLOAD_URL, "maxLogLines": 500},
        "reason": "support case",
        "requestId": "diag-1",
        "dryRun": False,
    }
    body.update(changes)
    return body


def test_a_job_shows_its_secret_parameter_as_secret_and_keeps_it_stored(engine: Engine) -> None:
    created = call("remediations_create", http("POST", "remediations", diagnostics_request()))
    assert created.status_code == 202
    [job_id] = json_of(created)["jobIds"]

    shown = call("remediations_get", http("GET", f"remediations/{job_id}", route_params={"id": job_id}))

    assert shown.status_code == 200
    assert json_of(shown)["parameters"] == {"uploadUrl": "(secret)", "maxLogLines": "500"}
    assert "s3cr3tSIG" not in created.get_body().decode()
    assert "s3cr3tSIG" not in shown.get_body().decode()
    # The worker still has what it needs at dispatch.
    assert engine.store.get(job_id).parameters["uploadUrl"] == UPLOAD_URL


def test_a_campaign_shows_its_secret_parameter_as_secret(engine: Engine) -> None:
    request = {
        "id": "c-diag",
        "remediation": "collect-diagnostics",
        "targets": {"vmIds": [vm_id("vm-linux-disk"), vm_id("vm-linux-locked")]},
        "parameters": {"uploadUrl": UPLOAD_URL},
        "maxConcurrency": 1,
        "maxErrors": 0,
    }

    created = call("campaigns_create", http("POST", "campaigns", request))
    shown = call("campaigns_get", http("GET", "campaigns/c-diag", route_params={"id": "c-diag"}))
    again = call("campaigns_create", http("POST", "campaigns", request))  # a retried POST

    for response in (created, shown, again):
        assert response.status_code in (200, 202)
        assert json_of(response)["parameters"] == {"uploadUrl": "(secret)"}
        assert "s3cr3tSIG" not in response.get_body().decode()
    stored = engine.store.list(campaign_id="c-diag")
    assert len(stored) == 2
    assert {job.parameters["uploadUrl"] for job in stored} == {UPLOAD_URL}
    assert json.dumps(engine.store.get_campaign("c-diag")).count("s3cr3tSIG") == 1


def test_parameters_that_are_not_secret_are_shown_as_given(engine: Engine) -> None:
    body = {
        "remediation": "free-disk-space",
        "targets": [vm_id("vm-linux-disk")],
        "parameters": {"mountPoint": "/var"},
        "reason": "test",
        "requestId": "plain-1",
        "dryRun": False,
    }
    [job_id] = json_of(call("remediations_create", http("POST", "remediations", body)))["jobIds"]
    shown = call("remediations_get", http("GET", f"remediations/{job_id}", route_params={"id": job_id}))
    assert json_of(shown)["parameters"]["mountPoint"] == "/var"
