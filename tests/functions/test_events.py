"""The ``resource_events`` Event Grid trigger, with events decoded by the Functions converter itself
and the NSG detector reading the local ARM emulator through the real SDK clients."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest
from azure.functions.eventgrid import EventGridEventInConverter
from azure.functions.meta import Datum
from localfleet.server import FleetServer

from autoremediation import jobs
from autoremediation.azure import clients
from autoremediation.errors import Transient
from autoremediation.services import Services, set_services
from autoremediation.settings import Settings
from autoremediation.store.memory_queue import InProcessQueue, ManualClock
from autoremediation.store.sqlite import SqliteJobStore
from tests.functions.conftest import RG, SUB, call, sample, vm_id

pytestmark = pytest.mark.fleet


def decoded(event: dict[str, Any]) -> func.EventGridEvent:
    """What the Python worker hands the function for one event of a delivery."""
    result: func.EventGridEvent = EventGridEventInConverter.decode(
        Datum(json.dumps(event), "json"), trigger_metadata={}
    )
    return result


def as_cloud_event(event: dict[str, Any]) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": event["id"],
        "source": event["topic"],
        "subject": event["subject"],
        "type": event["eventType"],
        "time": event["eventTime"],
        "data": event["data"],
    }


class Wired:
    def __init__(self, store: SqliteJobStore, queue: InProcessQueue) -> None:
        self.store = store
        self.queue = queue

    def queued(self) -> list[str]:
        return [m.job_id for m in self.queue.receive()]


@pytest.fixture
def wired(tmp_path: Path) -> Iterator[Wired]:
    with FleetServer(sandbox=False) as fleet:
        settings = Settings(
            sqlite_path=str(tmp_path / "jobs.db"), arm_endpoint=fleet.base_url, arm_ca_bundle=fleet.ca_bundle
        )
        clock = ManualClock()
        store = SqliteJobStore(settings.sqlite_path)
        queue = InProcessQueue(clock)
        set_services(Services(settings, clock=clock, store=store, queue=queue))
        yield Wired(store, queue)
        set_services(None)
        store.close()
    clients.clear_cache()


def nsg_event() -> dict[str, Any]:
    event: dict[str, Any] = sample("nsg-rule-write-event.json")[0]
    return event


@pytest.mark.parametrize("schema", ["eventgrid", "cloudevents"])
def test_an_nsg_rule_write_finds_the_locked_out_vm_and_queues_a_job(wired: Wired, schema: str) -> None:
    event = nsg_event() if schema == "eventgrid" else as_cloud_event(nsg_event())

    assert call("resource_events", decoded(event)) is None

    [job] = wired.store.list()
    assert job.remediation == "restore-management-access"
    assert job.target.lower() == vm_id("vm-linux-locked").lower()
    assert job.status == jobs.PLANNED
    assert job.requested_by == "event-grid"
    assert job.evidence  # what the detector saw, for the operator who approves
    assert wired.queued() == [job.id]


def test_a_redelivered_event_makes_no_second_job(wired: Wired) -> None:
    call("resource_events", decoded(nsg_event()))
    wired.queued()

    call("resource_events", decoded(nsg_event()))

    assert len(wired.store.list()) == 1
    assert wired.queued() == []


def test_a_subscription_validation_event_is_never_routed(wired: Wired) -> None:
    validation = {
        "id": "2d1781af-3a4c-4d7c-bd0c-e34b19da4e66",
        "topic": f"/subscriptions/{SUB}",
        "subject": "",
        "data": {
            "validationCode": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6",
            "validationUrl": "https://rp-eastus2.eventgrid.azure.net/eventsubscriptions/x/validate?code=y",
        },
        "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
        "eventTime": "2026-11-25T10:00:00.0000000Z",
        "metadataVersion": "1",
        "dataVersion": "1",
    }

    call("resource_events", decoded(validation))

    assert wired.store.list() == []
    assert wired.queued() == []


def test_a_malformed_event_is_dropped_without_a_retry(wired: Wired, caplog: pytest.LogCaptureFixture) -> None:
    event = {**nsg_event(), "data": "not an object"}

    assert call("resource_events", decoded(event)) is None

    assert wired.store.list() == []
    assert "dropped" in caplog.text


def test_an_event_for_nothing_the_routes_know_makes_no_job(wired: Wired) -> None:
    storage = f"{RG}/providers/Microsoft.Storage/storageAccounts/logs1"
    event = {
        **nsg_event(),
        "id": "7f1c0e52-4b1d-4d35-9a53-1f0e2e7b9c10",
        "subject": storage,
        "data": {
            **nsg_event()["data"],
            "resourceUri": storage,
            "operationName": "Microsoft.Storage/storageAccounts/write",
            "authorization": {"scope": storage, "action": "Microsoft.Storage/storageAccounts/write"},
        },
    }

    call("resource_events", decoded(event))

    assert wired.store.list() == []


class FailingStore(SqliteJobStore):
    def create(self, job: jobs.Job) -> tuple[jobs.Job, bool]:
        raise Transient("table storage create: cannot reach the storage account")


def test_a_storage_outage_raises_so_event_grid_delivers_again(tmp_path: Path) -> None:
    with FleetServer(sandbox=False) as fleet:
        settings = Settings(arm_endpoint=fleet.base_url, arm_ca_bundle=fleet.ca_bundle)
        store = FailingStore(str(tmp_path / "jobs.db"))
        set_services(Services(settings, store=store, queue=InProcessQueue()))
        try:
            with pytest.raises(Transient):
                call("resource_events", decoded(nsg_event()))
        finally:
            set_services(None)
            clients.clear_cache()


def test_the_event_and_the_activity_log_alert_of_one_write_make_one_job_shown_with_its_evidence(
    wired: Wired,
) -> None:
    from dataclasses import replace

    from autoremediation.services import get_services
    from tests.functions.conftest import RITA, http, json_of

    call("resource_events", decoded(nsg_event()))
    response = call("alerts", http("POST", "alerts", sample("nsg-rule-write-alert.json")))
    assert response.status_code in (200, 202), response.get_body()

    [job] = wired.store.list()
    assert job.idempotency_key.startswith("change|3c2b1a09-8f7e-4d6c-b5a4-93827160f5e4|")
    # The operator API knows who asks only behind App Service authentication: a reader signs in.
    services = get_services()
    services.settings = replace(services.settings, platform_auth=True)
    route = {"id": job.id}
    response = call(
        "remediations_get", http("GET", f"remediations/{job.id}", route_params=route, headers=RITA)
    )
    view = json_of(response)
    assert response.status_code == 200, view
    evidence = view["evidence"]
    assert (evidence["rule"], evidence["level"], evidence["direction"], evidence["port"]) == (
        "deny-ssh",
        "nic",
        "Inbound",
        22,
    )
    assert evidence["nsg_id"].lower().endswith("/networksecuritygroups/nsg-demo")
    assert evidence["change"]["correlationId"] == "3c2b1a09-8f7e-4d6c-b5a4-93827160f5e4"
