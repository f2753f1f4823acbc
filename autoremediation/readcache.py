"""A short, bounded memory of Azure reads for one process: what was read, when, forgotten after a TTL.

Used by provenance (``AlertGate``) for the reads that would otherwise be repeated for every alert:
the alert rule (changes rarely), and the alert itself for a duplicate delivery. Time comes from the
engine's clock, so tests move it instead of sleeping. A clock that goes back makes every entry stale.

Pure: no I/O, no Azure SDK.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from datetime import datetime, timedelta
from typing import Generic, TypeVar

from .ports import Clock

V = TypeVar("V")
_NO_TIME = timedelta(0)


class TtlCache(Generic[V]):
    """At most ``max_entries`` values by key, each served for ``ttl`` after it was put, then read again.

    A ``ttl`` of zero (or a ``max_entries`` of zero) keeps nothing. Safe across threads.
    """

    def __init__(self, clock: Clock, ttl: timedelta, max_entries: int) -> None:
        self.clock = clock
        self._ttl = ttl
        self._max_entries = max_entries
        self._entries: OrderedDict[str, tuple[datetime, V]] = OrderedDict()
        self._lock = threading.Lock()
        # Asked on every read of every alert: a timedelta comparison worked out once, not per call.
        self._enabled = ttl > _NO_TIME and max_entries > 0

    # Read-only: ``enabled`` is worked out from them once.
    @property
    def ttl(self) -> timedelta:
        return self._ttl

    @property
    def max_entries(self) -> int:
        return self._max_entries

    @property
    def enabled(self) -> bool:
        return self._enabled

    def get(self, key: str) -> V | None:
        """The value put under ``key`` less than ``ttl`` ago, else None (and the stale entry is dropped)."""
        if not self._enabled:
            return None
        now = self.clock.now()
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            put_at, value = entry
            if not _NO_TIME <= now - put_at < self._ttl:
                del self._entries[key]
                return None
            return value

    def put(self, key: str, value: V) -> None:
        if not self._enabled:
            return
        now = self.clock.now()
        with self._lock:
            self._entries[key] = (now, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)  # the oldest read goes first

    def drop(self, key: str) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def __len__(self) -> int:
        return len(self._entries)
