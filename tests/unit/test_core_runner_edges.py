"""Runner edges: approval expiry at the boundary, back-off arithmetic, giving up on a poison message."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from autoremediation import jobs
from autoremediation.catalog import Catalog
from autoremediation.catalog_load import load_catalog
from autoremediation.errors import ConcurrencyConflict, InvalidInput, Permanent, Transient
from autoremediation.jobs import Job, Transition
from autoremediation.ports import RunRequest, RunStatus
from autoremediation.runner import MAX_RETRIES, Runner
from autoremediation.settings import Settings
from autoremediation.store.memory_queue import ManualClock
from autoremediation.store.sqlite import SqliteJobStore
from tests.helpers.catalogs import make_catalog
from tests.helpers.fakes import FakeCompute, vm_facts, vm_id


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


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    return load_catalog(make_catalog(tmp_path_factory.mktemp("catalog")))


class Bench:
    def __init__(self, tmp_path: Path, catalog: Catalog, **settings: Any) -> None:
        self.catalog = catalog
        self.clock = ManualClock()
        self.store = SqliteJobStore(str(tmp_path / "jobs.db"))
        self.compute = FakeCompute()
        self.compute.add(vm_facts("vm1"))
        self.settings = replace(Settings(), **{"poll_seconds": 10, **settings})
        self.seen: list[tuple[str, Transition]] = []
        self.runner = self.runner_on(self.store)

    def runner_on(self, store: Any, control_plane: dict[str, Any] | None = None) -> Runner:
        return Runner(
            catalog=self.catalog,
            store=store,
            compute=self.compute,
            clock=self.clock,
            settings=self.settings,
            control_plane=control_plane,
            on_transition=lambda job, t: self.seen.append((job.status, t)),
        )

    def job(
        self, status: str = jobs.PLANNED, remediation: str = "free-disk-space", key: str = "", **changes: Any
    ) -> Job:
        now = self.clock.now()
        job, _ = self.store.create(
            jobs.new_job(
                idempotency_key=key or f"manual|{remediation}",
                remediation=remediation,
                condition="disk-full",
                target=vm_id("vm1"),
                parameters={},
                now=now,
            )
        )
        path = {
            jobs.PLANNED: [],
            jobs.AWAITING_APPROVAL: [jobs.AWAITING_APPROVAL],
            jobs.RUNNING: [jobs.DISPATCHING, jobs.RUNNING],
        }[status]
        for step in path:
            job = jobs.transition(job, step, now=now, actor="worker", reason="test")
        return self.store.update(replace(job, **changes))


@pytest.fixture
def bench(tmp_path: Path, catalog: Catalog) -> Bench:
    return Bench(tmp_path, catalog)


def test_an_unapproved_job_expires_exactly_at_its_deadline(bench: Bench) -> None:
    deadline = bench.clock.now() + timedelta(minutes=5)
    job = bench.job(jobs.AWAITING_APPROVAL, approval_expires_at=deadline.isoformat())
    bench.clock.advance(299)
    early = bench.runner.advance(job.id)
    assert (early.job.status, early.requeue_after, early.note) == (
        jobs.AWAITING_APPROVAL,
        None,
        "waiting for an operator",
    )
    bench.clock.advance(1)
    step = bench.runner.advance(job.id)
    assert step.job.status == jobs.EXPIRED
    last = step.job.history[-1]
    assert (last.actor, last.reason) == ("sweeper", "no operator approved it in time")


def test_a_job_without_an_approval_deadline_waits(bench: Bench) -> None:
    job = bench.job(jobs.AWAITING_APPROVAL)
    step = bench.runner.advance(job.id)
    assert (step.job.id, step.job.status, step.note) == (
        job.id,
        jobs.AWAITING_APPROVAL,
        "waiting for an operator",
    )


def test_a_transient_error_backs_off_from_at_least_one_second_and_is_on_record(
    tmp_path: Path, catalog: Catalog
) -> None:
    bench = Bench(tmp_path, catalog, poll_seconds=0.5)
    job = bench.job()
    bench.compute.errors["get_vm"] = [Transient("ARM said 503")]
    bench.clock.advance(7)
    step = bench.runner.advance(job.id)
    assert (step.requeue_after, step.note) == (1.0, "retry 1 in 1s: ARM said 503")
    saved = bench.store.get(job.id)
    assert saved.outcome["lastError"] == "Transient: ARM said 503"
    assert saved.updated_at == bench.clock.now().isoformat()
    assert saved.attempts == 1


def test_an_approved_job_that_runs_out_of_retries_expires_rather_than_fails(bench: Bench) -> None:
    job = bench.job(jobs.AWAITING_APPROVAL, approved_by="bob", attempts=MAX_RETRIES)
    bench.compute.errors["get_vm"] = [Transient("ARM said 503")]
    step = bench.runner.advance(job.id)
    assert step.job.status == jobs.EXPIRED
    assert step.job.history[-1].reason == f"gave up after {MAX_RETRIES} retries: ARM said 503"


def test_giving_up_on_a_running_job_stops_the_run_and_reports_the_failure(bench: Bench) -> None:
    job = bench.job(jobs.RUNNING, run={"name": "remediate-x", "os": "linux"})
    ended = bench.runner.give_up(job.id, "the queue gave up after 5 deliveries")
    assert ended.status == jobs.FAILED
    last = ended.history[-1]
    assert last.actor == "queue"
    assert last.reason == (
        "the queue gave up after 5 deliveries; the run command was stopped, its outcome is unknown"
    )
    assert bench.compute.cancelled == ["remediate-x"]
    assert bench.seen == [(jobs.FAILED, last)]


def test_giving_up_on_a_job_awaiting_approval_expires_it(bench: Bench) -> None:
    job = bench.job(jobs.AWAITING_APPROVAL)
    ended = bench.runner.give_up(job.id, "poison")
    assert (ended.status, ended.history[-1].reason, ended.history[-1].actor) == (
        jobs.EXPIRED,
        "poison",
        "queue",
    )


def test_giving_up_survives_four_lost_swaps(bench: Bench) -> None:
    job = bench.job()
    runner = bench.runner_on(ConflictingStore(bench.store, conflicts=4))
    assert runner.give_up(job.id, "poison").status == jobs.FAILED


def test_giving_up_names_the_job_after_five_lost_swaps(bench: Bench) -> None:
    job = bench.job()
    runner = bench.runner_on(ConflictingStore(bench.store, conflicts=5))
    with pytest.raises(ConcurrencyConflict) as caught:
        runner.give_up(job.id, "poison")
    assert str(caught.value) == f"job {job.id}: could not record the failure"
    assert bench.store.get(job.id).status == jobs.PLANNED


def running(bench: Bench, outcome: Any = None, polls_until_done: int = 2) -> Job:
    """A job taken through planned and dispatching by the runner itself, its run now in progress."""
    if outcome is not None:
        bench.compute.outcome = outcome
    bench.compute.polls_until_done = polls_until_done
    job = bench.job()
    bench.runner.advance(job.id)
    step = bench.runner.advance(job.id)
    assert step.job.status == jobs.RUNNING
    return step.job


def ended(state: str, *, ended_at: str = "2026-01-01T00:00:30.123456+00:00", **kw: Any) -> Any:
    def outcome(request: RunRequest) -> RunStatus:
        return RunStatus(
            state=state,  # type: ignore[arg-type]
            exit_code=kw.get("exit_code", 0),
            output="out-tail",
            error="err-tail",
            result=kw.get("result", {"status": "fixed", "after": {"freePercent": 50}}),
            started_at="2026-01-01T00:00:00+00:00",
            ended_at=ended_at,
        )

    return outcome


def test_a_poll_that_finds_the_run_still_going_is_recorded_and_backs_off(bench: Bench) -> None:
    job = running(bench)
    bench.clock.advance(40)
    step = bench.runner.advance(job.id)
    assert step.job.status == jobs.RUNNING
    assert (step.job.run["polls"], step.job.run["lastPolledAt"]) == (1, bench.clock.now().isoformat())
    assert step.job.updated_at == bench.clock.now().isoformat()
    assert step.requeue_after == 2.5  # poll 2 of a remediation with no estimate yet: still a quarter base


def test_a_run_that_disappeared_fails_the_job(bench: Bench) -> None:
    job = running(bench)
    bench.compute.cancel_run(job.target, job.run["name"])
    step = bench.runner.advance(job.id)
    assert (step.job.status, step.job.history[-1].reason) == (
        jobs.FAILED,
        "the run command disappeared before it reported a result",
    )


def test_a_failed_poll_is_retried_later(bench: Bench) -> None:
    job = running(bench)
    bench.compute.errors["get_run"] = [Transient("ARM said 500")]
    step = bench.runner.advance(job.id)
    assert step.job.status == jobs.RUNNING
    assert (step.job.attempts, step.job.outcome["lastError"]) == (1, "Transient: ARM said 500")
    assert step.requeue_after == 10.0


@pytest.mark.parametrize(
    ("state", "status", "reason"),
    [
        ("timed-out", jobs.TIMED_OUT, "the run command timed out on the VM"),
        ("canceled", jobs.CANCELLED, "the run command was canceled"),
    ],
)
def test_a_run_that_ended_without_finishing_keeps_what_it_said(
    bench: Bench, state: str, status: str, reason: str
) -> None:
    job = running(bench, ended(state), polls_until_done=1)
    step = bench.runner.advance(job.id)
    assert (step.job.status, step.job.history[-1].reason, step.job.history[-1].actor) == (
        status,
        reason,
        "worker",
    )
    outcome = step.job.outcome
    assert (outcome["executionState"], outcome["outputTail"], outcome["errorTail"]) == (
        state,
        "out-tail",
        "err-tail",
    )
    assert (outcome["runStartedAt"], outcome["runEndedAt"]) == (
        "2026-01-01T00:00:00+00:00",
        "2026-01-01T00:00:30.123456+00:00",
    )
    assert outcome["runSeconds"] == 30.123
    # Only a run that succeeded teaches the runner how long this remediation takes.
    assert bench.runner.durations.expected("free-disk-space") is None


def test_a_finished_run_is_judged_and_its_duration_learned(bench: Bench) -> None:
    for n in range(3):
        job = running(bench, ended("succeeded"), polls_until_done=1)
        step = bench.runner.advance(job.id)
        while not step.job.terminal:
            step = bench.runner.advance(job.id)
        assert step.job.status == jobs.SUCCEEDED, step.job.history
        assert step.job.outcome["result"] == {"status": "fixed", "after": {"freePercent": 50}}
        assert step.job.outcome["exitCode"] == 0
        bench.store.delete_jobs(ended_before=bench.clock.advance(3600 * 24 * (n + 1)))
    assert bench.runner.durations.expected("free-disk-space") == 30.123
    # The next run of this remediation is first looked at just after its usual run time.
    bench.compute.polls_until_done = 10
    job = bench.job()
    bench.runner.advance(job.id)
    assert bench.runner.advance(job.id).requeue_after == pytest.approx(30.123 * 1.005)


def test_a_run_past_its_deadline_is_stopped_and_timed_out(bench: Bench) -> None:
    job = running(bench, polls_until_done=10_000)
    started = datetime.fromisoformat(job.run["startedAt"])
    deadline = started + timedelta(seconds=900 + 120)
    bench.clock.advance((deadline - bench.clock.now()).total_seconds() - 60)
    assert bench.runner.advance(job.id).job.status == jobs.RUNNING
    bench.clock.advance(60)
    step = bench.runner.advance(job.id)
    assert (step.job.status, step.job.history[-1].reason) == (jobs.TIMED_OUT, "no result within 900s (+120s)")
    assert step.job.outcome["executionState"] == "running"
    assert bench.compute.cancelled == [job.run["name"]]


class NsgStep:
    """A control-plane step that records its calls and answers (or fails) as told."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str, dict[str, Any], bool]] = []

    def __call__(self, job: Job, vm: Any, *, dry_run: bool) -> dict[str, Any]:
        self.calls.append((job.id, dict(vm), dry_run))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return dict(answer)


