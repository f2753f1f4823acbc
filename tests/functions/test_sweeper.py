"""The sweeper's chores on the SQLite store with a manual clock, and the timer that runs them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from azure.functions.timer import TimerRequest

from autoremediation import jobs
from autoremediation.errors import Transient
from autoremediation.jobs import Job
from autoremediation.runner import MAX_BACKOFF_SECONDS, Step
from autoremediation.settings import Settings
from autoremediation.store.memory_queue import InProcessQueue, ManualClock
from autoremediation.store.sqlite import SqliteJobStore
from autoremediation.sweeper import (
    FUNCTION_TIMEOUT_SECONDS,
    VISIBILITY_TIMEOUT_SECONDS,
    SweepIncomplete,
    SweepPolicy,
    sweep,
)
from tests.functions.conftest import REPO, Engine, call, function_json, vm_id
from tests.helpers.counting import CountedCalls

POLICY = SweepPolicy.from_settings(Settings(poll_seconds=15, retention_days=90))


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteJobStore]:
    made = SqliteJobStore(str(tmp_path / "jobs.db"))
    yield made
    made.close()


@pytest.fixture
def queue(clock: ManualClock) -> InProcessQueue:
    return InProcessQueue(clock)


def put(
    store: SqliteJobStore, clock: ManualClock, key: str, *path: str, vm: str = "vm-1", **extra: object
) -> Job:
    job = jobs.new_job(
        idempotency_key=key,
        remediation="free-disk-space",
        condition="disk-full",
        target=vm_id(vm),
        parameters={},
        now=clock.now(),
    )
    for state in path:
        job = jobs.transition(job, state, now=clock.now(), actor="test", reason=state)
    job = replace(job, **extra)  # type: ignore[arg-type]
    created, _ = store.create(job)
    return created


def no_advance(job_id: str) -> Step:
    raise AssertionError(f"nothing should be advanced ({job_id})")


def drained(queue: InProcessQueue) -> list[str]:
    return sorted(m.job_id for m in queue.receive())


def test_a_job_quiet_longer_than_its_state_allows_gets_a_new_message(
    store: SqliteJobStore, queue: InProcessQueue, clock: ManualClock
) -> None:
    running = put(store, clock, "a", jobs.DISPATCHING, jobs.RUNNING)
    dispatching = put(store, clock, "b", jobs.DISPATCHING, vm="vm-2")
    approved = put(store, clock, "c", jobs.AWAITING_APPROVAL, vm="vm-3", approved_by="olga")
    waiting = put(store, clock, "d", jobs.AWAITING_APPROVAL, vm="vm-4")
    finished = put(store, clock, "e", jobs.SKIPPED, vm="vm-5")

    clock.advance(POLICY.quiet_limit.total_seconds() - 1)
    assert sweep(store, queue, clock, POLICY, no_advance).requeued == ()

    clock.advance(2)
    report = sweep(store, queue, clock, POLICY, no_advance)
    assert sorted(report.requeued) == sorted([running.id, approved.id])
    assert drained(queue) == sorted([running.id, approved.id])

    # A classic run command blocks one invocation up to the function timeout: only then is it lost.
    clock.advance(POLICY.dispatch_limit.total_seconds())
    report = sweep(store, queue, clock, POLICY, no_advance)
    assert dispatching.id in report.requeued
    assert waiting.id not in report.requeued
    assert finished.id not in report.requeued


def test_a_planned_job_waiting_for_another_jobs_lease_is_left_alone(
    store: SqliteJobStore, queue: InProcessQueue, clock: ManualClock
) -> None:
    waiting = put(store, clock, "w", vm="vm-1")
    store.acquire_lease(waiting.target_key, "job-holder", 3600, clock.now())
    orphan = put(store, clock, "o", vm="vm-2")
    clock.advance(POLICY.quiet_limit.total_seconds() + 1)

    report = sweep(store, queue, clock, POLICY, no_advance)

    assert report.requeued == (orphan.id,)


def test_the_sweep_reads_a_vms_lease_only_for_a_planned_job_quiet_past_its_limit(
    store: SqliteJobStore, queue: InProcessQueue, clock: ManualClock
) -> None:
    quiet = put(store, clock, "q", vm="vm-1")
    clock.advance(POLICY.quiet_limit.total_seconds() + 1)
    put(store, clock, "fresh", vm="vm-2")  # just planned: its silence needs no explaining
    counted = CountedCalls(store)

    report = sweep(counted, queue, clock, POLICY, no_advance)  # type: ignore[arg-type]

    assert report.requeued == (quiet.id,)
    assert counted.calls["lease_holder"] == 1


def test_an_approval_that_ran_out_is_advanced_to_expired(
    engine: Engine,
) -> None:
    store, clock = engine.store, engine.clock
    deadline = clock.now() + timedelta(minutes=60)
    lapsed = put(store, clock, "x", jobs.AWAITING_APPROVAL, approval_expires_at=deadline.isoformat())
    approved = put(
        store,
        clock,
        "y",
        jobs.AWAITING_APPROVAL,
        vm="vm-2",
        approval_expires_at=deadline.isoformat(),
        approved_by="olga",
    )
    runner = engine.services.runner

    assert sweep(store, engine.queue, clock, POLICY, runner.advance).expired == ()
    clock.advance(3600)
    report = sweep(store, engine.queue, clock, POLICY, runner.advance)

    assert report.expired == (lapsed.id,)
    job = store.get(lapsed.id)
    assert job.status == jobs.EXPIRED
    assert job.history[-1].reason == "no operator approved it in time"
    assert store.get(approved.id).status == jobs.AWAITING_APPROVAL


def test_leases_and_old_jobs_are_cleaned_up(
    store: SqliteJobStore, queue: InProcessQueue, clock: ManualClock
) -> None:
    old = put(store, clock, "old", jobs.SKIPPED)
    old_open = put(store, clock, "open", vm="vm-2")
    store.acquire_lease("vm-x", "job-x", 60, clock.now())
    clock.advance(POLICY.retention.total_seconds() + 1)
    recent = put(store, clock, "new", jobs.SKIPPED, vm="vm-3")

    report = sweep(store, queue, clock, POLICY, no_advance)

    assert report.leases_deleted == 1
    assert report.jobs_deleted == 1
    assert store.lease_holder("vm-x", clock.now()) is None
    remaining = {j.id for j in store.list()}
    assert old.id not in remaining
    assert {recent.id, old_open.id} <= remaining


def test_one_failing_chore_does_not_stop_the_others(
    store: SqliteJobStore, queue: InProcessQueue, clock: ManualClock
) -> None:
    class BrokenLeases(SqliteJobStore):
        def sweep_leases(self, now: object) -> int:
            raise Transient("table storage sweep_leases: cannot reach the storage account")

    broken = BrokenLeases(store.path)
    stuck = put(broken, clock, "s", jobs.DISPATCHING, jobs.RUNNING)
    clock.advance(POLICY.quiet_limit.total_seconds() + 1)

    with pytest.raises(SweepIncomplete) as failure:
        sweep(broken, queue, clock, POLICY, no_advance)

    assert "leases" in str(failure.value)
    assert failure.value.report.requeued == (stuck.id,)
    broken.close()


def test_the_policy_follows_the_settings_and_the_host() -> None:
    policy = SweepPolicy.from_settings(Settings(poll_seconds=200, retention_days=7))
    host = json.loads((REPO / "host.json").read_text())

    assert policy.quiet_limit == timedelta(seconds=max(600, MAX_BACKOFF_SECONDS) + VISIBILITY_TIMEOUT_SECONDS)
    assert policy.retention == timedelta(days=7)
    assert host["extensions"]["queues"]["visibilityTimeout"] == "00:00:30"
    assert VISIBILITY_TIMEOUT_SECONDS == 30
    assert host["functionTimeout"] == "00:30:00"
    assert FUNCTION_TIMEOUT_SECONDS == 30 * 60


def test_the_timer_function_sweeps_every_five_minutes_not_on_startup(engine: Engine) -> None:
    binding = function_json("sweeper")["bindings"][0]
    assert binding["type"] == "timerTrigger"
    assert binding["schedule"] == "0 */5 * * * *"
    assert binding["runOnStartup"] is False

    stuck = put(engine.store, engine.clock, "t", jobs.DISPATCHING, jobs.RUNNING)
    engine.clock.advance(POLICY.quiet_limit.total_seconds() + 1)

    call("sweeper", TimerRequest(past_due=False))

    assert engine.queued() == [stuck.id]


def test_campaign_jobs_wait_for_their_campaign_which_the_sweeper_ticks(
    store: SqliteJobStore, queue: InProcessQueue, clock: ManualClock
) -> None:
    unreleased = put(store, clock, "c1", campaign_id="camp-1")
    put(store, clock, "c2", jobs.DISPATCHING, jobs.RUNNING, vm="vm-2", campaign_id="camp-2")
    put(store, clock, "c3", jobs.SKIPPED, vm="vm-3", campaign_id="camp-done")
    clock.advance(POLICY.quiet_limit.total_seconds() + 1)
    ticked: list[str] = []

    report = sweep(store, queue, clock, POLICY, no_advance, tick=ticked.append)

    assert unreleased.id not in report.requeued
    assert ticked == ["camp-1", "camp-2"]
    assert report.campaigns == ("camp-1", "camp-2")


def test_a_failing_campaign_is_reported_and_the_next_is_still_ticked(
    store: SqliteJobStore, queue: InProcessQueue, clock: ManualClock
) -> None:
    orphan = put(store, clock, "o1", campaign_id="camp-0-gone")
    put(store, clock, "b1", vm="vm-2", campaign_id="camp-1-broken")
    put(store, clock, "r1", vm="vm-3", campaign_id="camp-2-real")
    for campaign_id in ("camp-1-broken", "camp-2-real"):
        store.create_campaign({"id": campaign_id, "status": "running"})
    ticked: list[str] = []

    def tick(campaign_id: str) -> None:
        store.get_campaign(campaign_id)  # what a real tick reads first
        if campaign_id == "camp-1-broken":
            raise Transient("table storage get_campaign: cannot reach the storage account")
        ticked.append(campaign_id)

    with pytest.raises(SweepIncomplete) as failure:
        sweep(store, queue, clock, POLICY, no_advance, tick=tick)

    report = failure.value.report
    assert ticked == ["camp-2-real"]
    assert report.campaigns == ("camp-2-real",)
    assert report.orphans_cancelled == (orphan.id,)
    assert report.to_dict()["orphansCancelled"] == [orphan.id]
    assert len(report.errors) == 1 and "camp-1-broken" in report.errors[0]
    assert store.get(orphan.id).status == jobs.CANCELLED
    # The orphan is dealt with once: the next sweep has only the broken campaign to complain about.
    with pytest.raises(SweepIncomplete) as again:
        sweep(store, queue, clock, POLICY, no_advance, tick=tick)
    assert again.value.report.orphans_cancelled == ()
