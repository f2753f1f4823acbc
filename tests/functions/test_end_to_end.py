"""Alert in, remediation out, through the real parts a deployment uses, minus the Functions host:

alert webhook -> Storage Queue on Azurite -> queue trigger fed the message read back from Azurite ->
local ARM emulator over HTTPS with the real SDK clients -> Table Storage on Azurite -> GET the outcome.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from azure.functions.queue import QueueMessage
from localfleet.server import FleetServer

from autoremediation import jobs
from autoremediation.azure import clients
from autoremediation.services import Services, set_services
from autoremediation.settings import Settings
from tests.azurite import Azurite, azurite, unique_name  # noqa: F401
from tests.functions.conftest import call, http, json_of, sample
from tests.helpers.easyauth import TENANT_ID

pytestmark = [pytest.mark.azurite, pytest.mark.fleet]
MAX_DELIVERIES = 40


class FleetWallClock:
    def __init__(self, fleet: FleetServer) -> None:
        self.fleet = fleet

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.fleet.fleet.clock.now(), UTC)


@pytest.fixture
def deployed(azurite: Azurite) -> Iterator[tuple[dict[str, str], FleetServer]]:  # noqa: F811
    with FleetServer(sandbox=False) as fleet:
        env = {
            "REMEDIATION_JOB_STORE": "table",
            "REMEDIATION_STORAGE": azurite.connection_string,
            "REMEDIATION_QUEUE_NAME": unique_name("q"),
            "REMEDIATION_TABLE_PREFIX": unique_name("t"),
            "REMEDIATION_ARM_ENDPOINT": fleet.base_url,
            "REMEDIATION_ARM_CA_BUNDLE": fleet.ca_bundle,
            "REMEDIATION_POLL_SECONDS": "0",
            "WEBSITE_AUTH_ENABLED": "True",  # App Service authentication in front, as deployed
            "AZURE_TENANT_ID": TENANT_ID,
            "REMEDIATION_TRUSTED_ALERT_RULES": ",".join(fleet.fleet.alerting.deployed_rules()),
        }
        # The app and Azure Monitor share one clock: the fleet's (the sample alerts fired on its morning).
        set_services(Services(Settings.from_env(env), clock=FleetWallClock(fleet)))
        try:
            yield env, fleet
        finally:
            set_services(None)
            clients.clear_cache()


def host_queue(env: dict[str, str]) -> Any:
    """The queue as the Functions host reads it: raw wire text, which it base64-decodes itself."""
    from azure.storage.queue import QueueClient

    return QueueClient.from_connection_string(env["REMEDIATION_STORAGE"], env["REMEDIATION_QUEUE_NAME"])


def deliver_all(env: dict[str, str], job_id: str) -> int:
    """Work the queue the way the host would until the job ends; returns how many messages ran."""
    queue = host_queue(env)
    deliveries = 0
    while deliveries < MAX_DELIVERIES:
        messages = list(queue.receive_messages(max_messages=8, visibility_timeout=30))
        if not messages:
            break
        for message in messages:
            body = base64.b64decode(message.content)
            assert json.loads(body) == {"jobId": job_id}
            trigger = QueueMessage(
                id=message.id,
                body=body,
                dequeue_count=message.dequeue_count,
                pop_receipt=message.pop_receipt,
            )
            call("dispatch_worker", trigger)
            queue.delete_message(message.id, message.pop_receipt)  # the host completes the message
            deliveries += 1
    return deliveries


def test_a_disk_full_alert_is_remediated_and_the_outcome_is_readable(
    deployed: tuple[dict[str, str], FleetServer],
) -> None:
    env, fleet = deployed
    accepted = call("alerts", http("POST", "alerts", sample("disk-full-alert.json")))
    assert accepted.status_code == 202
    [job_id] = json_of(accepted)["jobIds"]

    deliveries = deliver_all(env, job_id)

    shown = call("remediations_get", http("GET", f"remediations/{job_id}", route_params={"id": job_id}))
    assert shown.status_code == 200
    job = json_of(shown)
    assert job["status"] == jobs.SUCCEEDED, job["history"]
    assert job["outcome"]["exitCode"] == 0
    assert job["outcome"]["result"]["status"] == "fixed"
    assert job["outcome"]["result"]["after"]["freePercent"] >= 20
    assert job["outcome"]["verified"] is True
    assert job["run"]["name"] == jobs.run_name_for(job_id)
    assert fleet.runs_started("vm-linux-disk") == 1
    assert fleet.calls_matching("PUT", "*/runCommands/*")
    # planned -> dispatching -> running -> verifying -> succeeded, each step its own write; the first
    # message carries the job to a started run (and on, when the run has ended by then).
    assert [t["target"] for t in job["history"]][-4:] == ["dispatching", "running", "verifying", "succeeded"]
    assert deliveries >= 1

    again = call("alerts", http("POST", "alerts", sample("disk-full-alert.json")))
    assert json_of(again)["jobIds"] == [job_id]
    assert deliver_all(env, job_id) == 0  # a duplicate delivery queues nothing
    listed = call("remediations_list", http("GET", "remediations", params={"status": "succeeded"}))
    assert [j["id"] for j in json_of(listed)["jobs"]] == [job_id]
    # The alert learnt the outcome through the Alerts Management API: closed, the comment names the job.
    alert_id = sample("disk-full-alert.json")["data"]["essentials"]["alertId"]
    assert fleet.fleet.alerting.state_of(alert_id) == "Closed"
    [change] = fleet.fleet.alerting.history(alert_id)
    assert change["state"] == "Closed" and job_id in change["comments"] and "succeeded" in change["comments"]
    assert fleet.calls_matching("POST", "*/Microsoft.AlertsManagement/alerts/*/changestate")
