"""The runner and intake on the embedded SQLite store, an in-process queue and a fake Compute port."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest

from autoremediation import jobs, operations
from autoremediation.catalog_load import load_catalog
from autoremediation.errors import AgentNotReady, Busy, InvalidTransition, Permanent, Throttled, Transient
from autoremediation.intake import Intake
from autoremediation.planning import Planner
from autoremediation.ports import RunRequest, RunStatus
from autoremediation.routing import load_routes
from autoremediation.runner import MAX_RETRIES, Runner
from autoremediation.settings import Settings
from autoremediation.store.memory_queue import InProcessQueue, ManualClock
from autoremediation.store.sqlite import SqliteJobStore
from autoremediation.worker import drain, handle
from tests.helpers.catalogs import make_catalog
from tests.helpers.fakes import FakeCompute, TrustingGate, vm_facts, vm_id


class Crash(BaseException):
    """A worker killed mid-step: not an Exception, so nothing in the engine can swallow it."""


class World:
    def __init__(self, tmp_path: Path, **settings_kw) -> None:
        root = make_catalog(tmp_path / "catalog")
        self.catalog = load_catalog(root)
        routes = load_routes(root, self.catalog)
        self.clock = ManualClock()
        self.store = SqliteJobStore(str(tmp_path / "jobs.db"))
        self.queue = InProcessQueue(self.clock)
        self.compute = FakeCompute()
        self.compute.add(vm_facts("vm1"))
        self.settings = replace(Settings(), poll_seconds=10, **settings_kw)
        self.events: list[tuple[str, str]] = []
        self.cp_calls: list[tuple[str, bool]] = []
        self.runner = Runner(
            catalog=self.catalog,
            store=self.store,
            compute=self.compute,
            clock=self.clock,
            settings=self.settings,
            control_plane={"nsg-allow-management": self._nsg_step},
            on_transition=lambda job, t: self.events.append((job.id, t.target)),
        )
        self.intake = Intake(
            Planner(self.catalog, routes, gate=TrustingGate()), self.store, self.queue, self.clock
        )

    def _nsg_step(self, job, vm, *, dry_run):
        self.cp_calls.append((job.id, dry_run))
        return {"action": "add", "rule": "allow-mgmt-ssh", "priority": 99}

    def manual(self, remediation="free-disk-space", target="vm1", request_id="req-1", **kw):
        payload = {
            "remediation": remediation,
            "targets": [vm_id(target)],
            "parameters": kw.pop("parameters", {}),
            "reason": "test",
            "dryRun": kw.pop("dry_run", False),
            "requestId": request_id,
        }
        return self.intake.submit(payload, actor="operator")

    def alert(self, alert_id="a-1", state="Fired", target="vm1", mount="/var"):
        payload = {
            "schemaId": "azureMonitorCommonAlertSchema",
            "data": {
                "essentials": {
                    "alertId": f"/subscriptions/x/providers/Microsoft.AlertsManagement/alerts/{alert_id}",
                    "alertRule": "disk-free-low",
                    "severity": "Sev2",
                    "signalType": "Log",
                    "monitorCondition": state,
                    "monitoringService": "Log Alerts V2",
                    "alertTargetIDs": [vm_id(target).lower()],
                    "firedDateTime": "2026-01-01T00:00:00Z",
                    **({"resolvedDateTime": "2026-01-01T01:00:00Z"} if state == "Resolved" else {}),
                },
                "alertContext": {
                    "conditionType": "LogQueryCriteria",
                    "condition": {
                        "allOf": [
                            {
                                "searchQuery": "InsightsMetrics | where Name == 'FreeSpacePercentage'",
                                "dimensions": [
                                    {"name": "_ResourceId", "value": vm_id(target)},
                                    {"name": "Mount", "value": mount},
                                ],
                            }
                        ]
                    },
                },
            },
        }
        return self.intake.submit(payload, actor="alert")

    def drain(self) -> None:
        drain(self.runner, self.queue, wait=self.clock.advance, due_in=self.queue.due_in)

    def job(self, result, index=0):
        return self.store.get(result.jobs[index].job.id)


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def states(job) -> list[str]:
    return [t.target for t in job.history]


def test_alert_runs_to_success_with_outcome_on_record(world: World) -> None:
    result = world.alert()
    assert [a.created for a in result.jobs] == [True]
    world.drain()
    job = world.job(result)
    assert states(job) == ["planned", "dispatching", "running", "verifying", "succeeded"]
    assert job.outcome["exitCode"] == 0
    assert job.outcome["result"]["after"]["freePercent"] == 40
    assert job.outcome["verified"] is True
    assert job.parameters == {"mountPoint": "/var", "targetFreePercent": "20"}
    [request] = world.compute.requests
    assert request.parameters == {"MOUNT_POINT": "/var", "TARGET_FREE_PERCENT": "20", "DRY_RUN": "0"}
    assert request.run_name == jobs.run_name_for(job.id)
    assert world.store.lease_holder(job.target_key, world.clock.now()) is None
    assert [e for e in world.events if e[0] == job.id][-1] == (job.id, "succeeded")
    assert len([e for e in world.events if e[0] == job.id]) == 4  # one event per transition after planned


def test_duplicate_delivery_makes_no_second_job(world: World) -> None:
    first, second = world.alert(), world.alert()
    assert first.jobs[0].job.id == second.jobs[0].job.id
    assert [a.created for a in second.jobs] == [False]
    world.drain()
    assert sum(world.compute.executions.values()) == 1


def test_failed_verification_fails_the_job(world: World) -> None:
    world.compute.outcome = lambda r: RunStatus(
        state="succeeded", exit_code=0, result={"status": "fixed", "after": {"freePercent": 12}}
    )
    result = world.alert()
    world.drain()
    job = world.job(result)
    assert job.status == "failed"
    assert "after.freePercent >= targetFreePercent does not hold" in job.history[-1].reason


def test_nonzero_exit_fails(world: World) -> None:
    world.compute.outcome = lambda r: RunStatus(state="failed", exit_code=3, result={"status": "error"})
    result = world.alert()
    world.drain()
    assert world.job(result).history[-1].reason == "exit code 3 (expected 0)"


def test_skip_is_on_record_with_the_guard(world: World) -> None:
    world.compute.add(vm_facts("vm2", tags={}))
    result = world.alert(target="vm2")
    world.drain()
    job = world.job(result)
    assert job.status == "skipped" and job.history[-1].reason.startswith("opt-in: ")
    assert world.compute.executions == {}


def test_bad_parameter_is_skipped_at_intake_without_a_message(world: World) -> None:
    result = world.alert(mount="/var;reboot")
    job = world.job(result)
    assert job.status == "skipped" and "parameters: parameter 'mountPoint'" in job.history[-1].reason
    assert world.queue.receive() == []


def test_kill_switch(tmp_path: Path) -> None:
    world = World(tmp_path, kill_switch=True)
    result = world.alert()
    world.drain()
    assert world.job(result).history[-1].reason.startswith("kill-switch")
    assert world.compute.calls["start_run"] == 0


def test_dry_run_sends_dry_run_and_skips_control_plane_changes(tmp_path: Path) -> None:
    world = World(tmp_path, dry_run=True)
    result = world.manual()
    world.drain()
    job = world.job(result)
    assert job.status == "succeeded" and job.dry_run
    assert world.compute.requests[0].parameters["DRY_RUN"] == "1"
    assert job.outcome["verification"].startswith("dry run")


class TestApproval:
    def test_high_risk_waits_then_runs_after_approval(self, world: World) -> None:
        result = world.manual("restore-management-access")
        world.drain()
        job = world.job(result)
        assert job.status == "awaiting-approval" and world.compute.calls["start_run"] == 0
        operations.approve(world.store, world.queue, world.clock, job.id, actor="alice")
        world.drain()
        job = world.store.get(job.id)
        assert job.status == "succeeded" and job.approved_by == "alice"
        assert world.cp_calls == [(job.id, False)]
        assert job.outcome["controlPlane"]["nsg-allow-management"]["rule"] == "allow-mgmt-ssh"
        assert world.compute.requests[0].parameters["PORT"] == "22"

    def test_the_requester_cannot_approve_their_own_request(self, world: World) -> None:
        result = world.manual("restore-management-access")  # requested by "operator"
        world.drain()
        with pytest.raises(InvalidTransition, match="separation of duties"):
            operations.approve(world.store, world.queue, world.clock, world.job(result).id, actor="operator")
        assert world.job(result).approved_by is None

    def test_reject(self, world: World) -> None:
        result = world.manual("restore-management-access")
        world.drain()
        job = operations.reject(world.store, world.clock, world.job(result).id, actor="bob", reason="no")
        assert job.status == "cancelled" and job.history[-1].reason == "rejected by bob: no"
        with pytest.raises(InvalidTransition):
            operations.approve(world.store, world.queue, world.clock, job.id, actor="alice")

    def test_approval_expires(self, world: World) -> None:
        result = world.manual("restore-management-access")
        world.drain()
        world.clock.advance(61 * 60)
        with pytest.raises(InvalidTransition, match="approval window closed"):
            operations.approve(world.store, world.queue, world.clock, world.job(result).id, actor="late")
        world.runner.advance(world.job(result).id)
        assert world.job(result).status == "expired"

    def test_guards_are_checked_again_after_approval(self, world: World) -> None:
        result = world.manual("restore-management-access")
        world.drain()
        world.compute.add(vm_facts("vm1", power_state="deallocated"))
        operations.approve(world.store, world.queue, world.clock, world.job(result).id, actor="alice")
        world.drain()
        assert world.job(result).history[-1].reason.startswith("vm-running")


class TestAlertLifecycle:
    def test_resolved_cancels_undispatched(self, world: World) -> None:
        fired = world.alert()
        resolved = world.alert(state="Resolved")
        assert resolved.resolved == (fired.jobs[0].job.id,)
        world.drain()
        job = world.job(fired)
        assert job.status == "cancelled" and "before the remediation was dispatched" in job.history[-1].reason
        assert world.compute.executions == {}

    def test_resolved_before_fired(self, world: World) -> None:
        resolved = world.alert(state="Resolved")
        fired = world.alert()
        assert fired.jobs[0].created is False
        world.drain()
        job = world.job(fired)
        assert job.id == resolved.resolved[0]
        assert job.status == "cancelled" and "before its Fired notification" in job.history[-1].reason
        assert world.compute.executions == {}

    def test_resolved_after_dispatch_is_noted(self, world: World) -> None:
        fired = world.alert()
        world.drain()
        world.alert(state="Resolved")
        world.alert(state="Resolved")  # noted once
        job = world.job(fired)
        assert job.status == "succeeded"
        assert len([n for n in job.notes if n.endswith("the alert resolved")]) == 1


class TestGuardsOverTime:
    def test_cooldown_after_a_run(self, world: World) -> None:
        world.alert("a-1")
        world.drain()
        world.clock.advance(30 * 60)
        second = world.alert("a-2")
        world.drain()
        assert world.job(second).history[-1].reason.startswith("cooldown")
        world.clock.advance(61 * 60)
        third = world.alert("a-3")
        world.drain()
        assert world.job(third).status == "succeeded"

    def test_breaker_opens_after_failures(self, world: World) -> None:
        world.compute.outcome = lambda r: RunStatus(state="failed", exit_code=1, result={"status": "error"})
        for n in range(3):
            world.compute.add(vm_facts(f"vm-f{n}"))
            world.alert(f"f-{n}", target=f"vm-f{n}")
            world.drain()
        world.compute.add(vm_facts("vm-next"))
        nxt = world.alert("f-next", target="vm-next")
        world.drain()
        assert world.job(nxt).history[-1].reason.startswith("circuit-breaker")


class TestSerialisation:
    def test_two_remediations_on_one_vm_run_one_after_the_other(self, world: World) -> None:
        world.compute.polls_until_done = 3
        first = world.manual("free-disk-space", request_id="r-1")
        second = world.manual("restore-management-access", request_id="r-2")
        operations_job = world.job(second)
        world.runner.advance(world.job(first).id)  # first takes the lease
        world.runner.advance(operations_job.id)  # second: awaiting approval
        operations.approve(world.store, world.queue, world.clock, operations_job.id, actor="alice")
        step = world.runner.advance(operations_job.id)
        assert step.requeue_after and "holds this VM" in step.note
        assert world.job(second).status == "awaiting-approval"
        world.drain()
        a, b = world.job(first), world.job(second)
        assert (a.status, b.status) == ("succeeded", "succeeded")
        b_dispatched = next(t.at for t in b.history if t.target == "dispatching")
        assert b_dispatched >= a.updated_at  # the second started only after the first ended


class TestCloudErrors:
    def test_busy_and_throttled_are_retried_honouring_retry_after(self, world: World) -> None:
        world.compute.errors["start_run"] = [Busy("conflict"), Throttled("slow down", retry_after=42)]
        result = world.alert()
        job_id = world.job(result).id
        world.runner.advance(job_id)
        first = world.runner.advance(job_id)
        assert first.requeue_after == 10 and world.job(result).attempts == 1
        second = world.runner.advance(job_id)
        assert second.requeue_after == 42
        world.drain()
        assert world.job(result).status == "succeeded" and world.job(result).attempts == 0

    def test_transient_errors_back_off_then_give_up(self, world: World) -> None:
        world.compute.errors["get_vm"] = [Transient("503") for _ in range(MAX_RETRIES + 1)]
        result = world.alert()
        delays = []
        for _ in range(MAX_RETRIES + 1):
            delays.append(world.runner.advance(world.job(result).id).requeue_after)
        assert delays[:4] == [10, 20, 40, 80] and delays[-2] == 300
        assert delays[-1] is None
        job = world.job(result)
        assert job.status == "failed" and job.history[-1].reason.startswith(f"gave up after {MAX_RETRIES}")

    def test_permanent_dispatch_error_fails(self, world: World) -> None:
        world.compute.errors["start_run"] = [AgentNotReady("agent gone")]
        result = world.alert()
        world.drain()
        job = world.job(result)
        assert job.status == "failed" and job.history[-1].reason == "dispatch refused: agent gone"
        assert world.store.lease_holder(job.target_key, world.clock.now()) is None

    def test_refused_request_fails_the_job_instead_of_crashing_the_worker(self, world: World) -> None:
        from autoremediation.errors import InvalidInput

        world.compute.errors["start_run"] = [InvalidInput("classic mode cannot protect parameters")]
        result = world.alert()
        world.drain()
        job = world.job(result)
        assert job.status == "failed"
        assert job.history[-1].reason == "dispatch refused: classic mode cannot protect parameters"

    def test_control_plane_failure_fails_before_the_guest_step(self, world: World) -> None:
        def broken(job, vm, *, dry_run):
            raise Permanent("NSG is locked")

        world.runner.control_plane["nsg-allow-management"] = broken
        result = world.manual("restore-management-access")
        world.drain()
        operations.approve(world.store, world.queue, world.clock, world.job(result).id, actor="alice")
        world.drain()
        job = world.job(result)
        assert job.status == "failed" and "nsg-allow-management: NSG is locked" in job.history[-1].reason
        assert world.compute.calls["start_run"] == 0

    def test_run_that_never_ends_times_out_and_is_deleted(self, world: World) -> None:
        world.compute.polls_until_done = 10**9
        result = world.alert()
        world.drain()
        job = world.job(result)
        assert job.status == "timed-out"
        assert world.compute.cancelled == [job.run["name"]]


class TestCrashSafety:
    """Kill the worker after each write (and before it), redeliver, and count script executions."""

    @pytest.mark.parametrize("when", ["before", "after"])
    @pytest.mark.parametrize("crash_at", range(1, 5))  # dispatching, running, a poll, verified outcome
    def test_crash_at_every_write_neither_loses_nor_repeats(
        self, world: World, crash_at: int, when: str
    ) -> None:
        world.compute.polls_until_done = 2
        result = world.alert()
        job_id = world.job(result).id
        real_update = world.store.update
        writes = {"n": 0}

        def crashing_update(job):
            writes["n"] += 1
            if writes["n"] != crash_at:
                return real_update(job)
            if when == "after":
                real_update(job)  # killed after the write, before the next message was sent
            raise Crash()

        world.store.update = crashing_update  # type: ignore[method-assign]
        crashed = False
        for _ in range(50):
            messages = world.queue.receive()
            if not messages:
                pending = world.queue.due_in()
                if pending is None:
                    break
                world.clock.advance(pending)
                continue
            for message in messages:
                try:
                    handle(world.runner, world.queue, message.job_id, dequeue_count=message.dequeue_count)
                except Crash:
                    crashed = True
                    # The message was not completed: the queue shows it again after its visibility timeout.
                    world.clock.advance(301)
                    continue
                world.queue.delete(message)
        assert crashed
        job = world.store.get(job_id)
        assert job.status == "succeeded"
        assert world.compute.executions[job.run["name"]] == 1

    def test_redelivered_message_after_completed_step_does_not_repeat(self, world: World) -> None:
        result = world.alert()
        job_id = world.job(result).id
        for _ in range(2):  # the same message twice at every state: a duplicate in the queue
            world.runner.advance(job_id)
        world.drain()
        assert world.compute.executions == {jobs.run_name_for(job_id): 1}


def test_poison_message_fails_the_job_with_the_reason(world: World) -> None:
    result = world.alert()
    job_id = world.job(result).id
    world.compute.errors["get_vm"] = [RuntimeError("boom")]
    step = handle(world.runner, world.queue, job_id, dequeue_count=5, max_dequeue=5)
    job = world.store.get(job_id)
    assert job.status == "failed" and step.requeue_after is None
    assert "failed 5 times; last error: boom" in job.history[-1].reason


def test_200_concurrent_deliveries_make_one_job_and_one_run(world: World) -> None:
    barrier = threading.Barrier(20)

    def deliver(_):
        barrier.wait() if _ < 20 else None
        return world.alert()

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(deliver, range(200)))
    created = [a for r in results for a in r.jobs if a.created]
    assert len(created) == 1
    assert len({a.job.id for r in results for a in r.jobs}) == 1

    def work():
        drain(world.runner, world.queue, wait=lambda s: world.clock.advance(s), due_in=world.queue.due_in)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert world.store.get(created[0].job.id).status == "succeeded"
    assert sum(world.compute.executions.values()) == 1


def test_run_request_carries_script_and_timeout(world: World) -> None:
    world.manual()
    world.drain()
    request: RunRequest = world.compute.requests[0]
    assert "REMEDIATION_RESULT" in request.script
    assert request.timeout_seconds == 900 and request.os_type == "linux"


class TestSafetyUnderTime:
    def test_a_live_run_keeps_its_vm_lease_past_the_base_lease(self, world: World) -> None:
        world.compute.polls_until_done = 10**9
        first = world.manual("free-disk-space", request_id="r-long")
        job_id = world.job(first).id
        world.runner.advance(job_id)  # planned -> dispatching (lease taken)
        world.runner.advance(job_id)  # -> running
        world.clock.advance(800)
        world.runner.advance(job_id)  # a poll renews the lease
        world.clock.advance(800)  # 1,600 s after dispatch: far past the 900 s base lease
        second = world.manual("restore-management-access", request_id="r-other")
        other = world.job(second).id
        world.runner.advance(other)
        operations.approve(world.store, world.queue, world.clock, other, actor="alice")
        step = world.runner.advance(other)
        assert "holds this VM" in step.note and world.job(second).status == "awaiting-approval"

    def test_giving_up_on_a_running_job_stops_its_run_first(self, world: World) -> None:
        world.compute.polls_until_done = 10**9
        result = world.alert()
        job_id = world.job(result).id
        world.runner.advance(job_id)
        world.runner.advance(job_id)
        world.compute.errors["get_run"] = [Transient("503") for _ in range(MAX_RETRIES + 1)]
        for _ in range(MAX_RETRIES + 1):
            world.runner.advance(job_id)
        job = world.job(result)
        assert job.status == "failed" and "the run command was stopped, its outcome is unknown" in (
            job.history[-1].reason
        )
        assert world.compute.cancelled == [job.run["name"]]
        assert world.store.lease_holder(job.target_key, world.clock.now()) is None

    def test_transient_errors_between_good_polls_do_not_add_up(self, world: World) -> None:
        world.compute.polls_until_done = 10**9
        result = world.alert()
        job_id = world.job(result).id
        world.runner.advance(job_id)
        world.runner.advance(job_id)
        for _ in range(MAX_RETRIES * 2):
            world.compute.errors["get_run"] = [Transient("503")]
            world.runner.advance(job_id)  # an error...
            world.clock.advance(30)
            world.runner.advance(job_id)  # ...then a poll that answers
        assert world.job(result).status == "running" and world.job(result).attempts == 0

    def test_a_duplicate_poll_chain_dies_out(self, world: World) -> None:
        world.compute.polls_until_done = 10**9
        result = world.alert()
        job_id = world.job(result).id
        world.runner.advance(job_id)
        world.runner.advance(job_id)
        world.clock.advance(5)
        first = world.runner.advance(job_id)
        duplicate = world.runner.advance(job_id)  # the same poll delivered twice
        assert first.requeue_after and duplicate.requeue_after is None
        assert duplicate.note == "duplicate poll dropped"

    def test_a_poll_scheduled_by_a_warmer_instance_is_not_taken_for_a_duplicate(self, world: World) -> None:
        world.compute.polls_until_done = 10**9
        result = world.alert()
        job_id = world.job(result).id
        world.runner.advance(job_id)
        world.runner.advance(job_id)
        for _ in range(4):  # this instance's own estimate: polls back off to the base (10 s)
            world.clock.advance(30)
            world.runner.advance(job_id)
        job = world.job(result)
        # Another instance, which knows the usual run time, polled last and asked for a look in 1 s.
        world.store.update(
            replace(job, run={**job.run, "lastPolledAt": world.clock.now().isoformat(), "pollDelay": 1.0})
        )
        world.clock.advance(1)
        step = world.runner.advance(job_id)
        assert step.note != "duplicate poll dropped" and step.requeue_after
        assert world.job(result).run["polls"] == 5

    def test_lease_taken_for_a_job_cancelled_meanwhile_is_given_back(self, world: World) -> None:
        result = world.alert()
        job_id = world.job(result).id
        real_update = world.store.update

        def cancel_first(job):
            current = world.store.get(job.id)
            if job.status == "dispatching" and current.status == "planned":
                real_update(
                    jobs.transition(
                        current,
                        jobs.CANCELLED,
                        now=world.clock.now(),
                        actor="alert",
                        reason="the alert resolved",
                    )
                )
            return real_update(job)

        world.store.update = cancel_first  # type: ignore[method-assign]
        step = world.runner.advance(job_id)
        assert step.job.status == "cancelled"
        assert world.store.lease_holder(step.job.target_key, world.clock.now()) is None


class TestClassicMode:
    @pytest.fixture
    def classic(self, tmp_path: Path) -> World:
        return World(tmp_path, run_command_mode="action")

    def test_an_unknown_outcome_is_never_dispatched_again(self, classic: World) -> None:
        classic.compute.errors["start_run"] = [Transient("connection reset while waiting")]
        result = classic.alert()
        classic.drain()
        job = classic.job(result)
        assert job.status == "failed" and job.history[-1].reason.startswith("dispatch refused")
        assert classic.compute.calls["start_run"] == 1

    def test_a_crash_after_the_post_is_not_followed_by_a_second_post(self, classic: World) -> None:
        result = classic.alert()
        job_id = classic.job(result).id
        classic.runner.advance(job_id)  # planned -> dispatching
        real_update = classic.store.update
        calls = {"n": 0}

        def crash_after_post(job):
            calls["n"] += 1
            if calls["n"] == 2:  # the write after start_run: the worker dies here
                raise Crash()
            return real_update(job)

        classic.store.update = crash_after_post  # type: ignore[method-assign]
        with pytest.raises(Crash):
            classic.runner.advance(job_id)
        classic.store.update = real_update  # type: ignore[method-assign]
        classic.runner.advance(job_id)  # the redelivered message
        job = classic.job(result)
        assert job.status == "failed" and job.history[-1].reason.startswith("outcome unknown")
        assert classic.compute.calls["start_run"] == 1

    def test_busy_before_start_is_retried(self, classic: World) -> None:
        classic.compute.errors["start_run"] = [Busy("another run command is in progress")]
        result = classic.alert()
        classic.drain()
        assert classic.job(result).status == "succeeded"
        assert classic.compute.calls["start_run"] == 2
