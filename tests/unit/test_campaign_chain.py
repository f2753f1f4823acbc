"""Release by chain: what one ending job costs, failures counted once, the tail completing, repairs."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from autoremediation import campaigns, jobs, operations
from autoremediation.campaign_drive import drive
from autoremediation.jobs import Job
from autoremediation.store.memory_queue import InProcessQueue
from tests.helpers.catalogs import base_remediation, make_catalog
from tests.helpers.counting import CountedCalls
from tests.unit.test_campaigns_support import CampaignWorld, make_compute, request


def ordered(world: CampaignWorld, campaign_id: str) -> list[Job]:
    return sorted(world.services.store.list(campaign_id=campaign_id), key=lambda j: j.campaign_index or 0)


PATHS = {
    jobs.SUCCEEDED: (jobs.DISPATCHING, jobs.RUNNING, jobs.VERIFYING, jobs.SUCCEEDED),
    jobs.FAILED: (jobs.DISPATCHING, jobs.FAILED),
    jobs.TIMED_OUT: (jobs.DISPATCHING, jobs.RUNNING, jobs.TIMED_OUT),
    jobs.SKIPPED: (jobs.SKIPPED,),
    jobs.DISPATCHING: (jobs.DISPATCHING,),
}


def end(world: CampaignWorld, job: Job, status: str) -> Job:
    """Move the job along its path to ``status``, as the runner would."""
    store = world.services.store
    current = store.get(job.id)
    for step in PATHS[status]:
        current = store.update(
            jobs.transition(current, step, now=world.clock.now(), actor="t", reason=f"to {step}")
        )
    return current


def queued(world: CampaignWorld) -> list[str]:
    queue = world.services.queue
    assert isinstance(queue, InProcessQueue)
    messages = queue.receive(max_messages=100)
    for message in messages:
        queue.delete(message)
    return [m.job_id for m in messages]


def test_an_ending_job_reads_the_record_once_and_lists_nothing(tmp_path: Path) -> None:
    world = CampaignWorld(tmp_path, make_compute(20))
    started = campaigns.start_campaign(world.services, request(maxConcurrency=5, maxErrors=3), actor="a")
    chain = ordered(world, started["id"])
    queued(world)
    counting = CountedCalls(world.services.store)
    world.services.store = counting  # type: ignore[assignment]

    for job in chain[:5]:
        campaigns.on_job_finished(world.services, end(world, job, jobs.SUCCEEDED))

    assert counting.calls["get_campaign"] == 5
    assert counting.calls["list"] == counting.calls["update_campaign"] == counting.calls["get_many"] == 0
    assert queued(world) == [job.id for job in chain[5:10]]


def test_a_failure_is_counted_once_however_often_its_end_is_delivered(tmp_path: Path) -> None:
    world = CampaignWorld(tmp_path, make_compute(10))
    started = campaigns.start_campaign(world.services, request(maxConcurrency=2, maxErrors=1), actor="a")
    chain = ordered(world, started["id"])
    failed = end(world, chain[0], jobs.FAILED)

    for _ in range(3):
        campaigns.on_job_finished(world.services, failed)

    record = world.services.store.get_campaign(started["id"])
    assert (record["status"], record["failedCount"]) == (campaigns.RUNNING, 1)
    shown = campaigns.campaign_status(world.services, started["id"])
    assert "failedBitmap" not in shown and "failedCount" not in shown
    assert shown["counts"]["failed"] == 1
    # The second distinct failure is one more than maxErrors 1 allows: the campaign stops.
    campaigns.on_job_finished(world.services, end(world, chain[1], jobs.TIMED_OUT))
    record = world.services.store.get_campaign(started["id"])
    assert record["status"] == campaigns.STOPPED
    assert record["stopReason"] == "2 VM(s) failed, more than the 1 allowed (maxErrors 1)"
    left = {j.status for j in world.services.store.list(campaign_id=started["id"])} - {
        jobs.FAILED,
        jobs.TIMED_OUT,
    }
    assert left == {jobs.CANCELLED}


def test_a_failing_job_past_the_budget_releases_nothing(tmp_path: Path) -> None:
    world = CampaignWorld(tmp_path, make_compute(6))
    started = campaigns.start_campaign(world.services, request(maxConcurrency=2, maxErrors=0), actor="a")
    chain = ordered(world, started["id"])
    queued(world)
    end(world, chain[1], jobs.DISPATCHING)

    campaigns.on_job_finished(world.services, end(world, chain[0], jobs.FAILED))

    assert queued(world) == []
    assert world.services.store.get(chain[2].id).status == jobs.CANCELLED
    assert world.services.store.get(chain[1].id).status == jobs.DISPATCHING
    assert world.services.store.get_campaign(started["id"])["status"] == campaigns.STOPPING  # chain[1] is out


def test_with_an_unlimited_budget_failures_never_write_the_record(tmp_path: Path) -> None:
    world = CampaignWorld(tmp_path, make_compute(4))
    started = campaigns.start_campaign(world.services, request(maxConcurrency=2, maxErrors="100%"), actor="a")
    before = world.services.store.get_campaign(started["id"])
    chain = ordered(world, started["id"])
    queued(world)

    campaigns.on_job_finished(world.services, end(world, chain[0], jobs.FAILED))

    assert world.services.store.get_campaign(started["id"]) == before
    assert queued(world) == [chain[2].id]


def test_the_last_job_of_a_chain_completes_the_campaign_only_when_nothing_is_left(tmp_path: Path) -> None:
    world = CampaignWorld(tmp_path, make_compute(4))
    started = campaigns.start_campaign(world.services, request(maxConcurrency=2), actor="a")
    chain = ordered(world, started["id"])
    for job in chain[:2]:
        campaigns.on_job_finished(world.services, end(world, job, jobs.SUCCEEDED))

    # chain[3] ends first: chain[2], in the other chain, has not.
    campaigns.on_job_finished(world.services, end(world, chain[3], jobs.SUCCEEDED))
    assert world.services.store.get_campaign(started["id"])["status"] == campaigns.RUNNING
    campaigns.on_job_finished(world.services, end(world, chain[2], jobs.SKIPPED))

    record = world.services.store.get_campaign(started["id"])
    assert record["status"] == campaigns.COMPLETED
    assert record["endedAt"] == world.clock.now().isoformat()


def test_the_sweeper_resends_a_lost_release_only_after_resend_after(tmp_path: Path) -> None:
    world = CampaignWorld(tmp_path, make_compute(4))
    started = campaigns.start_campaign(world.services, request(maxConcurrency=1), actor="a")
    chain = ordered(world, started["id"])
    queued(world)
    end(world, chain[0], jobs.SUCCEEDED)  # the worker died before it released chain[1]

    campaigns.tick(world.services, started["id"])
    assert queued(world) == []
    world.clock.advance(campaigns.RESEND_AFTER.total_seconds())
    status = campaigns.tick(world.services, started["id"])

    assert queued(world) == [chain[1].id]
    assert (status["counts"]["inFlight"], status["counts"]["planned"]) == (1, 2)


def test_first_jobs_lost_at_the_start_are_sent_by_the_sweeper(tmp_path: Path) -> None:
    world = CampaignWorld(tmp_path, make_compute(5))
    started = campaigns.start_campaign(world.services, request(maxConcurrency=2), actor="a")
    queued(world)  # the start's messages are lost
    world.clock.advance(campaigns.RESEND_AFTER.total_seconds())

    campaigns.tick(world.services, started["id"])

    assert queued(world) == [j.id for j in ordered(world, started["id"])[:2]]


def test_the_sweeper_completes_a_campaign_whose_last_job_ended_unreported(tmp_path: Path) -> None:
    world = CampaignWorld(tmp_path, make_compute(2))
    started = campaigns.start_campaign(world.services, request(maxConcurrency=2), actor="a")
    for job in ordered(world, started["id"]):
        end(world, job, jobs.SUCCEEDED)

    assert campaigns.tick(world.services, started["id"])["status"] == campaigns.COMPLETED


def test_the_sweeper_stops_a_campaign_whose_failures_were_never_counted(tmp_path: Path) -> None:
    world = CampaignWorld(tmp_path, make_compute(6))
    started = campaigns.start_campaign(world.services, request(maxConcurrency=3, maxErrors=1), actor="a")
    chain = ordered(world, started["id"])
    for job in chain[:2]:
        end(world, job, jobs.FAILED)  # workers died before they reported
    end(world, chain[2], jobs.SUCCEEDED)

    status = campaigns.tick(world.services, started["id"])

    assert status["status"] == campaigns.STOPPED
    assert status["stopReason"].startswith("2 VM(s) failed, more than the 1 allowed")
    assert status["counts"]["cancelled"] == 3


def test_a_job_awaiting_approval_holds_its_slot(tmp_path: Path) -> None:
    world = CampaignWorld(tmp_path, make_compute(5))
    catalog = make_catalog(tmp_path / "approval-catalog", base_remediation(approval="required"))
    world.settings = replace(world.settings, catalog_dir=str(catalog))
    world.services = world.new_services()
    started = campaigns.start_campaign(world.services, request(maxConcurrency=2, maxErrors=0), actor="alice")

    waiting = drive(world.services, started["id"])

    assert waiting["status"] == campaigns.RUNNING
    assert (waiting["counts"]["inFlight"], waiting["counts"]["planned"]) == (2, 3)
    chain = ordered(world, started["id"])
    assert [j.status for j in chain[:2]] == [jobs.AWAITING_APPROVAL] * 2
    store, queue, clock = world.services.store, world.services.queue, world.services.clock
    operations.approve(store, queue, clock, chain[0].id, actor="bob")

    after = drive(world.services, started["id"])

    assert store.get(chain[0].id).status == jobs.SUCCEEDED
    assert store.get(chain[2].id).status == jobs.AWAITING_APPROVAL  # released into the freed slot only
    assert (after["counts"]["inFlight"], after["counts"]["planned"]) == (2, 2)
    assert len(world.compute.requests) == 1


def test_an_approval_that_runs_out_in_the_sweeper_releases_the_next_job(tmp_path: Path) -> None:
    from autoremediation import sweeper

    world = CampaignWorld(tmp_path, make_compute(3))
    catalog = make_catalog(tmp_path / "approval-catalog", base_remediation(approval="required"))
    world.settings = replace(world.settings, catalog_dir=str(catalog))
    world.services = world.new_services()
    started = campaigns.start_campaign(world.services, request(maxConcurrency=1, maxErrors=0), actor="alice")
    drive(world.services, started["id"])
    chain = ordered(world, started["id"])
    assert chain[0].status == jobs.AWAITING_APPROVAL
    world.clock.advance(30 * 24 * 3600)  # far past any approval window
    services = world.services

    report = sweeper.sweep(
        services.store,
        services.queue,
        services.clock,
        sweeper.SweepPolicy.from_settings(services.settings),
        advance=services.runner.advance,
        ended=lambda job: campaigns.on_job_finished(services, job),
    )

    assert report.expired == (chain[0].id,)
    assert queued(world) == [chain[1].id]


def test_resume_sends_the_released_jobs_at_once(tmp_path: Path) -> None:
    world = CampaignWorld(tmp_path, make_compute(5))
    started = campaigns.start_campaign(world.services, request(maxConcurrency=2), actor="a")
    chain = ordered(world, started["id"])
    queued(world)  # the process that started it died with its queue
    end(world, chain[0], jobs.SUCCEEDED)  # ... after one job ended, before it released the next

    campaigns.resume(world.services, started["id"])

    assert sorted(queued(world)) == sorted([chain[1].id, chain[2].id])


def test_a_campaign_started_before_release_by_chain_still_runs_within_its_cap(tmp_path: Path) -> None:
    world = CampaignWorld(tmp_path, make_compute(7))
    started = campaigns.start_campaign(world.services, request(maxConcurrency=2), actor="a")
    store = world.services.store
    heads = queued(world)
    # What an earlier version left: jobs without a place in a chain, the record's ``releasing`` map.
    for job in store.list(campaign_id=started["id"]):
        store.update(replace(job, campaign_index=None, releases=None))
    record = store.get_campaign(started["id"])
    stamp = world.clock.now().isoformat()
    store.update_campaign({**record, "releasing": dict.fromkeys(heads, stamp)})
    world.clock.advance(campaigns.RESEND_AFTER.total_seconds())

    campaigns.tick(world.services, started["id"])  # the sweeper: the two released are sent again, no more
    assert sorted(queued(world)) == sorted(heads)
    for job_id in heads:
        world.services.queue.send(job_id)
    status = drive(world.services, started["id"])

    assert status["status"] == campaigns.COMPLETED
    assert status["counts"]["succeeded"] == 7
    assert world.compute.peak == 2
    assert set(world.compute.runs_per_vm().values()) == {1}


def test_an_operator_cancelling_a_job_not_yet_started_releases_nothing_early(tmp_path: Path) -> None:
    from autoremediation.campaign_chain import on_operator_end

    world = CampaignWorld(tmp_path, make_compute(6))
    started = campaigns.start_campaign(world.services, request(maxConcurrency=2, maxErrors=3), actor="a")
    chain = ordered(world, started["id"])
    assert sorted(queued(world)) == sorted(j.id for j in chain[:2])
    # Job 2 waits for job 0; an operator cancels it (what `remediate cancel` does, then its hook).
    cancelled = operations.cancel(world.services.store, world.services.clock, chain[2].id, actor="op")
    on_operator_end(world.services, cancelled)
    assert queued(world) == []  # jobs 0 and 1 still hold both slots: job 4 must wait
    # Job 0 ends: its message goes to the cancelled job 2, whose end passes the slot on to job 4.
    ended = end(world, chain[0], jobs.SUCCEEDED)
    campaigns.on_job_finished(world.services, ended)
    assert queued(world) == [chain[2].id]
    campaigns.on_job_finished(world.services, world.services.store.get(chain[2].id))
    assert queued(world) == [chain[4].id]


def test_an_operator_rejecting_a_job_that_held_its_slot_releases_the_next_at_once(tmp_path: Path) -> None:
    from autoremediation.campaign_chain import on_operator_end

    world = CampaignWorld(tmp_path, make_compute(6))
    started = campaigns.start_campaign(world.services, request(maxConcurrency=2, maxErrors=3), actor="a")
    chain = ordered(world, started["id"])
    queued(world)
    store, now = world.services.store, world.services.clock.now()
    waiting = store.update(
        jobs.transition(chain[0], jobs.AWAITING_APPROVAL, now=now, actor="worker", reason="risky")
    )
    ended = operations.reject(store, world.services.clock, waiting.id, actor="op", reason="no")
    on_operator_end(world.services, ended)
    assert queued(world) == [chain[2].id]
