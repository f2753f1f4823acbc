"""Job records: what a new job says about itself, and a stored record read back whole."""

from __future__ import annotations

from datetime import UTC, datetime

from autoremediation import jobs
from autoremediation.jobs import Job, Transition

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def fresh(**kw: object) -> Job:
    values: dict = dict(
        idempotency_key="alert|a-1|fired|vm1|free-disk-space",
        remediation="free-disk-space",
        condition="disk-full",
        target="/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1",
        parameters={"mountPoint": "/var"},
        now=NOW,
    )
    values.update(kw)
    return jobs.new_job(**values)


def test_a_new_job_is_planned_by_the_system_unless_someone_is_named() -> None:
    job = fresh()
    assert (job.requested_by, job.reason, job.status) == ("system", "", jobs.PLANNED)
    assert (job.created_at, job.updated_at) == (NOW.isoformat(), NOW.isoformat())
    assert job.history == (Transition(NOW.isoformat(), None, jobs.PLANNED, "system", "planned"),)
    assert (job.idempotency_key, job.condition) == ("alert|a-1|fired|vm1|free-disk-space", "disk-full")
    assert job.id == jobs.job_id_for(job.idempotency_key)


def test_a_new_job_keeps_who_asked_why_and_the_extra_fields() -> None:
    job = fresh(actor="alice", reason="disk at 97%", campaign_id="camp-1", dry_run=True)
    assert (job.requested_by, job.reason, job.campaign_id, job.dry_run) == (
        "alice",
        "disk at 97%",
        "camp-1",
        True,
    )
    assert job.history[0].actor == "alice"
    assert job.history[0].reason == "disk at 97%"


def test_job_ids_are_stable_for_any_text_key() -> None:
    assert jobs.job_id_for("manual|req-ü|vm1") == jobs.job_id_for("manual|req-ü|vm1")
    assert jobs.job_id_for("manual|req-ü|vm1").startswith("job-")
    assert len(jobs.job_id_for("x")) == len("job-") + 24


def test_a_record_survives_a_round_trip_through_its_dict() -> None:
    job = jobs.note(
        jobs.transition(
            fresh(evidence={"rule": "deny-ssh"}),
            jobs.DISPATCHING,
            now=NOW,
            actor="worker",
            reason="go",
            run={"name": "remediate-1"},
            outcome={"controlPlane": {}},
        ),
        "the alert resolved",
        now=NOW,
    )
    data = job.to_dict()
    assert data["notes"] == [f"{NOW.isoformat()} the alert resolved"]
    assert [t["target"] for t in data["history"]] == [jobs.PLANNED, jobs.DISPATCHING]
    assert Job.from_dict(data) == job


def test_a_sparse_record_reads_back_with_empty_collections_and_ignores_unknown_fields() -> None:
    data = fresh().to_dict()
    data.update(parameters=None, run=None, outcome=None, evidence=None, notes=None, futureField=1)
    job = Job.from_dict(data)
    assert (job.parameters, job.run, job.outcome, job.evidence, job.notes) == ({}, {}, {}, {}, ())
    evidence = fresh(evidence={"rule": "deny-ssh"}).to_dict()
    assert Job.from_dict(evidence).evidence == {"rule": "deny-ssh"}
