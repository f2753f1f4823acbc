"""ARM's subscription throttling, as the emulator enforces it when a fleet file asks for it.

Azure Resource Manager keeps token buckets per subscription, principal and operation kind (reads:
250 tokens refilled at 25 per second; writes and deletes: 200 at 10 per second). A request takes one
token; with none left it is answered 429 ``SubscriptionRequestsThrottled`` with ``Retry-After`` (whole
seconds until a token is back). Every answer carries what remains of its kind's bucket in
``x-ms-ratelimit-remaining-subscription-reads`` / ``-writes`` / ``-deletes``. The emulator knows one
principal, so its buckets are per (subscription, kind); the clock is the emulator's own (monotonic).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

READS, WRITES, DELETES = "reads", "writes", "deletes"
KINDS = (READS, WRITES, DELETES)
_KIND_OF_METHOD = {"GET": READS, "HEAD": READS, "DELETE": DELETES}


@dataclass(frozen=True)
class BucketSpec:
    capacity: int
    refill_per_second: float


# ARM's documented limits per subscription and principal (request limits and throttling, 2024 onward).
ARM_DEFAULTS: Mapping[str, BucketSpec] = {
    READS: BucketSpec(250, 25.0),
    WRITES: BucketSpec(200, 10.0),
    DELETES: BucketSpec(200, 10.0),
}


def kind_of(method: str) -> str:
    return _KIND_OF_METHOD.get(method.upper(), WRITES)


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    kind: str
    remaining: int
    retry_after: int  # whole seconds; 0 when allowed

    def headers(self) -> dict[str, str]:
        sent = {f"x-ms-ratelimit-remaining-subscription-{self.kind}": str(self.remaining)}
        if not self.allowed:
            sent["Retry-After"] = str(self.retry_after)
        return sent


class _Bucket:
    def __init__(self, spec: BucketSpec, now: float) -> None:
        self.spec = spec
        self.tokens = float(spec.capacity)
        self.last = now

    def take(self, now: float) -> tuple[bool, float]:
        elapsed = max(0.0, now - self.last)
        self.tokens = min(float(self.spec.capacity), self.tokens + elapsed * self.spec.refill_per_second)
        self.last = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True, 0.0
        return False, (1.0 - self.tokens) / self.spec.refill_per_second


class Throttle:
    """Token buckets per (subscription, kind); thread-safe; counts what it refused."""

    def __init__(
        self, limits: Mapping[str, BucketSpec] | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limits = dict(ARM_DEFAULTS if limits is None else limits)
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self.refused: dict[str, int] = dict.fromkeys(KINDS, 0)
        self.taken: dict[str, int] = dict.fromkeys(KINDS, 0)

    def take(self, subscription: str, method: str) -> Verdict | None:
        """One request's token; None when the request names no subscription or its kind is unlimited."""
        kind = kind_of(method)
        spec = self.limits.get(kind)
        if not subscription or spec is None:
            return None
        with self._lock:
            now = self._clock()
            key = (subscription.lower(), kind)
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = _Bucket(spec, now)
            allowed, wait = bucket.take(now)
            if allowed:
                self.taken[kind] += 1
            else:
                self.refused[kind] += 1
            return Verdict(allowed, kind, int(bucket.tokens), 0 if allowed else max(1, math.ceil(wait)))
