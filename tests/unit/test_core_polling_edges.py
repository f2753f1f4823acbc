"""Poll timing at its boundaries: the floor, the first look after the expected run time, the back-off."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from autoremediation.polling import RunDurations, next_poll_delay


@pytest.mark.parametrize(
    ("polls", "base", "expected", "delay"),
    [
        (0, 0, 10.0, 0.0),  # polling switched off: never wait, whatever the estimate
        (0, 1, None, 0.25),  # a one-second base still polls, starting at a quarter of it
        (1, 10, None, 2.5),  # back-off doubles every second poll...
        (2, 10, None, 5.0),
        (3, 10, None, 5.0),
        (4, 10, None, 10.0),  # ...up to the base
        (9, 10, None, 10.0),
        (1, 0.5, 10.0, 0.25),  # never below a quarter second
        (0, 10, 0.0, 2.5),  # no usable estimate: plain back-off
        (0, 10, 0.5, 0.5025),  # a short estimate: first look 0.5 % after it
        (1, 10, 60.0, 2.5),  # after the first look: tight polls at base / 4
        (5, 10, 60.0, 2.5),
    ],
)
def test_next_poll_delay(polls: int, base: float, expected: float | None, delay: float) -> None:
    assert next_poll_delay(polls, base, expected) == pytest.approx(delay)


def test_quick_runs_count_towards_the_estimate() -> None:
    durations = RunDurations(minimum_samples=3)
    for seconds in (0.0, 0.0, 0.5):
        durations.record("restart-service", seconds)
    assert durations.expected("restart-service") == 0.5


def test_a_negative_duration_is_ignored() -> None:
    durations = RunDurations(minimum_samples=1)
    durations.record("x", -3)
    assert durations.expected("x") is None


def test_the_estimate_follows_the_recent_runs_only() -> None:
    durations = RunDurations(keep=3, minimum_samples=3)
    for seconds in (1, 1, 1, 50, 50, 50):
        durations.record("free-disk-space", seconds)
    assert durations.expected("free-disk-space") == 50


def _job_dispatched_at(stamp: str | None) -> Any:
    from autoremediation import jobs

    job = jobs.new_job(
        idempotency_key="k",
        remediation="free-disk-space",
        condition="disk-full",
        target="/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/virtualMachines/vm",
        parameters={},
        now=datetime(2026, 1, 1, tzinfo=UTC),
        actor="t",
    )
    return replace(job, run={"dispatchedAt": stamp} if stamp else {})


def test_the_first_look_learns_the_time_from_the_put_to_the_end() -> None:
    from autoremediation.collect import result_latency

    ended = datetime(2026, 1, 1, 0, 0, 40, tzinfo=UTC)
    # The agent took the run up 8 s after the PUT and ran it for 12 s: the first look waits 20 s.
    assert result_latency(_job_dispatched_at("2026-01-01T00:00:20+00:00"), 12.0, ended, 600) == 20.0
    # Azure's clock a little behind this app's: the span is never shorter than the script's own run.
    assert result_latency(_job_dispatched_at("2026-01-01T00:00:35+00:00"), 12.0, ended, 600) == 12.0
    # No record of the PUT (a job dispatched by an older version): the run time alone.
    assert result_latency(_job_dispatched_at(None), 12.0, ended, 600) == 12.0
    # A span no run could take (longer than the timeout and its grace: clocks that disagree by days):
    # the run time alone, not a first look days away.
    assert result_latency(_job_dispatched_at("2025-12-01T00:00:00+00:00"), 12.0, ended, 600) == 12.0
    assert result_latency(_job_dispatched_at("2026-01-01T00:00:00+00:00"), 12.0, ended, 40) == 40.0
    assert result_latency(_job_dispatched_at("2026-01-01T00:00:00+00:00"), 12.0, ended, 39.9) == 12.0
    # Azure's own start and end a day apart: no more than the longest a run may take either.
    assert result_latency(_job_dispatched_at("2026-01-01T00:00:00+00:00"), 86400.0, ended, 600) == 600
