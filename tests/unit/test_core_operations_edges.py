"""Operator actions at their edges: the approval window boundary, the record they leave, lost swaps."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from autoremediation import jobs, operations
from autoremediation.errors import ConcurrencyConflict, InvalidTransition
from autoremediation.jobs import Job
from autoremediation.store.memory_queue import InProcessQueue, ManualClock
from autoremediation.store.sqlite import SqliteJobStore
from tests.helpers.fakes import vm_id


class ConflictingStore:
    """The real store, but the first ``conflicts`` updates lose the compare-and-swap to another writer."""

    def __init__(self, inner: SqliteJobStore, conflicts: int) -> None:
        self.inner = inner
        self.conflicts = conflicts

    def update(self, job: Job) -> Job:
        if self.conflicts > 0:
            self.conflicts -= 1
            raise ConcurrencyConflict(f"job {job.id}: changed by another writer")
        return self.inner.update(job)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class Desk:
    def __init__(self, tmp_path: Path) -> None:
        self.clock = ManualClock()
        self.store = SqliteJobStore(str(tmp_path / "jobs.db"))
        self.queue = InProcessQueue(self.clock)

    def waiting(self, *, status: str = jobs.AWAITING_APPROVAL, ttl_minutes: float = 60) -> Job:
        now = self.clock.now()
        job, _ = self.store.create(
            jobs.new_job(
                idempotency_key="manual|req-1",
                remediation="restore-management-access",
                condition="nsg-lockout",
                target=vm_id("vm1"),
                parameters={},
                now=now,
                actor="alice",
            )
        )
        if status == jobs.PLANNED:
            return job
        return self.store.update(
            jobs.transition(
                job,
                status,
                now=now,
                actor="worker",
                reason="risk high",
                approval_expires_at=(now + timedelta(minutes=ttl_minutes)).isoformat(),
            )
        )

    def queued(self) -> list[str]:
        return [m.job_id for m in self.queue.receive(max_messages=32)]


@pytest.fixture
def desk(tmp_path: Path) -> Desk:
    return Desk(tmp_path)


def test_an_approval_at_the_very_moment_the_window_closes_is_refused(desk: Desk) -> None:
    job = desk.waiting(ttl_minutes=10)
    desk.clock.advance(600)
    with pytest.raises(InvalidTransition, match="the approval window closed at"):
        operations.approve(desk.store, desk.queue, desk.clock, job.id, actor="bob")
    assert desk.queued() == []


def test_an_approval_just_before_the_window_closes_is_recorded_and_wakes_the_worker(desk: Desk) -> None:
    job = desk.waiting(ttl_minutes=10)
    desk.clock.advance(599)
    saved = operations.approve(desk.store, desk.queue, desk.clock, job.id, actor="bob")
    assert saved.approved_by == "bob"
    assert saved.notes[-1].endswith(" approved by bob")
    assert desk.queued() == [job.id]


def test_an_approval_reason_is_kept_on_the_record(desk: Desk) -> None:
    job = desk.waiting()
    saved = operations.approve(desk.store, desk.queue, desk.clock, job.id, actor="bob", reason="ticket 42")
    assert saved.notes[-1].endswith(" approved by bob: ticket 42")


def test_approving_a_job_that_is_not_waiting_names_its_state(desk: Desk) -> None:
    job = desk.waiting(status=jobs.PLANNED)
    with pytest.raises(InvalidTransition) as caught:
        operations.approve(desk.store, desk.queue, desk.clock, job.id, actor="bob")
    assert str(caught.value) == f"job {job.id} is planned, not awaiting approval"


def test_a_lost_swap_while_approving_is_retried(desk: Desk) -> None:
    job = desk.waiting()
    store = ConflictingStore(desk.store, conflicts=2)
    assert operations.approve(store, desk.queue, desk.clock, job.id, actor="bob").approved_by == "bob"
    assert desk.queued() == [job.id]


def test_approval_gives_up_naming_the_job_when_every_swap_is_lost(desk: Desk) -> None:
    job = desk.waiting()
    store = ConflictingStore(desk.store, conflicts=100)
    with pytest.raises(ConcurrencyConflict) as caught:
        operations.approve(store, desk.queue, desk.clock, job.id, actor="bob")
    assert str(caught.value) == f"job {job.id}: could not record the approval"
    assert desk.queued() == []


def test_a_rejection_cancels_the_job_on_record_with_who_and_why(desk: Desk) -> None:
    job = desk.waiting()
    saved = operations.reject(desk.store, desk.clock, job.id, actor="bob")
    assert saved.status == jobs.CANCELLED
    assert (saved.history[-1].actor, saved.history[-1].reason) == ("bob", "rejected by bob")
    with pytest.raises(InvalidTransition) as caught:
        operations.reject(desk.store, desk.clock, job.id, actor="bob")
    assert str(caught.value) == f"job {job.id} is cancelled, not awaiting approval"


def test_a_rejection_reason_is_kept_and_a_lost_swap_is_retried(desk: Desk) -> None:
    job = desk.waiting()
    store = ConflictingStore(desk.store, conflicts=1)
    saved = operations.reject(store, desk.clock, job.id, actor="bob", reason="not now")
    assert saved.history[-1].reason == "rejected by bob: not now"


def test_rejection_gives_up_naming_the_job_when_every_swap_is_lost(desk: Desk) -> None:
    job = desk.waiting()
    with pytest.raises(ConcurrencyConflict) as caught:
        operations.reject(ConflictingStore(desk.store, 100), desk.clock, job.id, actor="bob")
    assert str(caught.value) == f"job {job.id}: could not record the rejection"


def test_a_note_moves_the_jobs_updated_time(desk: Desk) -> None:
    job = desk.waiting()
    later = desk.clock.advance(90)
    noted = jobs.note(job, "the alert resolved", now=later)
    assert noted.updated_at == later.isoformat()
    assert noted.notes[-1] == f"{later.isoformat()} the alert resolved"
    assert noted.status == job.status
