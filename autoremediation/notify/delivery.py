"""Posting a notice to its channels: every channel at once, each with bounded retries, all within a budget.

A notification must never hold up or fail a job: delivery runs after the job's write, each channel on
its own daemon thread, and the caller waits at most ``budget`` seconds in total, whatever the receivers
do (refuse, fail, or accept the connection and never answer). Transient answers (connection errors,
408, 429, 5xx) are retried with exponential back-off (``Retry-After`` honoured, capped by what is left
of the budget); other 4xx answers are not retried. Errors are logged with the channel's host only.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .channels import Channel
from .messages import Notice, body

log = logging.getLogger("autoremediation.notify")
MAX_ATTEMPTS = 4
FIRST_BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 4.0
_RETRYABLE = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class Delivery:
    channel: str  # Channel.shown: never the full URL
    delivered: bool
    attempts: int
    detail: str


def _retry_after(error: urllib.error.HTTPError) -> float | None:
    raw = error.headers.get("Retry-After") if error.headers else None
    try:
        return max(float(raw), 0.0) if raw is not None else None
    except ValueError:
        return None


def post(
    channel: Channel,
    payload: bytes,
    deadline: float,
    *,
    clock: Callable[[], float] = time.monotonic,
    wait: Callable[[float], None] = time.sleep,
) -> Delivery:
    """POST ``payload`` until it is accepted, the attempts run out, or ``deadline`` (monotonic) passes."""
    detail = "no attempt: no time left"
    attempts = 0
    backoff = FIRST_BACKOFF_SECONDS
    while attempts < MAX_ATTEMPTS:
        remaining = deadline - clock()
        if remaining <= 0.05:
            break
        attempts += 1
        request = urllib.request.Request(  # noqa: S310 - channels.parse_channel admits http(s) only
            channel.url,
            data=payload,
            method="POST",
            headers={"Content-Type": "application/json", "User-Agent": "autoremediation-notify"},
        )
        delay = backoff
        try:
            with urllib.request.urlopen(request, timeout=remaining) as response:  # noqa: S310
                response.read(65536)
                return Delivery(channel.shown, True, attempts, f"HTTP {response.status}")
        except urllib.error.HTTPError as error:
            detail = f"HTTP {error.code}"
            if error.code not in _RETRYABLE:
                break
            delay = max(_retry_after(error) or 0.0, backoff)
        except (OSError, ValueError) as error:  # refused, reset, timed out, bad answer
            detail = f"{type(error).__name__}: {_without_url(str(error), channel.url)}"
        backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
        if attempts < MAX_ATTEMPTS:
            wait(max(0.0, min(delay, deadline - clock())))
    return Delivery(channel.shown, False, attempts, detail)


def _untraced() -> contextlib.AbstractContextManager[object]:
    """No HTTP client span for a webhook call: its URL is a secret (when OpenTelemetry is installed)."""
    try:
        from opentelemetry.instrumentation.utils import suppress_http_instrumentation
    except ImportError:
        return contextlib.nullcontext()
    return suppress_http_instrumentation()


def _without_url(text: str, url: str) -> str:
    return text.replace(url, "<webhook URL>")


def deliver(channels: Sequence[Channel], notice: Notice, budget: float) -> list[Delivery]:
    """Post ``notice`` to every channel in parallel; return within ``budget`` seconds whatever happens."""
    deadline = time.monotonic() + budget
    results: list[Delivery | None] = [None] * len(channels)

    def send(index: int, channel: Channel) -> None:
        try:
            payload = json.dumps(body(channel.format, notice)).encode("utf-8")
            with _untraced():
                results[index] = post(channel, payload, deadline)
        except Exception as error:  # a bug here must not reach the job
            results[index] = Delivery(channel.shown, False, 0, f"{type(error).__name__}")

    threads = [
        threading.Thread(target=send, args=(i, c), name=f"notify-{i}", daemon=True)
        for i, c in enumerate(channels)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()) + 0.1)
    done = [
        result if result is not None else Delivery(channel.shown, False, 0, "budget spent before an answer")
        for channel, result in zip(channels, results, strict=True)
    ]
    for result in done:
        if result.delivered:
            log.info(
                "notified %s (%s): %s after %d attempt(s)",
                result.channel,
                notice.kind,
                result.detail,
                result.attempts,
            )
        else:
            log.warning(
                "could not notify %s (%s) for job %s: %s after %d attempt(s)",
                result.channel,
                notice.kind,
                notice.job.get("id"),
                result.detail,
                result.attempts,
            )
    return done
