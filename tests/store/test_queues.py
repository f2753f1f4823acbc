"""The job queue: Storage Queue on Azurite (as the Functions host reads it) and the in-process queue."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoremediation.errors import InvalidInput
from autoremediation.ports import QueueMessage
from autoremediation.store.memory_queue import InProcessQueue, ManualClock
from autoremediation.store.messages import job_id_from_message, message_body
from autoremediation.store.storage_queue import StorageQueue
from tests.azurite import Azurite, unique_name


class TestMessageBody:
    def test_body_is_json_with_the_job_id(self) -> None:
        assert json.loads(message_body("job-abc")) == {"jobId": "job-abc"}
        assert job_id_from_message(message_body("job-abc")) == "job-abc"

    def test_a_bare_job_id_is_accepted(self) -> None:
        assert job_id_from_message(b" job-123 \n") == "job-123"

    @pytest.mark.parametrize("text", ["", "{}", '{"jobId": 5}', '{"jobId": "a/b"}', "[1]", "not json at all"])
    def test_unreadable_bodies_are_invalid_input(self, text: str) -> None:
        with pytest.raises(InvalidInput, match="queue message"):
            job_id_from_message(text)


@pytest.mark.azurite
class TestStorageQueue:
    @pytest.fixture
    def queue(self, azurite: Azurite) -> Iterator[StorageQueue]:
        q = StorageQueue(
            unique_name("q"), connection_string=azurite.connection_string, client_options={"retry_total": 0}
        )
        yield q
        q.close()

    @pytest.fixture
    def raw(self, azurite: Azurite, queue: StorageQueue):
        """A plain client on the same queue with no encoding policy: sees exactly what is on the wire."""
        from azure.storage.queue import QueueClient

        client = QueueClient.from_connection_string(azurite.connection_string, queue.queue_name)
        yield client
        client.close()

    def test_send_receive_delete(self, queue: StorageQueue) -> None:
        queue.send("job-1")
        queue.send("job-2")
        got = queue.receive(max_messages=10, visibility_timeout=30)
        assert sorted(m.job_id for m in got) == ["job-1", "job-2"]
        assert all(m.dequeue_count == 1 for m in got)
        for message in got:
            queue.delete(message)
        assert queue.receive(visibility_timeout=1) == []

    def test_messages_are_base64_json_as_the_functions_host_reads_them(
        self, queue: StorageQueue, raw
    ) -> None:
        queue.send("job-wire")
        [wire] = list(raw.receive_messages(visibility_timeout=30))
        assert json.loads(base64.b64decode(wire.content, validate=True)) == {"jobId": "job-wire"}

    def test_reads_plain_and_base64_messages_put_by_others(self, queue: StorageQueue, raw) -> None:
        queue.receive(visibility_timeout=1)  # makes the queue
        raw.send_message(base64.b64encode(b'{"jobId":"job-b64"}').decode())
        raw.send_message("job-typed-by-hand")
        got = queue.receive(visibility_timeout=30)
        assert sorted(m.job_id for m in got) == ["job-b64", "job-typed-by-hand"]

    def test_unreadable_message_goes_to_the_poison_queue(
        self,
        queue: StorageQueue,
        raw,
        azurite: Azurite,
    ) -> None:
        from azure.storage.queue import QueueClient

        queue.send("job-good")
        bad = base64.b64encode(b'{"nope": 1}').decode()
        raw.send_message(bad)
        got = queue.receive(visibility_timeout=30)
        assert [m.job_id for m in got] == ["job-good"]
        poison = QueueClient.from_connection_string(azurite.connection_string, f"{queue.queue_name}-poison")
        assert [m.content for m in poison.receive_messages()] == [bad]
        assert list(raw.peek_messages()) == []  # the bad one left the main queue

    def test_a_delayed_message_is_not_visible_at_once(self, queue: StorageQueue, raw) -> None:
        queue.send("job-later", delay_seconds=3600)
        queue.send("job-now")
        [now] = queue.receive(visibility_timeout=30)
        assert now.job_id == "job-now"
        queue.delete(now)
        assert queue.receive(visibility_timeout=30) == []
        # Hidden, not lost: the queue still holds it.
        assert raw.get_queue_properties().approximate_message_count == 1

    def test_a_received_message_hides_until_its_visibility_timeout(self, queue: StorageQueue) -> None:
        queue.send("job-1")
        assert len(queue.receive(visibility_timeout=3600)) == 1
        assert queue.receive(visibility_timeout=3600) == []

    def test_deleting_twice_is_harmless(self, queue: StorageQueue) -> None:
        queue.send("job-1")
        [message] = queue.receive(visibility_timeout=30)
        queue.delete(message)
        queue.delete(message)

    def test_bad_arguments_are_refused(self, queue: StorageQueue, azurite: Azurite) -> None:
        with pytest.raises(InvalidInput, match="delay"):
            queue.send("job-1", delay_seconds=8 * 24 * 3600)
        with pytest.raises(InvalidInput, match="not valid"):
            queue.send("job/1")
        with pytest.raises(InvalidInput, match="queue name"):
            StorageQueue("Bad_Name", connection_string=azurite.connection_string)
        with pytest.raises(InvalidInput, match="needs either a storage connection string"):
            StorageQueue("jobs")


class TestInProcessQueue:
    @pytest.fixture
    def clock(self) -> ManualClock:
        return ManualClock(datetime(2026, 3, 1, tzinfo=UTC))

    def test_send_order_for_messages_due_together(self, clock: ManualClock) -> None:
        queue = InProcessQueue(clock)
        for name in ("job-a", "job-b", "job-c"):
            queue.send(name)
        assert [m.job_id for m in queue.receive()] == ["job-a", "job-b", "job-c"]

    def test_delays_with_a_fake_clock(self, clock: ManualClock) -> None:
        queue = InProcessQueue(clock)
        queue.send("job-poll", delay_seconds=15)
        queue.send("job-later", delay_seconds=60)
        queue.send("job-now")
        assert [m.job_id for m in queue.receive()] == ["job-now"]
        assert queue.due_in() == 15
        clock.advance(14.5)
        assert queue.receive() == []
        assert queue.due_in() == 0.5
        clock.advance(50)
        # Both are due now: the one due first comes first.
        assert [m.job_id for m in queue.receive()] == ["job-poll", "job-later"]

    def test_received_messages_come_back_unless_deleted(self, clock: ManualClock) -> None:
        queue = InProcessQueue(clock)
        queue.send("job-a")
        queue.send("job-b")
        first = queue.receive(visibility_timeout=30)
        queue.delete(first[0])
        assert queue.receive() == []
        clock.advance(30)
        [again] = queue.receive()
        assert (again.job_id, again.dequeue_count) == ("job-b", 2)
        queue.delete(first[1])  # the old receipt no longer deletes it
        assert len(queue) == 1
        queue.delete(again)
        assert len(queue) == 0 and queue.due_in() is None

    def test_max_messages(self, clock: ManualClock) -> None:
        queue = InProcessQueue(clock)
        for i in range(5):
            queue.send(f"job-{i}")
        assert [m.job_id for m in queue.receive(max_messages=2)] == ["job-0", "job-1"]

    def test_concurrent_receivers_never_get_the_same_message(self, clock: ManualClock) -> None:
        queue = InProcessQueue(clock)
        for i in range(500):
            queue.send(f"job-{i}")
        seen: list[str] = []
        lock = threading.Lock()

        def drain() -> None:
            while batch := queue.receive(max_messages=3):
                with lock:
                    seen.extend(m.job_id for m in batch)

        threads = [threading.Thread(target=drain) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(seen) == sorted(f"job-{i}" for i in range(500))

    def test_bad_arguments_are_refused(self, clock: ManualClock) -> None:
        queue = InProcessQueue(clock)
        with pytest.raises(InvalidInput):
            queue.send("job-a", delay_seconds=-1)
        with pytest.raises(InvalidInput):
            queue.receive(max_messages=0)
        with pytest.raises(InvalidInput):
            clock.advance(-1)


class _ReferenceQueue:
    """The queue's contract said plainly: every receive looks at every message."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.messages: dict[str, list] = {}  # id -> [visible_at, seq, job_id, receipt, dequeue_count]
        self.seq = 0

    def send(self, job_id: str, delay: float) -> None:
        self.messages[f"m{self.seq}"] = [self.clock.now() + timedelta(seconds=delay), self.seq, job_id, "", 0]
        self.seq += 1

    def receive(self, max_messages: int, timeout: float) -> list[tuple[str, str, int]]:
        now = self.clock.now()
        due = sorted((m[0], m[1], key) for key, m in self.messages.items() if m[0] <= now)[:max_messages]
        out = []
        for _, _, key in due:
            m = self.messages[key]
            m[0], m[4] = now + timedelta(seconds=timeout), m[4] + 1
            out.append((key, m[2], m[4]))
        return out

    def delete(self, key: str, count: int) -> None:
        if key in self.messages and self.messages[key][4] == count:
            del self.messages[key]

    def due_in(self) -> float | None:
        if not self.messages:
            return None
        return max(0.0, (min(m[0] for m in self.messages.values()) - self.clock.now()).total_seconds())


