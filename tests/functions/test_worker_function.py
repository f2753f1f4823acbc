"""The ``dispatch_worker`` queue trigger, fed the messages the intake queued."""

from __future__ import annotations

import pytest

from autoremediation import jobs
from tests.functions.conftest import Engine, call, http, json_of, queue_message, sample


def manual_job(engine: Engine) -> str:
    response = call("remediations_create", http("POST", "remediations", sample("manual-request.json")))
    job_id: str = json_of(response)["jobIds"][0]
    return job_id


def test_the_worker_runs_a_job_to_its_verified_outcome(engine: Engine) -> None:
    job_id = manual_job(engine)

    for _ in range(20):
        due = engine.queue.due_in()
        if due is None:
            break
        engine.clock.advance(due)
        for queued_id in engine.queued():
            engine.deliver(queued_id)

    job = engine.store.get(job_id)
    assert job.status == jobs.SUCCEEDED
    assert job.outcome["exitCode"] == 0
    assert job.outcome["verified"] is True
    assert [t.target for t in job.history] == [
        jobs.PLANNED,
        jobs.DISPATCHING,
        jobs.RUNNING,
        jobs.VERIFYING,
        jobs.SUCCEEDED,
    ]
    assert engine.compute.executions  # the script ran once per dispatch
    assert sum(engine.compute.executions.values()) == 1


@pytest.mark.parametrize("body", [b"garbage", b'{"jobId": "../etc"}', b"\xff\xfe", b"{}", b""])
def test_a_malformed_message_is_dropped_not_retried(engine: Engine, body: bytes) -> None:
    job_id = manual_job(engine)
    engine.queued()

    assert call("dispatch_worker", queue_message(body)) is None

    assert engine.store.get(job_id).status == jobs.PLANNED
    assert engine.queued() == []


def test_a_message_for_a_job_that_is_gone_is_dropped(engine: Engine) -> None:
    assert call("dispatch_worker", queue_message({"jobId": "job-000000000000000000000000"})) is None
    assert engine.queued() == []


def test_a_failing_step_is_retried_by_the_host_until_the_last_delivery(engine: Engine) -> None:
    job_id = manual_job(engine)
    engine.queued()
    engine.compute.errors["get_vm"] = [RuntimeError("ARM client crashed")] * 2

    with pytest.raises(RuntimeError):
        engine.deliver(job_id, dequeue_count=4)
    assert engine.store.get(job_id).status == jobs.PLANNED

    engine.deliver(job_id, dequeue_count=5)

    job = engine.store.get(job_id)
    assert job.status == jobs.FAILED
    assert "failed 5 times" in job.history[-1].reason
    assert "ARM client crashed" in job.history[-1].reason
    assert engine.queued() == []