def approved_access_job(bench: Bench, step: NsgStep | None) -> tuple[Runner, Job]:
    """A restore-management-access job, approved and dispatching under a runner with ``step``."""
    runner = bench.runner_on(bench.store, {"nsg-allow-management": step} if step else {})
    job = bench.job(jobs.AWAITING_APPROVAL, remediation="restore-management-access", approved_by="bob")
    job = runner.advance(job.id).job
    assert job.status == jobs.DISPATCHING
    return runner, job


def test_a_missing_control_plane_step_fails_the_job(bench: Bench) -> None:
    runner, job = approved_access_job(bench, None)
    step = runner.advance(job.id)
    assert (step.job.status, step.job.history[-1].reason) == (
        jobs.FAILED,
        "control-plane step nsg-allow-management is not available here",
    )


def test_the_control_plane_step_sees_the_vm_and_is_not_repeated(bench: Bench) -> None:
    nsg = NsgStep({"action": "add", "rule": "allow-ssh"})
    runner, job = approved_access_job(bench, nsg)
    bench.compute.errors["start_run"] = [Transient("ARM said 503")]
    first = runner.advance(job.id)
    assert first.job.status == jobs.DISPATCHING
    assert first.job.outcome["controlPlane"] == {
        "nsg-allow-management": {"action": "add", "rule": "allow-ssh"}
    }
    second = runner.advance(job.id)
    assert second.job.status == jobs.RUNNING
    assert nsg.calls == [(job.id, {"os": "linux", "tags": {"autoremediation": "enabled"}}, False)]


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (
            {"action": "skip", "reason": "no rule blocks port 22"},
            "nsg-allow-management: no rule blocks port 22",
        ),
        ({"action": "skip"}, "nsg-allow-management: skipped"),
    ],
)
def test_a_control_plane_step_that_finds_nothing_to_do_skips_the_job(
    bench: Bench, record: dict[str, str], reason: str
) -> None:
    runner, job = approved_access_job(bench, NsgStep(record))
    step = runner.advance(job.id)
    assert (step.job.status, step.job.history[-1].reason) == (jobs.SKIPPED, reason)
    assert step.job.outcome["controlPlane"] == {"nsg-allow-management": record}
    assert bench.compute.requests == []


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (Permanent("403 denied"), jobs.FAILED),
        (InvalidInput("no NIC"), jobs.FAILED),
        (Transient("503"), jobs.DISPATCHING),
    ],
)
def test_a_control_plane_error_fails_the_job_unless_it_may_pass(
    bench: Bench, error: Exception, status: str
) -> None:
    runner, job = approved_access_job(bench, NsgStep(error))
    step = runner.advance(job.id)
    assert step.job.status == status
    if status == jobs.FAILED:
        assert step.job.history[-1].reason == f"nsg-allow-management: {error}"
    else:
        assert (step.job.attempts, step.requeue_after) == (1, 10.0)


