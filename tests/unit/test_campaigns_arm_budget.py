"""The per-subscription ARM request budget: token buckets on a fake clock, and the pipeline policy."""

from __future__ import annotations

import threading
from email.utils import formatdate
from typing import Any

import pytest

from autoremediation.azure.budget import (
    ARM_LIMITS,
    READS,
    WRITES,
    ArmBudget,
    Rate,
    TokenBucket,
    arm_budget_policy,
    kind_of,
    retry_after_seconds,
    subscription_of,
)
from autoremediation.errors import InvalidInput

SUB = "00000000-0000-0000-0000-000000000001"


class FakeTime:
    """A clock that only moves when someone sleeps on it."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def clock(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds


def test_a_full_bucket_serves_a_burst_then_paces_at_the_refill_rate() -> None:
    t = FakeTime()
    bucket = TokenBucket(Rate(5, 2), clock=t.clock, sleep=t.sleep)
    assert [bucket.acquire() for _ in range(5)] == [0, 0, 0, 0, 0]
    assert bucket.acquire() == pytest.approx(0.5)
    assert bucket.acquire() == pytest.approx(0.5)
    assert t.now == pytest.approx(1001.0)


def test_waiting_callers_line_up_instead_of_all_waking_at_once() -> None:
    t = FakeTime()
    bucket = TokenBucket(Rate(1, 4), clock=t.clock, sleep=t.sleep)
    bucket.reserve()
    waits = [bucket.reserve() for _ in range(4)]  # four threads arrive together
    assert waits == pytest.approx([0.25, 0.5, 0.75, 1.0])


def test_idle_time_refills_up_to_the_capacity_only() -> None:
    t = FakeTime()
    bucket = TokenBucket(Rate(3, 1), clock=t.clock, sleep=t.sleep)
    for _ in range(3):
        bucket.acquire()
    t.now += 100
    assert bucket.available() == 3
    assert [bucket.acquire() for _ in range(4)][-1] == pytest.approx(1.0)


def test_a_429_pauses_every_kind_for_the_subscription_and_no_other() -> None:
    t = FakeTime()
    budget = ArmBudget(clock=t.clock, sleep=t.sleep)
    budget.pause(SUB, 7)
    assert budget.acquire(SUB, READS) == pytest.approx(7 + 1 / 25)
    assert budget.acquire("other-sub", READS) == 0
    # Writes refilled from empty since the pause ended 1/25 s ago: the rest of one token to wait.
    assert budget.acquire(SUB.upper(), WRITES) == pytest.approx(1 / 10 - 1 / 25)


def test_arm_documented_limits_are_the_default() -> None:
    assert ARM_LIMITS[READS] == Rate(250, 25)
    assert ARM_LIMITS[WRITES] == Rate(200, 10)
    t = FakeTime()
    budget = ArmBudget(clock=t.clock, sleep=t.sleep)
    waited = [budget.acquire(SUB, READS) for _ in range(275)]
    assert sum(1 for w in waited if w == 0) == 250
    assert t.now == pytest.approx(1001.0)  # 25 more reads took one second


def test_concurrent_threads_never_get_more_than_the_budget() -> None:
    t = FakeTime()
    bucket = TokenBucket(Rate(10, 5), clock=t.clock, sleep=t.sleep)
    waits: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(10):
            wait = bucket.reserve()
            with lock:
                waits.append(wait)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(waits)[:10] == [0] * 10
    assert max(waits) == pytest.approx(30 / 5)  # 40 requests: 10 at once, 30 at 5 per second


def test_bad_rates_are_refused() -> None:
    with pytest.raises(InvalidInput, match="at least 1 token"):
        Rate(0, 1)
    with pytest.raises(InvalidInput, match="more than 0 per second"):
        Rate(10, 0)
    with pytest.raises(InvalidInput, match="per reads, writes and deletes"):
        ArmBudget({"lists": Rate(1, 1)})


def test_requests_are_classified_by_subscription_and_method() -> None:
    url = f"https://management.azure.com/subscriptions/{SUB.upper()}/resourceGroups/rg?api-version=1"
    assert subscription_of(url) == SUB
    assert subscription_of("https://management.azure.com/providers/Microsoft.Compute/operations") == ""
    assert (kind_of("GET"), kind_of("put"), kind_of("POST"), kind_of("DELETE")) == (
        "reads",
        "writes",
        "writes",
        "deletes",
    )


def test_retry_after_forms() -> None:
    assert retry_after_seconds({"Retry-After": "17"}) == 17
    assert retry_after_seconds({"retry-after-ms": "1500", "Retry-After": "9"}) == 1.5
    assert retry_after_seconds({"Retry-After": formatdate(1030.0, usegmt=True)}, now=lambda: 1000.0) == 30
    assert retry_after_seconds({"Retry-After": "soon"}) is None
    assert retry_after_seconds({}) is None


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"Retry-After": "inf"}, None),  # not a finite number: as if absent
        ({"retry-after-ms": "nan"}, None),
        ({"Retry-After": "1e12"}, 3600.0),  # a gateway's, or a typo: an hour at most
        ({"x-ms-retry-after-ms": "7200000"}, 3600.0),
        ({"Retry-After": "Fri, 01 Jan 2100 00:00:00 GMT"}, 3600.0),
        ({"Retry-After": "3599"}, 3599.0),
        ({"Retry-After": "-5"}, 0.0),
    ],
)
def test_a_retry_after_beyond_an_hour_or_not_finite_is_bounded(headers: dict[str, str], seconds) -> None:
    # Unbounded, it would stop every ARM call of the subscription in this process for that long and
    # delay a job's next message past a Storage Queue message's 7 days.
    assert retry_after_seconds(headers, now=lambda: 1000.0) == seconds


class _Response:
    def __init__(self, status: int, headers: dict[str, str]) -> None:
        self.status_code = status
        self.headers = headers


def _pipeline(responses: list[_Response], budget: ArmBudget) -> tuple[Any, list[str]]:
    from azure.core.pipeline import Pipeline, PipelineResponse
    from azure.core.pipeline.policies import HTTPPolicy
    from azure.core.rest import HttpRequest

    seen: list[str] = []

    class Transport(HTTPPolicy):  # the end of the pipeline, answering from the list
        def send(self, request: Any) -> Any:
            seen.append(request.http_request.method)
            return PipelineResponse(request.http_request, responses.pop(0), request.context)

    class _T:  # Pipeline wants a transport object; the policy list ends in ours
        def __enter__(self) -> Any:
            return self

        def __exit__(self, *a: Any) -> None:
            return None

        def open(self) -> None: ...

        def close(self) -> None: ...

        def send(self, request: Any, **kw: Any) -> Any:
            raise AssertionError("unused")

    pipeline = Pipeline(_T(), policies=[arm_budget_policy(budget), Transport()])  # type: ignore[arg-type]
    return (lambda method: pipeline.run(HttpRequest(method, f"https://arm.test/subscriptions/{SUB}/x"))), seen


def test_the_policy_waits_for_a_token_and_honours_429_for_the_next_request() -> None:
    t = FakeTime()
    budget = ArmBudget({READS: Rate(1, 1), WRITES: Rate(1, 1)}, clock=t.clock, sleep=t.sleep)
    responses = [
        _Response(429, {"Retry-After": "30"}),
        _Response(200, {"x-ms-ratelimit-remaining-subscription-reads": "0"}),
        _Response(200, {}),
    ]
    send, seen = _pipeline(responses, budget)

    assert send("GET").http_response.status_code == 429
    assert t.sleeps == []
    send("PUT")  # another kind, same subscription: it waits out the Retry-After too
    assert t.sleeps == [pytest.approx(31.0)]
    send("GET")  # ARM said no reads remain: wait for a refill
    assert seen == ["GET", "PUT", "GET"]
    assert t.sleeps[-1] == pytest.approx(1.0)
    assert budget.waited == pytest.approx(sum(t.sleeps))
