"""host.json, the local settings example and .funcignore agree with the code."""

from __future__ import annotations

import json

import pytest

from autoremediation.blueprints.queue_worker import MAX_DEQUEUE_COUNT
from autoremediation.settings import SETTING_NAMES, Settings
from autoremediation.worker import DEFAULT_MAX_DEQUEUE
from tests.functions.conftest import REPO, Engine, call, function_json, http, sample

HOST_SETTINGS = {"FUNCTIONS_WORKER_RUNTIME", "AzureWebJobsStorage"}


def test_host_json_matches_what_the_worker_assumes() -> None:
    data = json.loads((REPO / "host.json").read_text())
    queues = data["extensions"]["queues"]

    assert data["version"] == "2.0"
    assert data["extensionBundle"] == {
        "id": "Microsoft.Azure.Functions.ExtensionBundle",
        "version": "[4.*, 5.0.0)",
    }
    assert queues["maxDequeueCount"] == MAX_DEQUEUE_COUNT == DEFAULT_MAX_DEQUEUE == 5
    assert queues["messageEncoding"] == "base64"  # what StorageQueue writes
    assert data["extensions"]["http"]["routePrefix"] == "api"  # the Location headers say /api/...


def test_the_queue_trigger_and_the_event_trigger_bind_to_the_app_settings() -> None:
    worker = function_json("dispatch_worker")["bindings"][0]
    events = function_json("resource_events")["bindings"][0]

    assert worker["type"] == "queueTrigger"
    assert worker["queueName"] == "%REMEDIATION_QUEUE_NAME%"
    assert worker["connection"] == "REMEDIATION_STORAGE"
    assert events["type"] == "eventGridTrigger"


def test_the_local_settings_example_names_only_known_settings_and_loads() -> None:
    values = json.loads((REPO / "local.settings.json.example").read_text())["Values"]

    assert set(values) - HOST_SETTINGS <= set(SETTING_NAMES)
    settings = Settings.from_env(values)
    assert settings.job_store == "table"
    assert settings.storage_connection_string == "UseDevelopmentStorage=true"
    assert settings.arm_endpoint.startswith("https://127.0.0.1")


def test_funcignore_keeps_the_app_and_its_catalog_and_drops_the_rest() -> None:
    ignored = {line.strip() for line in (REPO / ".funcignore").read_text().splitlines() if line.strip()}

    assert {"tests", ".venv", "local.settings.json", "node_modules", "infra"} <= ignored
    assert (
        not {"autoremediation", "remediations", "function_app.py", "host.json", "requirements.txt"} & ignored
    )


def test_telemetry_is_wired_once_on_the_first_invocation(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from autoremediation import telemetry

    calls: list[Settings] = []
    monkeypatch.setattr(telemetry, "configure", lambda settings: calls.append(settings) or True)

    call("alerts", http("POST", "alerts", sample("disk-full-alert.json")))
    call("catalog", http("GET", "catalog"))

    assert calls == [engine.services.settings]


def test_a_telemetry_failure_does_not_fail_the_function(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from autoremediation import telemetry

    def broken(settings: Settings) -> bool:
        raise ValueError("the connection string is malformed")

    monkeypatch.setattr(telemetry, "configure", broken)

    response = call("alerts", http("POST", "alerts", sample("disk-full-alert.json")))

    assert response.status_code == 202