def test_a_finished_job_is_left_alone(bench: Bench) -> None:
    job = bench.job()
    done = bench.store.update(
        jobs.transition(job, jobs.SKIPPED, now=bench.clock.now(), actor="x", reason="y")
    )
    step = bench.runner.advance(job.id)
    assert (step.job, step.requeue_after, step.note) == (done, None, "already skipped")


def test_a_high_risk_job_waits_for_an_operator_until_its_window_closes(bench: Bench) -> None:
    job = bench.job(remediation="restore-management-access")
    step = bench.runner.advance(job.id)
    assert (step.job.status, step.requeue_after, step.note) == (
        jobs.AWAITING_APPROVAL,
        None,
        "waiting for an operator",
    )
    assert step.job.approval_required is True
    assert step.job.approval_expires_at == (bench.clock.now() + timedelta(minutes=60)).isoformat()
    last = step.job.history[-1]
    assert (last.actor, last.reason) == (
        "worker",
        "risk high: an operator must approve restore-management-access",
    )
    again = bench.runner.advance(job.id)
    assert (again.job.status, again.note) == (jobs.AWAITING_APPROVAL, "waiting for an operator")


def test_an_approved_job_is_dispatched_in_the_name_of_its_approver(bench: Bench) -> None:
    job = bench.job(jobs.AWAITING_APPROVAL, remediation="restore-management-access", approved_by="bob")
    step = bench.runner.advance(job.id)
    assert step.job.status == jobs.DISPATCHING
    assert step.job.history[-1].reason == "approved by bob"
    assert step.job.run["mode"] == "managed"
    assert step.job.run["vmTags"] == {"autoremediation": "enabled"}


