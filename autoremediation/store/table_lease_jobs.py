"""What the Table Storage job store's leases know of the jobs they name (``table_leases``).

A lease names jobs by id and by the lease bound each set (its holder, its remediations' pending runs).
Whether such a job still holds its VM, and when its run ended, comes from one point read of the job,
which the store keeps: an end for good (keyed on the bound too: a job id comes back once retention
deleted its job, ids coming from idempotency keys that an operator's request may choose, and a new job
of an old id writes a bound of its own when it takes a lease), and a job still going for
``LIVE_REMEMBERED_SECONDS`` when the only question is whether it holds its VM.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from ..jobs import Job
from ..verification import may_still_run, run_record
from .records import time_key
from .table_lease_state import GONE, LIVE, Ended, Found, Seen

# How many ended jobs, and jobs read still going, a store remembers: enough for the VMs a busy worker
# has in flight, small enough to be nothing in memory.
REMEMBERED = 8192
# How long a job this store read still going counts as still going without another read, when the only
# question is whether it holds its VM (the default poll interval: jobs waiting for the same VM, and the
# sweep, share a read; a holder's end is seen at most this much later, a delay and never a second run).
LIVE_REMEMBERED_SECONDS = 15.0


def frees(found: Found | None) -> bool:
    """Whether a live lease's holder, as found, holds nothing: its job ended, and its script cannot
    still run (``verification.may_still_run``)."""
    return isinstance(found, Ended) and not found.holds


class LeaseJobs:
    """The jobs a store's leases name, as far as leases care; ``job`` is the store's point read of one
    job (None when there is none)."""

    def __init__(self, job: Callable[[str], Job | None]) -> None:
        self._job = job
        self._lock = threading.Lock()
        # (job id, lease bound) -> how it ended: an end is for good.
        self._ended: OrderedDict[Seen, Ended] = OrderedDict()
        # (job id, lease bound) -> when this store last read that job still going.
        self._live: OrderedDict[Seen, float] = OrderedDict()

    def known(self, job: Seen, looked: dict[Seen, Found]) -> Found | None:
        """What this call (``looked``) or this store already knows of the job that set that bound (no
        request); None when nothing."""
        if job in looked:
            return looked[job]
        with self._lock:
            return self._ended.get(job)

    def look(self, job: Seen, looked: dict[Seen, Found], *, lately: bool = False) -> Found:
        """The job that set that lease bound: ended (with its run), live or gone. Read at most once per
        call (``looked``), and not at all once this store saw it ended. ``lately``: a job this store read
        still going in the last ``LIVE_REMEMBERED_SECONDS`` counts as still going with no read, and is
        not put in ``looked``, so no take folds on that answer."""
        found = self.known(job, looked)
        if found is None and lately and self._live_lately(job):
            return LIVE
        if found is None:
            stored = self._job(job[0])
            if stored is None:
                found = GONE
            elif not stored.terminal:
                found = LIVE
                self._keep(self._live, job, time.monotonic())
            else:
                ran = run_record(stored)
                found = Ended(time_key(ran[1]) if ran else None, may_still_run(stored))
                self._keep(self._ended, job, found)
        looked[job] = found
        return found

    def _live_lately(self, job: Seen) -> bool:
        with self._lock:
            read_at = self._live.get(job)
        return read_at is not None and time.monotonic() - read_at < LIVE_REMEMBERED_SECONDS

    def _keep(self, memory: OrderedDict[Seen, Any], job: Seen, value: object) -> None:
        with self._lock:
            memory[job] = value
            memory.move_to_end(job)
            while len(memory) > REMEMBERED:
                memory.popitem(last=False)
