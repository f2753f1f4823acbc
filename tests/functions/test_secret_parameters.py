"""No secret enters a request or a job record: the diagnostics destination is the app's own."""

from __future__ import annotations

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


def test_a_request_cannot_name_an_upload_destination_and_nothing_rests(engine: Engine) -> None:
    refused = call("remediations_create", http("POST", "remediations", diagnostics_request()))

    assert refused.status_code == 400
    assert "uploadUrl" in refused.get_body().decode() and "s3cr3tSIG" not in refused.get_body().decode()
    assert engine.store.list() == []


def test_a_diagnostics_job_holds_no_secret(engine: Engine) -> None:
    body = diagnostics_request(parameters={"maxLogLines": 500})
    created = call("remediations_create", http("POST", "remediations", body))
    assert created.status_code == 202
    [job_id] = json_of(created)["jobIds"]

    # The SAS is minted by the worker at dispatch and passed to the run command only.
    assert engine.store.get(job_id).parameters == {"maxLogLines": "500"}


def test_a_campaign_cannot_name_an_upload_destination(engine: Engine) -> None:
    request = {
        "id": "c-diag",
        "remediation": "collect-diagnostics",
        "targets": {"vmIds": [vm_id("vm-linux-disk"), vm_id("vm-linux-locked")]},
        "parameters": {"uploadUrl": UPLOAD_URL},
        "maxConcurrency": 1,
        "maxErrors": 0,
    }

    created = call("campaigns_create", http("POST", "campaigns", request))

    assert created.status_code == 400
    assert "s3cr3tSIG" not in created.get_body().decode()
    assert engine.store.list(campaign_id="c-diag") == []
    assert engine.store.list() == []


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