def test_a_second_job_on_a_busy_vm_waits_and_names_the_holder(tmp_path: Path, catalog: Catalog) -> None:
    bench = Bench(tmp_path, catalog, poll_seconds=0.5)
    first = bench.job()
    bench.runner.advance(first.id)
    second = bench.job(remediation="restore-management-access", approved_by="bob")
    second = bench.store.update(
        jobs.transition(second, jobs.AWAITING_APPROVAL, now=bench.clock.now(), actor="w", reason="r")
    )
    step = bench.runner.advance(second.id)
    assert step.job.status == jobs.AWAITING_APPROVAL
    assert (step.requeue_after, step.note) == (1.0, f"waiting: job {first.id} holds this VM")


def fail_recently(bench: Bench, remediation: str, count: int, status: str = jobs.FAILED) -> None:
    for n in range(count):
        failed, _ = bench.store.create(
            jobs.new_job(
                idempotency_key=f"old-{remediation}-{status}-{n}-{len(bench.store.list())}",
                remediation=remediation,
                condition="disk-full",
                target=vm_id(f"other{n}"),
                parameters={},
                now=bench.clock.now(),
            )
        )
        if status == jobs.TIMED_OUT:
            failed = jobs.transition(failed, jobs.DISPATCHING, now=bench.clock.now(), actor="w", reason="x")
        bench.store.update(jobs.transition(failed, status, now=bench.clock.now(), actor="w", reason="x"))


