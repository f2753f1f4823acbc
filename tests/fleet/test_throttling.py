"""The emulator's ARM throttling: token buckets per subscription and kind, 429 with Retry-After, and the
remaining-requests headers, read by the real SDK client and by the app's ARM budget."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from localfleet.fleetfile import parse_fleet
from localfleet.server import FleetServer
from localfleet.throttle import ARM_DEFAULTS, BucketSpec, Throttle

from autoremediation.errors import InvalidInput
from tests.fleet.conftest import SUB

pytestmark = pytest.mark.fleet


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def fleet_doc(throttling: Any) -> dict[str, Any]:
    return {
        "subscriptions": [
            {
                "id": SUB,
                "resourceGroups": [
                    {
                        "name": "rg-demo",
                        "location": "westeurope",
                        "virtualMachines": [{"name": "vm1", "tags": {"autoremediation": "enabled"}}],
                    }
                ],
            }
        ],
        "throttling": throttling,
    }


def test_a_bucket_answers_until_empty_then_refuses_with_whole_seconds_to_wait() -> None:
    clock = Clock()
    throttle = Throttle({"reads": BucketSpec(3, 0.5)}, clock=clock)

    verdicts = [throttle.take(SUB, "GET") for _ in range(4)]

    assert [v.allowed for v in verdicts if v] == [True, True, True, False]
    assert [v.remaining for v in verdicts if v] == [2, 1, 0, 0]
    refused = verdicts[3]
    assert refused is not None and refused.retry_after == 2  # one token at 0.5/s
    assert refused.headers() == {"x-ms-ratelimit-remaining-subscription-reads": "0", "Retry-After": "2"}
    clock.now += 2
    again = throttle.take(SUB, "GET")
    assert again is not None and again.allowed
    assert throttle.refused == {"reads": 1, "writes": 0, "deletes": 0}


def test_kinds_and_subscriptions_have_buckets_of_their_own() -> None:
    throttle = Throttle({"reads": BucketSpec(1, 1), "writes": BucketSpec(1, 1)}, clock=Clock())

    assert throttle.take(SUB, "GET").allowed  # type: ignore[union-attr]
    assert throttle.take(SUB, "PUT").allowed  # type: ignore[union-attr]
    assert throttle.take("other", "GET").allowed  # type: ignore[union-attr]
    assert not throttle.take(SUB, "POST").allowed  # type: ignore[union-attr]  # POST is a write
    assert throttle.take(SUB, "DELETE") is None  # deletes unlimited in this fleet
    assert throttle.take("", "GET") is None  # tenant-level routes are not subscription-throttled


def test_the_fleet_file_declares_arm_defaults_or_its_own_rates() -> None:
    assert parse_fleet(fleet_doc("arm")).throttling == dict(ARM_DEFAULTS)
    own = parse_fleet(fleet_doc({"writes": {"capacity": 20, "refillPerSecond": 50}})).throttling
    assert own == {"writes": BucketSpec(20, 50.0)}
    assert parse_fleet({k: v for k, v in fleet_doc(None).items() if k != "throttling"}).throttling is None
    with pytest.raises(InvalidInput, match=r"throttling.reads.*unknown field 'size'"):
        parse_fleet(fleet_doc({"reads": {"size": 3}}))


@pytest.fixture
def throttled() -> Iterator[FleetServer]:
    spec = parse_fleet(fleet_doc({"reads": {"capacity": 3, "refillPerSecond": 0.01}}), "throttled.yaml")
    with FleetServer(spec, sandbox=False) as server:
        yield server


def test_the_sdk_sees_remaining_reads_then_a_429_with_retry_after(throttled: FleetServer) -> None:
    from azure.core.exceptions import HttpResponseError
    from azure.core.pipeline.policies import SansIOHTTPPolicy
    from azure.mgmt.compute import ComputeManagementClient
    from localfleet.credential import FleetCredential

    seen: list[dict[str, str]] = []

    class Headers(SansIOHTTPPolicy):  # type: ignore[misc]
        def on_response(self, request: Any, response: Any) -> None:
            seen.append(dict(response.http_response.headers))

    client = ComputeManagementClient(
        FleetCredential(),
        SUB,
        base_url=throttled.base_url,
        connection_verify=throttled.ca_bundle,
        retry_total=0,
        per_call_policies=[Headers()],
    )
    for _ in range(3):
        client.virtual_machines.get("rg-demo", "vm1")
    with pytest.raises(HttpResponseError) as refused:
        client.virtual_machines.get("rg-demo", "vm1")

    assert [h["x-ms-ratelimit-remaining-subscription-reads"] for h in seen[:3]] == ["2", "1", "0"]
    assert refused.value.status_code == 429
    assert refused.value.error is not None and refused.value.error.code == "SubscriptionRequestsThrottled"
    assert int(seen[3]["Retry-After"]) >= 1
    assert throttled.throttle is not None and throttled.throttle.refused["reads"] == 1


def test_the_app_budget_learns_from_the_headers_and_never_meets_a_429(throttled: FleetServer) -> None:
    """Another process spent part of the bucket: the budget believes the header, not its own count."""
    from autoremediation.azure import clients
    from autoremediation.azure.compute import AzureCompute
    from autoremediation.settings import Settings

    assert throttled.throttle is not None
    throttled.throttle.take(SUB, "GET")  # "another worker" spent one read
    settings = Settings(
        arm_endpoint=throttled.base_url, arm_ca_bundle=throttled.ca_bundle, arm_limits="reads=3/0.01"
    )
    compute = AzureCompute(settings, polling_interval=0)

    compute.get_vm(
        f"/subscriptions/{SUB}/resourceGroups/rg-demo/providers/Microsoft.Compute/virtualMachines/vm1"
    )

    bucket = clients.arm_budget({"reads": (3.0, 0.01)}).bucket(SUB, "reads")
    # 3 - the other's read - ours = 1 (plus a trickle of refill); without the header it would be 2
    assert bucket is not None and bucket.available() < 1.5
    assert throttled.throttle.refused["reads"] == 0
