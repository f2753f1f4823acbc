from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from autoremediation import jobs
from autoremediation.errors import InvalidTransition

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def make(**kw) -> jobs.Job:
    values = dict(
        idempotency_key="alert|a1|fired|vm|free-disk-space",
        remediation="free-disk-space",
        condition="disk-full",
        target="/subscriptions/S/resourceGroups/R/providers/Microsoft.Compute/virtualMachines/VM1/",
        parameters={"mountPoint": "/var"},
        now=NOW,
    )
    values.update(kw)
    return jobs.new_job(**values)


def test_id_is_derived_from_the_idempotency_key() -> None:
    assert make().id == make().id
    assert make().id != make(idempotency_key="other").id
    assert make().id.startswith("job-") and len(make().id) == 28
    assert jobs.run_name_for(make().id) == "remediate-" + make().id[4:]
    assert jobs.run_name_for(make().id, 1).endswith("-1")


def test_new_job_is_planned_with_history() -> None:
    job = make(actor="alert", reason="disk full")
    assert job.status == jobs.PLANNED and not job.terminal
    assert job.history[0].target == jobs.PLANNED and job.history[0].actor == "alert"
    assert (
        job.target_key == "/subscriptions/s/resourcegroups/r/providers/microsoft.compute/virtualmachines/vm1"
    )


def test_transitions_record_who_when_why() -> None:
    job = jobs.transition(
        make(),
        jobs.DISPATCHING,
        now=NOW + timedelta(seconds=5),
        actor="worker",
        reason="guards passed",
        attempts=1,
    )
    assert job.status == jobs.DISPATCHING and job.attempts == 1
    last = job.history[-1]
    assert (last.source, last.target, last.actor, last.reason) == (
        "planned",
        "dispatching",
        "worker",
        "guards passed",
    )
    assert job.updated_at == (NOW + timedelta(seconds=5)).isoformat()


@pytest.mark.parametrize(
    ("path", "ok"),
    [
        ([jobs.AWAITING_APPROVAL, jobs.DISPATCHING, jobs.RUNNING, jobs.VERIFYING, jobs.SUCCEEDED], True),
        ([jobs.DISPATCHING, jobs.RUNNING, jobs.TIMED_OUT], True),
        ([jobs.AWAITING_APPROVAL, jobs.EXPIRED], True),
        ([jobs.SKIPPED], True),
        ([jobs.RUNNING], False),
        ([jobs.DISPATCHING, jobs.SUCCEEDED], False),
        ([jobs.SKIPPED, jobs.DISPATCHING], False),
        ([jobs.DISPATCHING, jobs.RUNNING, jobs.VERIFYING, jobs.SUCCEEDED, jobs.FAILED], False),
        ([jobs.CANCELLED, jobs.PLANNED], False),
    ],
)
def test_allowed_paths(path, ok) -> None:
    job = make()
    try:
        for state in path:
            job = jobs.transition(job, state, now=NOW, actor="t", reason="r")
    except InvalidTransition as error:
        assert not ok, error
        assert "cannot go from" in str(error)
    else:
        assert ok
        assert [t.target for t in job.history] == [jobs.PLANNED, *path]


def test_terminal_states_allow_nothing() -> None:
    for state in jobs.TERMINAL:
        assert not jobs.ALLOWED.get(state)


def test_round_trip_through_dict() -> None:
    job = jobs.transition(
        make(), jobs.DISPATCHING, now=NOW, actor="w", reason="r", run={"name": "x"}, outcome={"exitCode": 0}
    )
    job = jobs.note(job, "alert resolved", now=NOW)
    again = jobs.Job.from_dict(job.to_dict())
    assert again == job
    assert again.notes[0].endswith("alert resolved")


def test_public_json_is_camel_case_and_a_dry_run_never_reads_succeeded() -> None:
    job = make()
    data = job.to_json()
    assert {"idempotencyKey", "createdAt", "updatedAt", "dryRun", "requestedBy", "retryOf"} <= set(data)
    assert not [key for key in data if "_" in key]
    now = datetime(2026, 1, 1, tzinfo=UTC)
    done = job
    for status in (jobs.DISPATCHING, jobs.RUNNING, jobs.VERIFYING, jobs.SUCCEEDED):
        done = jobs.transition(done, status, now=now, actor="w", reason="r")
    assert jobs.outcome_kind(done) == "succeeded"
    from dataclasses import replace

    assert jobs.outcome_kind(replace(done, dry_run=True)) == "dry-run"
    assert jobs.outcome_kind(replace(job, dry_run=True)) == "planned"
    assert replace(done, dry_run=True).to_json()["outcomeKind"] == "dry-run"


def test_only_planned_waiting_and_running_jobs_can_be_cancelled() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    job = make()
    assert jobs.cancel(job, now=now, actor="op", reason="stop").status == jobs.CANCELLED
    for path in ([jobs.DISPATCHING, jobs.RUNNING, jobs.VERIFYING], [jobs.SKIPPED]):
        moved = job
        for status in path:
            moved = jobs.transition(moved, status, now=now, actor="w", reason="r")
        with pytest.raises(InvalidTransition):
            jobs.cancel(moved, now=now, actor="op", reason="stop")
    assert {jobs.PLANNED, jobs.AWAITING_APPROVAL, jobs.DISPATCHING, jobs.RUNNING} == jobs.CANCELLABLE
    assert jobs.retry_key(job) == f"retry|{job.id}"
