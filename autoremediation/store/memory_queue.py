"""An in-process queue for the CLI and the demo: the Storage Queue's behaviour, without a service.

Messages become visible at ``send`` time + delay and, once received, hide for the visibility timeout
until deleted, like on Azure. Time comes from the injected clock, so a driver with a ``ManualClock``
runs a whole remediation (with its polling delays) instantly: ``due_in()`` says how far to advance.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ..errors import InvalidInput
from ..ports import LONGEST_QUEUE_DELAY_SECONDS, Clock, QueueMessage, SystemClock
from .messages import check_delay
from .records import as_utc, check_id


class ManualClock:
    """A clock that moves only when told to: for drivers that skip waiting, and for tests."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = as_utc(start) if start is not None else datetime(2026, 1, 1, tzinfo=UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> datetime:
        if seconds < 0:
            raise InvalidInput(f"a clock cannot go back ({seconds} s)")
        with self._lock:
            self._now += timedelta(seconds=seconds)
            return self._now


@dataclass
class _Entry:
    id: str
    job_id: str
    visible_at: datetime
    seq: int
    pop_receipt: str = ""
    dequeue_count: int = 0


class InProcessQueue:
    """``ports.Queue`` in memory, thread-safe. Due messages come out oldest-due first, then in send order.

    The messages are kept in a heap by the time they become visible, so a receive or a look at the next
    due time costs a few heap steps, not a pass over every message (a campaign's workers ask both after
    every step). Each message has one heap entry (a receive takes it out and puts it back with the new
    time); a deleted message's entry is dropped when it comes to the top.
    """

    def __init__(self, clock: Clock | None = None) -> None:
        self._clock: Clock = clock or SystemClock()
        self._entries: dict[str, _Entry] = {}
        # (visible_at, seq, message id), one per message, and those of deleted messages not yet dropped.
        self._heap: list[tuple[datetime, int, str]] = []
        self._seq = itertools.count()
        self._lock = threading.Lock()

    def send(self, job_id: str, delay_seconds: float = 0) -> None:
        check_id(job_id)
        check_delay(delay_seconds)
        with self._lock:
            seq = next(self._seq)
            entry = _Entry(
                id=f"m{seq}",
                job_id=job_id,
                visible_at=self._clock.now() + timedelta(seconds=delay_seconds),
                seq=seq,
            )
            self._entries[entry.id] = entry
            self._push(entry)

    def receive(self, max_messages: int = 32, visibility_timeout: float = 300) -> list[QueueMessage]:
        if max_messages < 1:
            raise InvalidInput(f"max_messages {max_messages} must be at least 1")
        longest = LONGEST_QUEUE_DELAY_SECONDS  # as on Azure: 7 days
        if not 0 <= visibility_timeout <= longest:  # NaN too
            raise InvalidInput(f"visibility timeout {visibility_timeout} s must be between 0 and {longest} s")
        with self._lock:
            now = self._clock.now()
            hidden_until = now + timedelta(seconds=visibility_timeout)
            due: list[_Entry] = []
            while len(due) < max_messages:
                entry = self._first()
                if entry is None or entry.visible_at > now:
                    break
                heapq.heappop(self._heap)
                due.append(entry)
            received = []
            for entry in due:
                entry.visible_at = hidden_until
                entry.pop_receipt = uuid.uuid4().hex
                entry.dequeue_count += 1
                self._push(entry)
                received.append(QueueMessage(entry.id, entry.pop_receipt, entry.job_id, entry.dequeue_count))
            return received

    def delete(self, message: QueueMessage) -> None:
        """Remove a received message; a stale pop receipt (it was received again since) does nothing."""
        with self._lock:
            entry = self._entries.get(message.id)
            if entry is not None and entry.pop_receipt == message.pop_receipt:
                del self._entries[message.id]

    def due_in(self) -> float | None:
        """Seconds until the next message is visible (0 when one is due now); None when the queue is empty."""
        with self._lock:
            first = self._first()
            if first is None:
                return None
            return max(0.0, (first.visible_at - self._clock.now()).total_seconds())

    def __len__(self) -> int:
        """Messages in the queue, visible or not."""
        with self._lock:
            return len(self._entries)

    def _push(self, entry: _Entry) -> None:
        heapq.heappush(self._heap, (entry.visible_at, entry.seq, entry.id))

    def _first(self) -> _Entry | None:
        """The message that becomes visible first (its heap entry on top), deleted ones' entries dropped."""
        heap = self._heap
        while heap:
            entry = self._entries.get(heap[0][2])
            if entry is not None:
                return entry
            heapq.heappop(heap)
        return None
