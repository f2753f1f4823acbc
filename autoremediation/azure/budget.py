"""A per-subscription ARM request budget: token buckets shared by every client of this process.

Azure Resource Manager throttles with token buckets per subscription, per principal and per operation
kind (and per region of the ARM instance). The documented defaults, per subscription and principal:

============  ===========  ====================
operations    bucket size  refill per second
============  ===========  ====================
reads         250          25
writes        200          10
deletes       200          10
============  ===========  ====================

Staying under them here costs a short wait in this process; going over costs a 429 and a
``Retry-After`` for every worker sharing the identity. :class:`ArmBudget` keeps one bucket per
(subscription, kind); :func:`arm_budget_policy` makes the azure-core pipeline policy that takes a
token before each request, pauses the whole subscription when ARM answers 429 (so every thread backs
off, not only the one that was refused), and lowers its own count when ARM's
``x-ms-ratelimit-remaining-subscription-*`` headers say fewer requests remain (another process shares
the budget). Clock and sleep are injected, so tests never wait.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

from ..errors import InvalidInput

READS, WRITES, DELETES = "reads", "writes", "deletes"
_KIND_OF_METHOD = {"GET": READS, "HEAD": READS, "OPTIONS": READS, "DELETE": DELETES}
_SUBSCRIPTION = re.compile(r"^/subscriptions/([^/?#]+)", re.IGNORECASE)
RESERVE_FRACTION = 0.1
TENANT = ""  # the key of requests that name no subscription (tenant-level routes)


@dataclass(frozen=True)
class Rate:
    capacity: float
    refill_per_second: float

    def __post_init__(self) -> None:
        if not self.capacity >= 1:
            raise InvalidInput(f"a token bucket holds at least 1 token, not {self.capacity!r}")
        if not self.refill_per_second > 0:
            raise InvalidInput(
                f"a token bucket refills at more than 0 per second, not {self.refill_per_second!r}"
            )


# ARM's documented subscription limits (token bucket, per subscription, principal and operation kind).
ARM_LIMITS: Mapping[str, Rate] = {READS: Rate(250, 25), WRITES: Rate(200, 10), DELETES: Rate(200, 10)}


class TokenBucket:
    """A thread-safe token bucket. ``acquire`` reserves a token and sleeps (outside the lock) until it is due.

    Reservations may run the count below zero: each caller waits for its own place in line, so callers
    are served in arrival order without spinning.
    """

    def __init__(
        self,
        rate: Rate,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = rate
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = float(rate.capacity)
        self._last = clock()
        # A tenth of the bucket: room for the requests other workers have in flight.
        self.held_back = float(int(rate.capacity * RESERVE_FRACTION))

    def _refill(self, now: float) -> None:
        elapsed = now - self._last
        if elapsed > 0:
            self._tokens = min(self.rate.capacity, self._tokens + elapsed * self.rate.refill_per_second)
            self._last = now

    def reserve(self, tokens: float = 1.0) -> float:
        """Take ``tokens`` now; return how many seconds the caller must wait before using them."""
        if tokens <= 0 or tokens > self.rate.capacity:
            raise InvalidInput(f"cannot take {tokens} tokens from a bucket of {self.rate.capacity}")
        with self._lock:
            now = self._clock()
            self._refill(now)
            self._tokens -= tokens
            due = self._last + max(0.0, -self._tokens) / self.rate.refill_per_second
            return max(0.0, due - now)

    def acquire(self, tokens: float = 1.0) -> float:
        """Wait until ``tokens`` are ours; return the seconds waited."""
        wait = self.reserve(tokens)
        if wait > 0:
            self._sleep(wait)
        return wait

    def available(self) -> float:
        with self._lock:
            self._refill(self._clock())
            return self._tokens

    def pause(self, seconds: float) -> None:
        """Hand out nothing for ``seconds`` (ARM said Retry-After), then refill from empty."""
        if seconds <= 0:
            return
        with self._lock:
            now = self._clock()
            self._refill(now)
            self._tokens = min(self._tokens, 0.0)
            self._last = max(self._last, now + seconds)

    def observe_remaining(self, remaining: float) -> None:
        """ARM says only ``remaining`` requests are left: never believe there are more, less a reserve.

        Several workers (Function instances) share one identity's bucket, and each refills its own
        view at the full rate: near empty, together they would send faster than ARM refills. Keeping
        ``held_back`` tokens in ARM's bucket absorbs what the others send between two of our responses,
        and every response re-aligns this view with ARM's, so the workers share the rate without a 429.
        """
        with self._lock:
            self._refill(self._clock())
            self._tokens = min(self._tokens, remaining - self.held_back)


class ArmBudget:
    """One token bucket per (subscription, operation kind), made on first use."""

    def __init__(
        self,
        limits: Mapping[str, Rate] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.limits = dict(ARM_LIMITS if limits is None else limits)
        unknown = set(self.limits) - {READS, WRITES, DELETES}
        if unknown or not self.limits:
            raise InvalidInput(
                f"ARM budget limits are per {READS}, {WRITES} and {DELETES}, not {sorted(unknown)}"
            )
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._buckets: dict[tuple[str, str], TokenBucket] = {}
        self.waited = 0.0  # seconds spent waiting for tokens, for telemetry and the benchmark

    def bucket(self, subscription: str, kind: str) -> TokenBucket | None:
        rate = self.limits.get(kind)
        if rate is None:
            return None
        key = (subscription.lower(), kind)
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = TokenBucket(rate, clock=self._clock, sleep=self._sleep)
            return bucket

    def acquire(self, subscription: str, kind: str) -> float:
        bucket = self.bucket(subscription, kind)
        if bucket is None:
            return 0.0
        waited = bucket.acquire()
        if waited:
            with self._lock:
                self.waited += waited
        return waited

    def pause(self, subscription: str, seconds: float) -> None:
        """A 429 stops every kind for the subscription: ARM does not say which bucket ran dry."""
        for kind in self.limits:
            bucket = self.bucket(subscription, kind)
            if bucket is not None:
                bucket.pause(seconds)


def subscription_of(url: str) -> str:
    match = _SUBSCRIPTION.match(urlsplit(url).path)
    return match[1].lower() if match else TENANT


def kind_of(method: str) -> str:
    return _KIND_OF_METHOD.get(method.upper(), WRITES)


# The longest wait an answer may ask for: ARM's throttling windows are minutes long. A larger value (a
# gateway's, a date years away) would stop a subscription's calls in this process for as long, and a job's
# next message can be delayed 7 days at most.
LONGEST_RETRY_AFTER_SECONDS = 3600.0


def retry_after_seconds(headers: Mapping[str, str], now: Callable[[], float] = time.time) -> float | None:
    """Seconds from ``retry-after-ms``, ``x-ms-retry-after-ms`` or ``Retry-After`` (seconds or a date),
    at most ``LONGEST_RETRY_AFTER_SECONDS``; None when absent or not a finite number."""
    lowered = {k.lower(): v for k, v in headers.items()}
    for name, scale in (("retry-after-ms", 1000.0), ("x-ms-retry-after-ms", 1000.0)):
        raw = lowered.get(name)
        if raw is not None:
            try:
                return _bounded(float(raw) / scale)
            except ValueError:
                pass
    raw = lowered.get("retry-after")
    if raw is None:
        return None
    try:
        return _bounded(float(raw))
    except ValueError:
        pass
    try:
        return _bounded(parsedate_to_datetime(raw).timestamp() - now())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _bounded(seconds: float) -> float | None:
    if not math.isfinite(seconds):
        return None
    return min(LONGEST_RETRY_AFTER_SECONDS, max(0.0, seconds))


def observe_response(budget: ArmBudget, subscription: str, status: int, headers: Mapping[str, str]) -> None:
    """What a response tells the budget: a 429's pause, the remaining-requests headers."""
    if status == 429:
        budget.pause(subscription, retry_after_seconds(headers) or 1.0)
    lowered = {k.lower(): v for k, v in headers.items()}
    for kind in (READS, WRITES, DELETES):
        raw = lowered.get(f"x-ms-ratelimit-remaining-subscription-{kind}")
        bucket = budget.bucket(subscription, kind) if raw is not None else None
        if bucket is not None and raw is not None:
            try:
                bucket.observe_remaining(float(raw))
            except ValueError:
                continue


_policy_class: Any = None
_policy_lock = threading.Lock()


def arm_budget_policy(budget: ArmBudget) -> Any:
    """An azure-core ``HTTPPolicy`` that spends ``budget`` for each request (SDK imported on first use).

    Add it to a management client with ``per_call_policies=[arm_budget_policy(budget)]``: per call is
    per request here, since the clients run with ``retry_total=0`` and each LRO poll is its own call.
    """
    global _policy_class
    with _policy_lock:
        if _policy_class is None:
            _policy_class = _make_policy_class()
    return _policy_class(budget)


def _make_policy_class() -> Any:
    from azure.core.pipeline import PipelineRequest, PipelineResponse
    from azure.core.pipeline.policies import HTTPPolicy

    class ArmBudgetPolicy(HTTPPolicy):
        def __init__(self, budget: ArmBudget) -> None:
            super().__init__()
            self.budget = budget

        def send(self, request: PipelineRequest) -> PipelineResponse:
            http = request.http_request
            subscription = subscription_of(http.url)
            self.budget.acquire(subscription, kind_of(http.method))
            response = self.next.send(request)
            observe_response(
                self.budget, subscription, response.http_response.status_code, response.http_response.headers
            )
            return response

    return ArmBudgetPolicy
