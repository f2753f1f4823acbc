"""Campaign scheduling on SQLite, an in-process queue and a fake Compute port."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from autoremediation import campaigns, jobs
from autoremediation.campaign_drive import drive
from autoremediation.campaigns import Limit, next_poll_delay
from autoremediation.errors import InvalidInput, NotFound, UnknownRemediation
from autoremediation.store.memory_queue import InProcessQueue
from tests.helpers.counting import CountedCalls
from tests.helpers.fakes import SUB, vm_facts, vm_id
from tests.unit.test_campaigns_support import CampaignWorld, Crash, make_compute, request, vm_names


def run(world: CampaignWorld, **overrides: Any) -> dict[str, Any]:
    started = campaigns.start_campaign(world.services, request(**overrides), actor="alice")
    return drive(world.services, started["id"])


def test_concurrency_is_never_exceeded_and_every_vm_runs_once(tmp_path: Path) -> None:
    world = CampaignWorld(tmp_path, make_compute(25))
    status = run(world, maxConcurrency=4)

    assert status["status"] == "completed"
    assert status["counts"] == {
        "total": 25,
        "planned": 0,
        "inFlight": 0,
        "succeeded": 25,
        "failed": 0,
        "skipped": 0,
        "cancelled": 0,
    }
    assert world.compute.peak == 4  # the cap is reached, and never passed
    runs = world.compute.runs_per_vm()
    assert sorted(runs) == sorted(vm_id(n) for n in vm_names(25))
    assert set(runs.values()) == {1}


def test_jobs_wait_planned_without_a_message_until_released(tmp_path: Path) -> None:
    world = CampaignWorld(tmp_path, make_compute(10))
    status = campaigns.start_campaign(world.services, request(maxConcurrency=3), actor="alice")

    campaign_jobs = world.services.store.list(campaign_id=status["id"])
    assert len(campaign_jobs) == 10
    assert {j.status for j in campaign_jobs} == {jobs.PLANNED}
    assert status["counts"]["inFlight"] == 3
    assert status["counts"]["planned"] == 7
    queue = world.services.queue
    assert isinstance(queue, InProcessQueue)
    assert len(queue) == 3


def test_the_sweepers_repair_of_a_healthy_campaign_changes_and_sends_nothing(tmp_path: Path) -> None:
    world = CampaignWorld(tmp_path, make_compute(6))
    status = campaigns.start_campaign(world.services, request(maxConcurrency=2), actor="alice")
    record = world.services.store.get_campaign(status["id"])

    ticks = [campaigns.tick(world.services, status["id"]) for _ in range(5)]

    assert all(t == ticks[0] for t in ticks)
    assert (ticks[0]["counts"]["inFlight"], ticks[0]["counts"]["planned"]) == (2, 4)
    assert world.services.store.get_campaign(status["id"]) == record  # nothing new to write
    queue = world.services.queue
    assert isinstance(queue, InProcessQueue)
    assert len(queue) == 2  # the start's two messages, none sent again before RESEND_AFTER


def test_error_budget_stops_within_one_window_and_cancels_the_rest(tmp_path: Path) -> None:
    compute = make_compute(20)
    compute.failing = set(vm_names(20))
    world = CampaignWorld(tmp_path, compute)
    status = run(world, maxConcurrency=3, maxErrors=2)

    assert status["status"] == "stopped"
    assert "3 VM(s) failed, more than the 2 allowed" in status["stopReason"]
    started = len(compute.requests)
    # The third failure stops it; at most the rest of that concurrency window was still running.
    assert 3 <= started <= 2 + 3
    counts = status["counts"]
    assert counts["failed"] == started
    assert counts["cancelled"] == 20 - started
    assert counts["planned"] == counts["inFlight"] == 0
    cancelled = world.services.store.list(campaign_id=status["id"], status=jobs.CANCELLED)
    assert all("campaign stopped: 3 VM(s) failed" in j.history[-1].reason for j in cancelled)
    assert not any(r.vm_id in {j.target for j in cancelled} for r in compute.requests)


def test_errors_within_the_budget_let_the_campaign_complete(tmp_path: Path) -> None:
    compute = make_compute(10)
    compute.failing = {"vm003", "vm007"}
    world = CampaignWorld(tmp_path, compute)
    status = run(world, maxConcurrency=2, maxErrors="20%")

    assert status["status"] == "completed"
    assert status["errorLimit"] == 2
    assert (status["counts"]["succeeded"], status["counts"]["failed"]) == (8, 2)


def test_resume_after_a_crash_runs_no_vm_twice(tmp_path: Path) -> None:
    compute = make_compute(12, crash_on_start=6)
    world = CampaignWorld(tmp_path, compute)
    started = campaigns.start_campaign(world.services, request(maxConcurrency=3), actor="alice")
    with pytest.raises(Crash):
        drive(world.services, started["id"])
    assert compute.starts == 6
    before = campaigns.campaign_status(world.services, started["id"])
    assert before["status"] == "running"
    assert before["counts"]["succeeded"] < 12

    world.services = world.new_services()  # a new process: the in-process queue is gone
    campaigns.resume(world.services, started["id"])
    status = drive(world.services, started["id"])

    assert status["status"] == "completed"
    assert status["counts"]["succeeded"] == 12
    # The crashed dispatch re-attached to its run command instead of starting the script again.
    assert set(compute.executions.values()) == {1}
    assert len(compute.executions) == 12
    assert compute.peak <= 3


def test_jobs_are_chained_in_vm_order_and_the_start_releases_the_first_window(tmp_path: Path) -> None:
    world = CampaignWorld(tmp_path, make_compute(7))
    status = campaigns.start_campaign(world.services, request(maxConcurrency=3), actor="alice")
    made = sorted(world.services.store.list(campaign_id=status["id"]), key=lambda j: j.campaign_index or 0)

    assert [j.target for j in made] == [vm_id(n) for n in vm_names(7)]
    assert [j.campaign_index for j in made] == list(range(7))
    # Job k releases job k + 3; the last three release nothing.
    assert [j.releases for j in made] == [made[k + 3].id for k in range(4)] + [None] * 3
    assert made[0].to_json()["releases"] == made[3].id
    queue = world.services.queue
    assert isinstance(queue, InProcessQueue)
    assert sorted(m.job_id for m in queue.receive(max_messages=10)) == sorted(j.id for j in made[:3])


def test_the_start_answers_from_the_jobs_it_made_without_reading_them_back(tmp_path: Path) -> None:
    world = CampaignWorld(tmp_path, make_compute(7))
    counting = CountedCalls(world.services.store)
    world.services.store = counting  # type: ignore[assignment]

    status = campaigns.start_campaign(world.services, request(maxConcurrency=3), actor="alice")

    assert counting.calls["list"] == 0 and counting.calls["create_many"] == 1
    assert status["status"] == campaigns.RUNNING and status["startedAt"]
    assert status["counts"] == {
        "total": 7,
        "planned": 4,
        "inFlight": 3,
        "succeeded": 0,
        "failed": 0,
        "skipped": 0,
        "cancelled": 0,
    }
    assert status == campaigns.campaign_status(world.services, status["id"])


def test_percentages_of_the_target_count(tmp_path: Path) -> None:
    world = CampaignWorld(tmp_path, make_compute(25))
    status = campaigns.start_campaign(
        world.services, request(maxConcurrency="10%", maxErrors="10%"), actor="alice"
    )
    assert (status["concurrency"], status["errorLimit"]) == (3, 2)  # 2.5 up, 2.5 down
    assert (status["maxConcurrency"], status["maxErrors"]) == ("10%", "10%")


@pytest.mark.parametrize(
    ("raw", "targets", "concurrency", "errors"),
    [
        ("1%", 50, 1, 0),
        ("100%", 7, 7, 7),
        ("33%", 10, 4, 3),
        ("0%", 10, None, 0),
        (5, 3, 5, 5),
        ("12.5%", 8, 1, 1),
    ],
)
def test_limit_rounding(raw: object, targets: int, concurrency: int | None, errors: int) -> None:
    assert Limit.parse(raw, "maxErrors", minimum=0).errors(targets) == errors
    if concurrency is not None:
        assert Limit.parse(raw, "maxConcurrency", minimum=1).concurrency(targets) == concurrency


def test_tag_filter_and_the_opt_in_guard_still_apply(tmp_path: Path) -> None:
    compute = make_compute(0)
    compute.add(vm_facts("web1", tags={"autoremediation": "enabled", "role": "web"}))
    compute.add(vm_facts("web2", tags={"role": "WEB"}))  # selected, but never opted in
    compute.add(vm_facts("db1", tags={"autoremediation": "enabled", "role": "db"}))
    world = CampaignWorld(tmp_path, compute)
    status = run(world, targets={"tag": "role=web"}, maxConcurrency=5)

    assert status["counts"]["total"] == 2
    assert (status["counts"]["succeeded"], status["counts"]["skipped"]) == (1, 1)
    skipped = world.services.store.list(campaign_id=status["id"], status=jobs.SKIPPED)
    assert skipped[0].target == vm_id("web2")
    assert skipped[0].history[-1].reason.startswith("opt-in:")
    assert [r.vm_id for r in compute.requests] == [vm_id("web1")]


def test_starting_again_with_the_same_id_makes_no_second_job(tmp_path: Path) -> None:
    world = CampaignWorld(tmp_path, make_compute(5))
    first = campaigns.start_campaign(world.services, request(id="patch-tuesday"), actor="alice")
    second = campaigns.start_campaign(world.services, request(id="patch-tuesday"), actor="bob")

    assert first["id"] == second["id"] == "patch-tuesday"
    assert len(world.services.store.list(campaign_id="patch-tuesday")) == 5
    assert second["requestedBy"] == "alice"


def test_targets_file_ids_and_dry_run_reach_the_jobs(tmp_path: Path) -> None:
    world = CampaignWorld(tmp_path, make_compute(3))
    ids = [vm_id("vm002"), vm_id("vm000"), vm_id("VM000")]
    status = run(world, targets={"vmIds": ids}, dryRun=True)

    assert status["counts"]["total"] == 2
    assert all(r.parameters["DRY_RUN"] == "1" for r in world.compute.requests)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"remediation": "make-coffee"}, "unknown remediation 'make-coffee'"),
        ({"remediation": None}, "remediation is required"),
        ({"targets": {}}, "targets is required"),
        ({"targets": {"vmIds": ["/not/a/vm"]}}, "targets.vmIds[0]: '/not/a/vm' is not a VM resource id"),
        ({"targets": {"vmIds": [vm_id("a")], "tag": "x=y"}}, "vmIds cannot be combined"),
        ({"targets": {"tag": "=v"}}, "tag '=v' must look like NAME=VALUE"),
        ({"targets": {"subscription": "abc"}}, "subscription 'abc' is not a subscription id"),
        ({"targets": {"colour": "blue"}}, "targets: unknown field 'colour'"),
        ({"targets": {"resourceGroup": "rg/../x"}}, "is not a resource group name or id"),
        ({"maxConcurrency": 0}, "maxConcurrency 0 must be a whole number of at least 1"),
        ({"maxConcurrency": "0%"}, "maxConcurrency 0% must be between more than 0 and 100%"),
        ({"maxConcurrency": "lots"}, "maxConcurrency 'lots' must be a whole number or a percentage"),
        ({"maxErrors": "150%"}, "maxErrors 150% must be between 0 and 100%"),
        ({"maxErrors": -1}, "maxErrors '-1' must be a whole number or a percentage"),
        ({"maxErrors": True}, "maxErrors must be a whole number or a percentage like 10%, not True"),
        ({"parameters": {"targetFreePercent": 3}}, "parameter 'targetFreePercent': 3 is below the minimum 5"),
        ({"parameters": {"colour": "blue"}}, "parameter 'colour': is not a parameter of free-disk-space"),
        ({"dryRun": "yes"}, "dryRun must be true or false"),
        ({"id": "../etc"}, "id '../etc' must be 1-100 letters"),
        ({"extra": 1}, "unknown field 'extra'"),
        ({"targets": {"resourceGroup": "empty-rg"}}, "no VM matches the targets"),
    ],
)
def test_bad_requests_are_refused_before_any_write(
    tmp_path: Path, changes: dict[str, Any], message: str
) -> None:
    world = CampaignWorld(tmp_path, make_compute(2))
    data = request(**changes)
    for key, value in changes.items():
        if value is None:
            del data[key]
    with pytest.raises(InvalidInput) as caught:
        campaigns.start_campaign(world.services, data, actor="alice")
    assert message in str(caught.value)
    assert world.services.store.list() == []


def test_missing_limits_and_subscription_are_named(tmp_path: Path) -> None:
    world = CampaignWorld(tmp_path, make_compute(2), subscription_id=None)
    for data, message in (
        (
            {k: v for k, v in request(targets={"subscription": SUB}).items() if k != "maxErrors"},
            "maxErrors is required",
        ),
        (request(), "resource group rg needs a subscription"),
        (request(targets={"tag": "a=b"}), "a tag needs a subscription to search"),
    ):
        with pytest.raises(InvalidInput, match=message):
            campaigns.start_campaign(world.services, data, actor="alice")
    ok = campaigns.start_campaign(
        world.services, request(targets={"resourceGroup": f"{campaigns_rg()}"}), actor="alice"
    )
    assert ok["counts"]["total"] == 2


def campaigns_rg() -> str:
    return f"/subscriptions/{SUB}/resourceGroups/rg"


def test_unknown_campaign_is_not_found(tmp_path: Path) -> None:
    world = CampaignWorld(tmp_path, make_compute(1))
    with pytest.raises(NotFound):
        campaigns.campaign_status(world.services, "nope")
    with pytest.raises(NotFound):
        campaigns.campaign_status(world.services, "../../etc/passwd")
    assert not isinstance(NotFound("x"), UnknownRemediation)


def test_a_job_that_ends_sends_its_successor_and_writes_nothing(tmp_path: Path) -> None:
    world = CampaignWorld(tmp_path, make_compute(4))
    status = campaigns.start_campaign(world.services, request(maxConcurrency=1), actor="alice")
    store, queue = world.services.store, world.services.queue
    assert isinstance(queue, InProcessQueue)
    [message] = queue.receive()
    queue.delete(message)
    job = store.get(message.job_id)
    assert campaigns.on_job_finished(world.services, job) is None  # not ended yet
    assert len(queue) == 0
    record = store.get_campaign(status["id"])
    done = store.update(jobs.transition(job, jobs.SKIPPED, now=world.clock.now(), actor="t", reason="test"))

    campaigns.on_job_finished(world.services, done)

    assert [m.job_id for m in queue.receive()] == [done.releases]
    assert store.get_campaign(status["id"]) == record  # a success or a skip never writes the record
    full = campaigns.campaign_status(world.services, status["id"])
    assert (full["counts"]["skipped"], full["counts"]["inFlight"], full["counts"]["planned"]) == (1, 1, 2)


def test_next_poll_delay() -> None:
    assert next_poll_delay(0, 15, 120) == pytest.approx(120.6)  # first look just after the expected end
    assert next_poll_delay(1, 15, 120) == 3.75  # then tighter
    assert [next_poll_delay(n, 16, None) for n in range(7)] == [
        4,
        4,
        8,
        8,
        16,
        16,
        16,
    ]  # no estimate: back off
    assert next_poll_delay(0, 0.1, None) == 0.1
    assert next_poll_delay(3, 0, 10) == 0.0


def test_several_workers_on_the_system_clock_finish_the_campaign_within_the_cap(tmp_path: Path) -> None:
    from autoremediation.ports import SystemClock
    from autoremediation.services import Services
    from autoremediation.store.sqlite import SqliteJobStore

    compute = make_compute(30)
    world = CampaignWorld(tmp_path, compute, poll_seconds=0)
    clock = SystemClock()
    network: Any = object()
    services = Services(
        world.settings,
        clock=clock,
        store=SqliteJobStore(str(tmp_path / "jobs.db")),
        queue=InProcessQueue(clock),
        compute=compute,
        network=network,
    )
    started = campaigns.start_campaign(services, request(maxConcurrency=3), actor="alice")
    status = drive(services, started["id"], workers=4)

    assert status["status"] == "completed"
    assert status["counts"]["succeeded"] == 30
    assert compute.peak <= 3
    assert set(compute.executions.values()) == {1}


def test_a_second_drive_in_the_same_process_is_refused_and_leaves_the_first_wired(tmp_path: Path) -> None:
    world = CampaignWorld(tmp_path, make_compute(6))
    first = campaigns.start_campaign(world.services, request(maxConcurrency=2), actor="alice")
    second = campaigns.start_campaign(
        world.services, request(maxConcurrency=2, targets={"resourceGroup": "rg"}, id="second"), actor="bob"
    )
    runner = world.services.runner
    before = runner.on_end
    refusals: list[str] = []
    wired_during: list[object] = []

    def during_first(_: Any) -> None:
        if refusals:
            return
        wired_during.append(runner.on_end)
        with pytest.raises(InvalidInput, match="already being driven") as refused:
            drive(world.services, second["id"])
        refusals.append(str(refused.value))
        assert runner.on_end == wired_during[0]  # the first drive keeps its hook

    status = drive(world.services, first["id"], on_status=during_first, refresh_seconds=0)

    assert status["status"] == "completed"
    assert first["id"] in refusals[0]
    assert getattr(wired_during[0], "__self__", None) is not None
    assert runner.on_end == before  # unwired once the drive ended
    assert drive(world.services, second["id"])["status"] == "completed"  # and a later drive is free