_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("send"), st.integers(0, 40)),
        st.tuples(st.just("receive"), st.integers(1, 4), st.integers(0, 30)),
        st.tuples(st.just("delete"), st.integers(0, 60), st.booleans()),
        st.tuples(st.just("advance"), st.integers(0, 25)),
    ),
    max_size=120,
)


@settings(max_examples=150, deadline=None)
@given(_OPS)
def test_in_process_queue_keeps_the_queue_contract_through_any_sequence(ops) -> None:
    # Order (oldest due first, then send order), visibility, dequeue counts, stale receipts and the next
    # due time, checked against the plain model above after every operation.
    clock = ManualClock(datetime(2026, 3, 1, tzinfo=UTC))
    queue, model = InProcessQueue(clock), _ReferenceQueue(clock)
    received: list[tuple[QueueMessage, int]] = []  # every message handed out, with its dequeue count
    for op in ops:
        if op[0] == "send":
            queue.send(f"job-{len(model.messages)}-{op[1]}", delay_seconds=op[1])
            model.send(f"job-{len(model.messages)}-{op[1]}", op[1])
        elif op[0] == "receive":
            got = queue.receive(max_messages=op[1], visibility_timeout=op[2])
            assert [(m.id, m.job_id, m.dequeue_count) for m in got] == model.receive(op[1], op[2])
            received += [(m, m.dequeue_count) for m in got]
        elif op[0] == "delete" and received:
            message, count = received[op[1] % len(received)] if op[2] else received[-1]
            queue.delete(message)
            model.delete(message.id, count)
        else:
            clock.advance(op[1] if op[0] == "advance" else 0)
        assert queue.due_in() == model.due_in()
        assert len(queue) == len(model.messages)
