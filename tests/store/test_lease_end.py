"""A holder whose job has ended holds nothing, and its run counts for the cooldown as a recorded one.

The contract on both stores: a job that took its VM's lease for a remediation and ended without giving
it back frees the VM at its end; the end of its run is what that remediation's cooldown counts from,
exactly, whoever takes the VM after it; a job that never ran its script leaves no run; a job deleted by
retention counts as the latest it could have ended (its lease's bound).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from autoremediation import jobs
from autoremediation.jobs import Job
from autoremediation.ports import JobStore

from .conftest import T0, VM, VM2, MakeJob

R = "free-disk-space"
S = "restart-service"
COOLDOWN = timedelta(minutes=60)
TTL = 2 * 3600.0  # longer than the cooldown: the pending run's bound stays in the window


@pytest.fixture(autouse=True)
def _runs_recorded_from_the_start(store: JobStore) -> None:
    # A new deployment: the store keeps every run from its first look on (no older jobs to scan).
    store.lease_facts(VM2, R, T0, runs_since=T0)


def _stored(store: JobStore, make_job: MakeJob, key: str, remediation: str = R) -> Job:
    return store.create(make_job(key, remediation=remediation))[0]


def _move(store: JobStore, job: Job, *states: str, at: datetime) -> Job:
    for state in states:
        job = store.update(jobs.transition(store.get(job.id), state, now=at, actor="test", reason=state))
    return job


def _ran(store: JobStore, job: Job, *, took: datetime, ended: datetime, ttl: float = TTL) -> Job:
    """The job takes the VM for its remediation, runs its script and ends, without a release."""
    assert store.acquire_lease(VM, job.id, ttl, took, remediation=job.remediation)
    _move(store, job, jobs.DISPATCHING, jobs.RUNNING, at=took)
    return _move(store, job, jobs.VERIFYING, jobs.SUCCEEDED, at=ended)


def _last(store: JobStore, remediation: str, now: datetime) -> datetime | None:
    return store.lease_facts(VM, remediation, now, runs_since=now - COOLDOWN).last_run_ended_at


class TestTheHolder:
    def test_a_job_that_ended_without_a_release_frees_its_vm(
        self, store: JobStore, make_job: MakeJob
    ) -> None:
        ended = T0 + timedelta(minutes=5)
        first = _ran(store, _stored(store, make_job, "x"), took=T0, ended=ended)
        later = ended + timedelta(seconds=1)

        assert store.lease_facts(VM, R, later, runs_since=later - COOLDOWN).holder is None
        assert store.lease_holder(VM, later) is None
        nxt = _stored(store, make_job, "y")
        assert store.acquire_lease(VM, nxt.id, TTL, later, remediation=R)
        assert store.lease_holder(VM, later) == nxt.id
        assert first.id != nxt.id

    def test_a_holder_whose_job_goes_on_still_holds_the_vm(self, store: JobStore, make_job: MakeJob) -> None:
        running = _stored(store, make_job, "x")
        assert store.acquire_lease(VM, running.id, 600, T0, remediation=R)
        _move(store, running, jobs.DISPATCHING, jobs.RUNNING, at=T0)
        later = T0 + timedelta(seconds=599)

        assert store.lease_facts(VM, R, later, runs_since=later - COOLDOWN).holder == running.id
        assert store.lease_holder(VM, later) == running.id
        assert not store.acquire_lease(VM, _stored(store, make_job, "y").id, 600, later, remediation=R)

    def test_a_holder_whose_lease_expired_is_lapsed_even_while_its_job_goes_on(
        self, store: JobStore, make_job: MakeJob
    ) -> None:
        running = _stored(store, make_job, "x")
        assert store.acquire_lease(VM, running.id, 600, T0, remediation=R)
        _move(store, running, jobs.DISPATCHING, jobs.RUNNING, at=T0)
        lapsed = T0 + timedelta(seconds=600)

        assert store.lease_facts(VM, R, lapsed, runs_since=lapsed - COOLDOWN).holder is None
        assert store.acquire_lease(VM, _stored(store, make_job, "y").id, 600, lapsed, remediation=R)

    def test_a_job_that_ended_while_its_script_may_still_run_holds_its_vm_until_the_lease_expires(
        self, store: JobStore, make_job: MakeJob
    ) -> None:
        job = _stored(store, make_job, "x")
        assert store.acquire_lease(VM, job.id, 600, T0, remediation=R)
        bound = T0 + timedelta(seconds=600)
        job = _move(store, job, jobs.DISPATCHING, jobs.RUNNING, at=T0)
        ended = T0 + timedelta(minutes=1)
        marked = replace(job, run={**job.run, "leaseUntil": bound.isoformat(), "mayStillRun": True})
        store.update(jobs.transition(marked, jobs.TIMED_OUT, now=ended, actor="test", reason="stuck"))
        later = ended + timedelta(seconds=1)

        assert store.lease_facts(VM, S, later, runs_since=later - COOLDOWN).holder == job.id
        assert store.lease_holder(VM, later) == job.id
        assert not store.acquire_lease(VM, _stored(store, make_job, "y").id, 600, later, remediation=S)
        assert store.lease_holder(VM, bound) is None
        assert _last(store, R, bound) == bound  # its script may have run until then


class TestTheCooldown:
    def test_it_counts_from_the_end_of_a_run_that_left_its_lease_to_its_end(
        self, store: JobStore, make_job: MakeJob
    ) -> None:
        ended = T0 + timedelta(minutes=5)
        _ran(store, _stored(store, make_job, "x"), took=T0, ended=ended)

        assert _last(store, R, ended + COOLDOWN / 2) == ended
        after = ended + COOLDOWN + timedelta(seconds=1)
        assert _last(store, R, after) == ended  # exact: now before the window, so the next job runs
        assert _last(store, S, ended + COOLDOWN / 2) is None  # another remediation's cooldown is its own

    def test_a_job_of_another_remediation_in_between_keeps_the_pending_run(
        self, store: JobStore, make_job: MakeJob
    ) -> None:
        ended = T0 + timedelta(minutes=5)
        _ran(store, _stored(store, make_job, "x"), took=T0, ended=ended)
        other_ended = ended + timedelta(minutes=2)
        _ran(store, _stored(store, make_job, "z", S), took=ended + timedelta(minutes=1), ended=other_ended)

        now = ended + COOLDOWN / 2
        assert _last(store, R, now) == ended
        assert _last(store, S, now) == other_ended
        assert store.lease_facts(VM, R, now, runs_since=now - COOLDOWN).holder is None

    def test_the_next_take_of_the_remediation_keeps_the_run_it_replaces(
        self, store: JobStore, make_job: MakeJob
    ) -> None:
        ended = T0 + timedelta(minutes=5)
        _ran(store, _stored(store, make_job, "x"), took=T0, ended=ended)
        taken = ended + COOLDOWN + timedelta(seconds=1)
        assert _last(store, R, taken) == ended  # what the next job's guards read before taking it
        nxt = _stored(store, make_job, "y")
        assert store.acquire_lease(VM, nxt.id, TTL, taken, remediation=R)

        # The taker has not run yet: the run it replaced is still the last one.
        assert _last(store, R, taken + timedelta(seconds=1)) == ended
        store.delete_jobs(taken + timedelta(days=1))  # retention: only the lease's record is left
        assert _last(store, R, taken + timedelta(seconds=1)) == ended

    def test_a_job_that_ended_without_running_its_script_leaves_no_run(
        self, store: JobStore, make_job: MakeJob
    ) -> None:
        refused = _stored(store, make_job, "x")
        assert store.acquire_lease(VM, refused.id, TTL, T0, remediation=R)
        assert store.acquire_lease(VM, refused.id, TTL, T0 + timedelta(seconds=1), remediation=R)  # renewed
        _move(store, refused, jobs.CANCELLED, at=T0 + timedelta(seconds=2))  # after the take, before dispatch

        assert _last(store, R, T0 + timedelta(minutes=1)) is None
        assert store.lease_holder(VM, T0 + timedelta(minutes=1)) is None

    def test_a_job_still_running_has_no_past_run_yet(self, store: JobStore, make_job: MakeJob) -> None:
        earlier = T0 - timedelta(minutes=20)
        store.release_lease(VM, "job-earlier", ran=(R, earlier))
        running = _stored(store, make_job, "x")
        assert store.acquire_lease(VM, running.id, TTL, T0, remediation=R)
        _move(store, running, jobs.DISPATCHING, jobs.RUNNING, at=T0)

        facts = store.lease_facts(VM, R, T0 + timedelta(minutes=1), runs_since=T0 - COOLDOWN)
        assert facts.holder == running.id and facts.last_run_ended_at == earlier

    def test_a_pending_job_deleted_by_retention_counts_as_its_lease_bound(
        self, store: JobStore, make_job: MakeJob
    ) -> None:
        job = _stored(store, make_job, "x")
        renewed = T0 + timedelta(seconds=200)
        assert store.acquire_lease(VM, job.id, 600, T0, remediation=R)
        assert store.acquire_lease(VM, job.id, 600, renewed, remediation=R)  # the renewal moves the bound
        _move(store, job, jobs.DISPATCHING, jobs.RUNNING, at=T0)
        _move(store, job, jobs.VERIFYING, jobs.SUCCEEDED, at=renewed + timedelta(seconds=10))
        assert store.delete_jobs(renewed + timedelta(seconds=11)) == 1

        now = renewed + timedelta(seconds=601)
        assert _last(store, R, now) == renewed + timedelta(seconds=600)
        assert store.lease_holder(VM, now) is None

    def test_a_replaced_pending_job_still_going_that_never_runs_leaves_no_run(
        self, store: JobStore, make_job: MakeJob
    ) -> None:
        never = _stored(store, make_job, "x")
        assert store.acquire_lease(VM, never.id, 600, T0, remediation=R)  # and never dispatched
        lapsed = T0 + timedelta(seconds=601)
        assert _last(store, R, lapsed) is None  # what the next job's guards read: x still going
        nxt = _stored(store, make_job, "y")
        assert store.acquire_lease(VM, nxt.id, 600, lapsed, remediation=R)
        _move(store, never, jobs.CANCELLED, at=lapsed + timedelta(seconds=1))
        _move(store, nxt, jobs.CANCELLED, at=lapsed + timedelta(seconds=2))

        assert _last(store, R, lapsed + timedelta(seconds=3)) is None

    def test_a_take_replacing_a_pending_job_that_retention_deleted_keeps_its_bound(
        self, store: JobStore, make_job: MakeJob
    ) -> None:
        ended = T0 + timedelta(minutes=1)
        _ran(store, _stored(store, make_job, "x"), took=T0, ended=ended, ttl=600)
        assert store.delete_jobs(ended + timedelta(seconds=1)) == 1
        bound = T0 + timedelta(seconds=600)
        taken = bound + timedelta(seconds=1)
        assert _last(store, R, taken) == bound  # what the next job's guards read
        assert store.acquire_lease(VM, _stored(store, make_job, "y").id, 600, taken, remediation=R)

        assert _last(store, R, taken + timedelta(seconds=1)) == bound  # folded into the record

    def test_a_lapsed_jobs_release_records_its_run_and_leaves_the_new_holder(
        self, store: JobStore, make_job: MakeJob
    ) -> None:
        lapsed = _stored(store, make_job, "x")
        assert store.acquire_lease(VM, lapsed.id, 60, T0, remediation=R)
        _move(store, lapsed, jobs.DISPATCHING, jobs.RUNNING, at=T0)
        taken = T0 + timedelta(seconds=61)
        nxt = _stored(store, make_job, "y")
        assert store.acquire_lease(VM, nxt.id, TTL, taken, remediation=R)
        _move(store, nxt, jobs.DISPATCHING, jobs.RUNNING, at=taken)
        ended = T0 + timedelta(seconds=90)
        _move(store, lapsed, jobs.VERIFYING, jobs.SUCCEEDED, at=ended)

        store.release_lease(VM, lapsed.id, ran=(R, ended))

        facts = store.lease_facts(VM, R, ended, runs_since=ended - COOLDOWN)
        assert facts.holder == nxt.id and facts.last_run_ended_at == ended

    def test_the_sweep_keeps_a_pending_run_once_its_lease_expired(
        self, store: JobStore, make_job: MakeJob
    ) -> None:
        ended = T0 + timedelta(minutes=5)
        _ran(store, _stored(store, make_job, "x"), took=T0, ended=ended, ttl=600)
        expired = T0 + timedelta(seconds=601)

        store.sweep_leases(expired)

        assert _last(store, R, expired) == ended
        assert store.lease_holder(VM, expired) is None