def test_failures_of_another_remediation_leave_the_breaker_closed(bench: Bench) -> None:
    fail_recently(bench, "restore-management-access", 3)
    assert bench.runner.advance(bench.job().id).job.status == jobs.DISPATCHING


def test_recent_failures_of_the_remediation_open_the_breaker(bench: Bench) -> None:
    fail_recently(bench, "free-disk-space", 3)
    step = bench.runner.advance(bench.job().id)
    assert step.job.status == jobs.SKIPPED
    assert step.job.history[-1].reason.startswith("circuit-breaker: free-disk-space failed 3 times within")


@pytest.mark.parametrize(
    ("settings", "reason"),
    [
        (dict(allowed_scopes=("/subscriptions/other",)), "scope: the VM is outside the allowed scopes"),
        (dict(opt_in_tag="selfheal"), "opt-in: the VM has not opted in (tag selfheal=<any> is missing)"),
        (dict(kill_switch=True), "kill-switch: the global kill switch is on: no remediation runs"),
        (
            dict(quarantine_tag="autoremediation"),
            "quarantine: the VM carries the quarantine tag autoremediation",
        ),
    ],
)
def test_app_settings_reach_the_guards(
    tmp_path: Path, catalog: Catalog, settings: dict[str, Any], reason: str
) -> None:
    bench = Bench(tmp_path, catalog, **settings)
    step = bench.runner.advance(bench.job().id)
    assert (step.job.status, step.job.history[-1].reason) == (jobs.SKIPPED, reason)


def test_breaker_settings_reach_the_guards(tmp_path: Path, catalog: Catalog) -> None:
    bench = Bench(tmp_path, catalog, breaker_threshold=1, breaker_window_minutes=5, breaker_open_minutes=30)
    fail_recently(bench, "free-disk-space", 1)
    bench.clock.advance(29 * 60)
    step = bench.runner.advance(bench.job().id)
    assert step.job.history[-1].reason.startswith(
        "circuit-breaker: free-disk-space failed 1 times within 0:05:00"
    )


def test_timed_out_runs_count_as_failures_for_the_breaker(bench: Bench) -> None:
    fail_recently(bench, "free-disk-space", 3, status=jobs.TIMED_OUT)
    step = bench.runner.advance(bench.job().id)
    assert step.job.history[-1].reason.startswith("circuit-breaker: ")


def test_skipped_jobs_do_not_count_as_failures_for_the_breaker(bench: Bench) -> None:
    fail_recently(bench, "free-disk-space", 3, status=jobs.SKIPPED)
    assert bench.runner.advance(bench.job().id).job.status == jobs.DISPATCHING


def test_failures_older_than_the_breaker_can_reach_are_forgotten(bench: Bench) -> None:
    fail_recently(bench, "free-disk-space", 3)
    bench.clock.advance(121 * 60)  # past the 60 min window plus the 60 min it stays open
    assert bench.runner.advance(bench.job().id).job.status == jobs.DISPATCHING


def test_a_finished_job_records_how_long_it_took_overall(bench: Bench) -> None:
    job = bench.job()
    bench.clock.advance(12.3456)
    step = bench.runner.advance(job.id)
    assert step.job.status == jobs.DISPATCHING
    bench.compute.vms.clear()
    done = bench.runner.give_up(job.id, "poison")
    assert done.outcome["totalSeconds"] == 12.346
