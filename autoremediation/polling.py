"""When to look at a run command again: soon for short scripts, rarely for long ones."""

from __future__ import annotations

import math
import threading
from collections import deque

# The estimate is already the time by which nine runs in ten had their result, counted from the PUT's
# answer (after the run may have started): the margin only covers the skew between this app's clock and
# Azure's. Every link of a campaign's chain waits it once (2 % of a 2 s run was 0.8 s of a 20-wave campaign).
FIRST_LOOK_MARGIN = 1.005
QUANTILE = 0.9  # the first look waits for this share of recent runs to have ended


def next_poll_delay(polls: int, base: float, expected: float | None, *, elapsed: float = 0.0) -> float:
    """How long to wait before poll number ``polls + 1`` of a run command.

    With an expected time from the PUT to the result (what most recent runs of the remediation took),
    the first poll lands just after it (0.5 % later: one poll usually finds the run done, and a slot of a
    campaign is not held past the run's end), then polls tighten to ``base / 4`` so a run that ends
    a little late is seen soon; without one, polls back off from ``base / 4`` to ``base`` (short scripts
    finish fast; long ones do not need a GET every few seconds), doubling every second poll. Never below
    0.25 s or above ``base``, except the first wait.

    ``elapsed``: the seconds already gone since the dispatch the estimate counts from (the PUT's answer,
    the write after it). The first look is due that much sooner: it lands after the run's expected end,
    not after the expected end plus the dispatch's own time.
    """
    if base <= 0:
        return 0.0
    floor = min(base, 0.25)
    if expected is not None and expected > 0:
        if polls <= 0:
            return max(0.0, max(floor, expected * FIRST_LOOK_MARGIN) - max(elapsed, 0.0))
        return max(floor, base / 4)
    # No estimate yet (a cold worker): the interval doubles every second poll, so a short script is
    # seen within a quarter base of its end while a long one still costs a poll per ``base`` soon.
    return max(floor, min(base, base / 4 * 2 ** (max(polls, 0) // 2)))


class RunDurations:
    """Recent run times per remediation, as this process saw them: the estimate ``next_poll_delay`` uses.

    Kept in memory on purpose: a warm worker learns in a few runs, and a cold one simply backs off.
    """

    def __init__(self, keep: int = 20, minimum_samples: int = 3) -> None:
        self._runs: dict[str, deque[float]] = {}
        self._keep = keep
        self._minimum = minimum_samples
        self._lock = threading.Lock()

    def record(self, remediation: str, seconds: float) -> None:
        if seconds < 0:
            return
        with self._lock:
            self._runs.setdefault(remediation, deque(maxlen=self._keep)).append(seconds)

    def expected(self, remediation: str) -> float | None:
        """The time by which nine in ten recent runs had their result (nearest rank), or None while
        fewer than ``minimum_samples`` were seen. A median would send half the first looks too early,
        each costing another poll (an ARM read, a write, a message) and a slot held a quarter base
        longer; the few runs that end well before it lose less."""
        with self._lock:
            runs = sorted(self._runs.get(remediation, ()))
        if len(runs) < self._minimum:
            return None
        return runs[max(0, math.ceil(QUANTILE * len(runs)) - 1)]
