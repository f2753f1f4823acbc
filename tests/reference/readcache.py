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

from autoremediation.ports import Clock

V = TypeVar("V")


class TtlCache(Generic[V]):
    """At most ``max_entries`` values by key, each served for ``ttl`` after it was put, then read again.

    A ``ttl`` of zero (or a ``max_entries`` of zero) keeps nothing. Safe across threads.
    """

    def __init__(self, clock: Clock, ttl: timedelta, max_entries: int) -> None:
        self.clock = clock
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[datetime, V]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.ttl > timedelta(0) and self.max_entries > 0

    def get(self, key: str) -> V | None:
        """The value put under ``key`` less than ``ttl`` ago, else None (and the stale entry is dropped)."""
        if not self.enabled:
            return None
        now = self.clock.now()
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            put_at, value = entry
            if not timedelta(0) <= now - put_at < self.ttl:
                del self._entries[key]
                return None
            return value

    def put(self, key: str, value: V) -> None:
        if not self.enabled:
            return
        now = self.clock.now()
        with self._lock:
            self._entries[key] = (now, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)  # the oldest read goes first

    def drop(self, key: str) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def __len__(self) -> int:
        return len(self._entries)
