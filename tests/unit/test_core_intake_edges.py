"""Intake edges: what each job records about its signal, and the Resolved lifecycle under contention."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from autoremediation import jobs
from autoremediation.catalog import Catalog
from autoremediation.catalog_load import load_catalog
from autoremediation.errors import ConcurrencyConflict
from autoremediation.intake import Intake, IntakeResult
from autoremediation.jobs import Job
from autoremediation.planning import Planner, PlanReport
from autoremediation.resources import VmRef
from autoremediation.routing import Route
from autoremediation.signals.model import ManualRequest, Signal
from autoremediation.store.memory_queue import InProcessQueue, ManualClock
from autoremediation.store.sqlite import SqliteJobStore
from tests.helpers.catalogs import make_catalog
from tests.helpers.fakes import TrustingGate, vm_id

DISK_ROUTE = Route(
    name="disk-full",
    match={"source": "alert", "rule": "disk-*"},
    condition="disk-full",
    remediation="free-disk-space",
    parameters={"mountPoint": {"dimensions": ["Mount"]}},
)


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
    def __init__(self, tmp_path: Path, catalog: Catalog) -> None:
        self.catalog = catalog
        self.clock = ManualClock()
        self.store = SqliteJobStore(str(tmp_path / "jobs.db"))
        self.queue = InProcessQueue(self.clock)
        self.planner = Planner(self.catalog, (DISK_ROUTE,), gate=TrustingGate())
        self.intake = Intake(self.planner, self.store, self.queue, self.clock)

    def with_store(self, store: Any) -> Intake:
        return Intake(self.planner, store, self.queue, self.clock)

    def queued(self) -> list[str]:
        return [m.job_id for m in self.queue.receive(max_messages=32)]


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    return load_catalog(make_catalog(tmp_path_factory.mktemp("catalog")))


@pytest.fixture
def desk(tmp_path: Path, catalog: Catalog) -> Desk:
    return Desk(tmp_path, catalog)


def disk_alert(state: str = "fired", mounts: tuple[str, ...] = ("/var",), alert: str = "a-1") -> Signal:
    target = VmRef.parse(vm_id("vm1"))
    assert target is not None
    return Signal(
        id=f"/subscriptions/x/providers/Microsoft.AlertsManagement/alerts/{alert}",
        source="alert",
        type="Log Alerts V2",
        state=state,  # type: ignore[arg-type]
        targets=(target,),
        rule="disk-free-low",
        dimensions=tuple({"_ResourceId": vm_id("vm1"), "Mount": m} for m in mounts),
    )


def manual_signal(*, reason: str = "disk at 97%", dry_run: bool = True, **parameters: str) -> Signal:
    target = VmRef.parse(vm_id("vm1"))
    assert target is not None
    return Signal(
        id="req-7",
        source="manual",
        type="manual",
        targets=(target,),
        manual=ManualRequest(
            remediation="free-disk-space",
            parameters=parameters,
            reason=reason,
            dry_run=dry_run,
            request_id="req-7",
            requested_by="alice@example.com",
        ),
    )


def test_a_manual_job_records_who_asked_why_and_for_which_campaign(desk: Desk) -> None:
    report = desk.planner.plan_signals([manual_signal(mountPoint="/data")])
    result = desk.intake.admit(report, actor="api", campaign_id="camp-1")

    job = desk.store.get(result.jobs[0].job.id)
    assert (job.requested_by, job.reason, job.campaign_id) == ("alice@example.com", "disk at 97%", "camp-1")
    assert (job.signal_id, job.signal_source, job.alert_id) == ("req-7", "manual", None)
    assert (job.remediation, job.condition, job.dry_run) == ("free-disk-space", "disk-full", True)
    assert job.parameters == {"mountPoint": "/data"}
    assert job.history[0].actor == "alice@example.com"
    assert desk.queued() == [job.id]


def test_submit_passes_actor_and_campaign_through(desk: Desk) -> None:
    payload = {
        "remediation": "free-disk-space",
        "targets": [vm_id("vm1")],
        "parameters": {},
        "reason": "weekly clean-up",
        "dryRun": False,
        "requestId": "req-9",
    }
    result = desk.intake.submit(payload, actor="bob", campaign_id="camp-2")
    job = desk.store.get(result.jobs[0].job.id)
    assert (job.campaign_id, job.reason, job.dry_run) == ("camp-2", "weekly clean-up", False)


def test_a_manual_job_without_a_reason_still_says_what_started_it(desk: Desk) -> None:
    result = desk.intake.admit(desk.planner.plan_signals([manual_signal(reason="")]), actor="api")
    assert desk.store.get(result.jobs[0].job.id).reason == "manual request"


def test_an_alert_job_records_the_alert_and_the_delivering_actor(desk: Desk) -> None:
    signal = disk_alert()
    result = desk.intake.admit(desk.planner.plan_signals([signal]), actor="alert-webhook")

    job = desk.store.get(result.jobs[0].job.id)
    assert job.requested_by == "alert-webhook"
    assert job.reason == "alert disk-free-low"
    assert (job.alert_id, job.signal_id, job.signal_source) == (signal.id.lower(), signal.id, "alert")
    assert job.dry_run is False
    assert job.campaign_id is None


def test_an_alert_without_a_rule_name_is_described_by_its_service(desk: Desk) -> None:
    signal = replace(disk_alert(), rule=None, custom_properties={"remediation": "free-disk-space"})
    result = desk.intake.admit(desk.planner.plan_signals([signal]), actor="alert-webhook")
    assert desk.store.get(result.jobs[0].job.id).reason == "alert Log Alerts V2"


@pytest.mark.parametrize(
    ("resource", "expected"),
    [(vm_id("vm1"), f"event Microsoft.Resources.ResourceActionSuccess on {vm_id('vm1')}"), (None, None)],
)
def test_an_event_job_names_the_event_type_and_resource(
    desk: Desk, resource: str | None, expected: Any
) -> None:
    target = VmRef.parse(vm_id("vm1"))
    assert target is not None
    signal = Signal(
        id="evt-1",
        source="event",
        type="Microsoft.Resources.ResourceActionSuccess",
        targets=(target,),
        resource_id=resource,
        custom_properties={"remediation": "free-disk-space"},
    )
    result = desk.intake.admit(desk.planner.plan_signals([signal]), actor="eventgrid")
    job = desk.store.get(result.jobs[0].job.id)
    assert job.reason == (expected or "event Microsoft.Resources.ResourceActionSuccess on -")
    assert (job.signal_source, job.alert_id) == ("event", None)


def test_evidence_of_the_finding_is_kept_on_the_job(desk: Desk) -> None:
    signal = disk_alert()
    plan_report = desk.planner.plan_signals([signal])
    plan = plan_report.plans[0]
    with_evidence = replace(plan, finding=replace(plan.finding, evidence={"rule": "deny-ssh"}))
    result = desk.intake.admit(replace(plan_report, plans=(with_evidence,)), actor="x")
    assert desk.store.get(result.jobs[0].job.id).evidence == {"rule": "deny-ssh"}


def test_a_plan_skipped_before_azure_is_recorded_skipped_and_never_queued(desk: Desk) -> None:
    report = desk.planner.plan_signals([manual_signal(targetFreePercent="99")])
    result = desk.intake.admit(report, actor="api")

    admitted = result.jobs[0]
    assert admitted.created is True
    job = desk.store.get(admitted.job.id)
    assert job.status == jobs.SKIPPED
    assert job.history[-1].actor == "api"
    assert job.history[-1].reason.startswith("parameters: parameter 'targetFreePercent': 99 is above")
    assert desk.queued() == []
    # A duplicate delivery finds the same job and says it did not create it.
    again = desk.intake.admit(report, actor="api")
    assert (again.jobs[0].job.id, again.jobs[0].created) == (job.id, False)


def _two_vm_alert(state: str = "fired") -> Signal:
    # One alert, two VMs: a detector's findings (an NSG in front of several VMs) look like this.
    signal, second = disk_alert(state), VmRef.parse(vm_id("vm2"))
    assert second is not None
    row = {"_ResourceId": vm_id("vm2"), "Mount": "/data"}
    return replace(signal, targets=(*signal.targets, second), dimensions=(*signal.dimensions, row))


def test_one_alert_makes_one_job_per_vm_however_many_rows_it_has(desk: Desk) -> None:
    # Rows of one alert for one VM (20 mounts) are one job: the key is alert + VM + remediation +
    # condition, never the rows' values, so a repost with new values finds the same job.
    mounts = tuple(f"/m{i}" for i in range(20))
    first = desk.intake.admit(desk.planner.plan_signals([disk_alert(mounts=mounts)]), actor="alert")
    again = desk.intake.admit(desk.planner.plan_signals([disk_alert(mounts=("/other",))]), actor="alert")
    assert [a.created for a in first.jobs] == [True]
    assert [(a.job.id, a.created) for a in again.jobs] == [(first.jobs[0].job.id, False)]
    assert len(desk.store.list()) == 1


def test_a_resolved_with_another_spelling_of_the_alert_id_finds_the_job(desk: Desk) -> None:
    fired = desk.intake.admit(desk.planner.plan_signals([disk_alert()]), actor="alert")
    job_id = fired.jobs[0].job.id
    assert desk.store.get(job_id).alert_id == disk_alert().id.lower()
    respelled = replace(disk_alert("resolved"), id=disk_alert().id.upper() + "/", dimensions=())
    result = desk.intake.admit(desk.planner.plan_signals([respelled]), actor="alert-resolver")
    assert result.resolved == (job_id,) and desk.store.get(job_id).status == jobs.CANCELLED


def test_every_finding_of_a_resolved_alert_is_resolved_even_those_after_the_first(desk: Desk) -> None:
    desk.intake.admit(desk.planner.plan_signals([_two_vm_alert()]), actor="alert")
    manual = desk.planner.plan_signals([manual_signal(mountPoint="/srv")])
    resolved_report = desk.planner.plan_signals([_two_vm_alert("resolved")])
    # The manual plan comes after the resolved ones: it must still be admitted.
    result = desk.intake.admit(resolved_report + manual, actor="alert-resolver")

    assert len(result.resolved) == 2
    for job_id in result.resolved:
        job = desk.store.get(job_id)
        assert job.status == jobs.CANCELLED
        assert job.history[-1].actor == "alert-resolver"
        assert job.history[-1].reason == "the alert resolved before the remediation was dispatched"
        assert job.notes == ()  # cancelled once, not also noted as if it had been dispatched
    assert [a.job.remediation for a in result.jobs] == ["free-disk-space"]
    assert result.jobs[0].job.requested_by == "alice@example.com"


def test_resolved_before_fired_creates_the_job_cancelled_with_that_reason(desk: Desk) -> None:
    result = desk.intake.admit(desk.planner.plan_signals([disk_alert("resolved")]), actor="alert")
    job = desk.store.get(result.resolved[0])
    assert job.status == jobs.CANCELLED
    assert job.history[-1].reason == "the alert resolved before its Fired notification arrived"
    assert job.requested_by == "alert"
    # The late Fired finds that job and does nothing.
    fired = desk.intake.admit(desk.planner.plan_signals([disk_alert()]), actor="alert")
    assert (fired.jobs[0].job.id, fired.jobs[0].created) == (job.id, False)
    assert desk.queued() == []


def test_a_resolved_alert_also_cancels_its_jobs_that_no_finding_names_any_more(desk: Desk) -> None:
    fired = desk.intake.admit(desk.planner.plan_signals([disk_alert()]), actor="alert")
    other = desk.intake.admit(desk.planner.plan_signals([disk_alert(alert="a-2")]), actor="alert")
    resolved_signal = disk_alert("resolved")

    result = desk.intake.admit(PlanReport(signals=(resolved_signal,)), actor="resolver")

    assert result.resolved == (fired.jobs[0].job.id,)
    job = desk.store.get(fired.jobs[0].job.id)
    assert job.status == jobs.CANCELLED
    assert job.history[-1].actor == "resolver"
    assert job.history[-1].reason == "the alert resolved before the remediation was dispatched"
    # Another alert's job is not touched.
    assert desk.store.get(other.jobs[0].job.id).status == jobs.PLANNED
    assert result.report.signals == (resolved_signal,)


def test_a_dispatched_job_is_noted_once_however_often_the_alert_resolves(desk: Desk) -> None:
    fired = desk.intake.admit(desk.planner.plan_signals([disk_alert()]), actor="alert")
    job = desk.store.get(fired.jobs[0].job.id)
    desk.store.update(
        jobs.transition(job, jobs.DISPATCHING, now=desk.clock.now(), actor="worker", reason="go")
    )

    for _ in range(2):
        desk.intake.admit(desk.planner.plan_signals([disk_alert("resolved")]), actor="alert")
    job = desk.store.get(job.id)
    assert job.status == jobs.DISPATCHING
    assert [n.split(" ", 1)[1] for n in job.notes] == ["the alert resolved"]


def test_a_lost_swap_while_resolving_is_retried(desk: Desk) -> None:
    fired = desk.intake.admit(desk.planner.plan_signals([disk_alert()]), actor="alert")
    intake = desk.with_store(ConflictingStore(desk.store, conflicts=2))
    intake.admit(desk.planner.plan_signals([disk_alert("resolved")]), actor="alert")
    assert desk.store.get(fired.jobs[0].job.id).status == jobs.CANCELLED


def test_resolving_gives_up_with_the_job_named_when_every_swap_is_lost(desk: Desk) -> None:
    fired = desk.intake.admit(desk.planner.plan_signals([disk_alert()]), actor="alert")
    job_id = fired.jobs[0].job.id
    intake = desk.with_store(ConflictingStore(desk.store, conflicts=100))
    with pytest.raises(ConcurrencyConflict) as caught:
        intake.admit(desk.planner.plan_signals([disk_alert("resolved")]), actor="alert")
    assert str(caught.value) == f"job {job_id}: could not record the resolved alert"


def test_the_intake_answer_lists_jobs_and_resolved_jobs(desk: Desk) -> None:
    fired = desk.intake.admit(desk.planner.plan_signals([disk_alert()]), actor="alert")
    answer = fired.to_dict()
    job = fired.jobs[0].job
    assert answer["jobs"] == [
        {
            "id": job.id,
            "status": "planned",
            "target": vm_id("vm1"),
            "remediation": "free-disk-space",
            "created": True,
        }
    ]
    assert answer["resolvedJobs"] == []
    assert answer["plans"][0]["decision"] == "dispatch"
    resolved = desk.intake.admit(desk.planner.plan_signals([disk_alert("resolved")]), actor="alert")
    assert resolved.to_dict()["resolvedJobs"] == [job.id]
    assert IntakeResult(PlanReport()).to_dict() == {
        "signals": [],
        "plans": [],
        "notes": [],
        "jobs": [],
        "resolvedJobs": [],
    }
