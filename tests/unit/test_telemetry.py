"""One flat outcome event per job transition, announced once per write; Azure Monitor wired only when set."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from autoremediation import jobs, telemetry
from autoremediation.errors import ConcurrencyConflict
from autoremediation.settings import Settings
from autoremediation.store.observed import ObservedJobStore
from autoremediation.store.sqlite import SqliteJobStore
from tests.helpers.catalogs import REPO

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
VM = "/subscriptions/s/resourceGroups/r/providers/Microsoft.Compute/virtualMachines/v-01"


def make_job(**extra: object) -> jobs.Job:
    return jobs.new_job(
        idempotency_key="k",
        remediation="free-disk-space",
        condition="disk-full",
        target=VM,
        parameters={},
        now=NOW,
        **{"campaign_id": "c-1", **extra},
    )


def test_transition_event_fields_are_flat_and_named() -> None:
    job = jobs.transition(make_job(), jobs.SKIPPED, now=NOW, actor="worker", reason="opt-in: no tag")
    event = telemetry.transition_event(job, job.history[-1])
    assert (event["from"], event["to"], event["actor"], event["reason"], event["guard"]) == (
        "planned",
        "skipped",
        "worker",
        "opt-in: no tag",
        "opt-in",
    )
    assert (event["jobId"], event["campaignId"], event["vmName"], event["dryRun"]) == (
        job.id,
        "c-1",
        "v-01",
        "false",
    )
    assert all(isinstance(v, (str, int, float)) for v in event.values())
    assert set(event) <= set(telemetry.EVENT_FIELDS)


def test_a_reason_that_merely_contains_a_colon_names_no_guard() -> None:
    job = jobs.transition(make_job(), jobs.SKIPPED, now=NOW, actor="op", reason="note: skipped by hand")
    assert "guard" not in telemetry.transition_event(job, job.history[-1])
    running = jobs.transition(make_job(), jobs.DISPATCHING, now=NOW, actor="worker", reason="opt-in: x")
    assert "guard" not in telemetry.transition_event(running, running.history[-1])


def test_terminal_event_carries_the_outcome_and_an_earlier_one_does_not() -> None:
    job = jobs.transition(make_job(dry_run=True), jobs.DISPATCHING, now=NOW, actor="worker", reason="ok")
    job = jobs.transition(job, jobs.RUNNING, now=NOW, actor="worker", reason="started")
    job = jobs.transition(job, jobs.VERIFYING, now=NOW, actor="worker", reason="ended")
    job = jobs.transition(
        job,
        jobs.SUCCEEDED,
        now=NOW,
        actor="worker",
        reason="fixed",
        outcome={"exitCode": 0, "verification": "fixed", "runSeconds": 4.5},
    )
    last = telemetry.transition_event(job, job.history[-1])
    assert (last["exitCode"], last["verdict"], last["runSeconds"], last["dryRun"]) == (
        0,
        "fixed",
        4.5,
        "true",
    )
    earlier = telemetry.transition_event(job, job.history[-2])
    assert "exitCode" not in earlier and earlier["to"] == "verifying"
    assert set(last) == set(telemetry.EVENT_FIELDS) - {"guard"}


def test_emit_logs_a_custom_event_record(caplog: pytest.LogCaptureFixture) -> None:
    job = jobs.transition(make_job(), jobs.DISPATCHING, now=NOW, actor="worker", reason="guards passed")
    with caplog.at_level(logging.INFO, logger="autoremediation.outcome"):
        telemetry.emit_transition(job, job.history[-1])
    [record] = caplog.records
    assert getattr(record, telemetry.CUSTOM_EVENT_ATTRIBUTE) == telemetry.EVENT_NAME
    assert record.remediation == "free-disk-space" and record.to == "dispatching"  # type: ignore[attr-defined]
    assert not hasattr(record, "custom_dimensions")
    assert json.loads(record.getMessage())["to"] == "dispatching"


def test_no_connection_string_means_no_exporter() -> None:
    code = (
        "import sys; from autoremediation import telemetry; from autoremediation.settings import Settings;"
        "print(telemetry.configure(Settings()), any(m.startswith('azure.monitor') for m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert done.stdout.split() == ["False", "False"]
    assert telemetry.configure(Settings()) is False


# -- the store announces each transition once, after its write ---------------------------------------


@pytest.fixture
def observed(tmp_path) -> tuple[ObservedJobStore, list[tuple[str, str | None, str]]]:
    seen: list[tuple[str, str | None, str]] = []
    store = ObservedJobStore(
        SqliteJobStore(str(tmp_path / "jobs.db")), lambda job, t: seen.append((job.id, t.source, t.target))
    )
    return store, seen


def test_create_announces_planned_once_and_a_duplicate_nothing(observed) -> None:
    store, seen = observed
    job, created = store.create(make_job())
    _, created_again = store.create(make_job())
    assert (created, created_again) == (True, False)
    assert seen == [(job.id, None, "planned")]


def test_each_write_announces_only_what_it_added(observed) -> None:
    store, seen = observed
    job, _ = store.create(make_job())
    job = store.update(jobs.transition(job, jobs.DISPATCHING, now=NOW, actor="w", reason="ok"))
    job = store.update(jobs.note(job, "a remark", now=NOW + timedelta(seconds=1)))  # no transition
    job = store.update(jobs.transition(job, jobs.RUNNING, now=NOW, actor="w", reason="started"))
    verifying = jobs.transition(job, jobs.VERIFYING, now=NOW, actor="w", reason="ended")
    store.update(jobs.transition(verifying, jobs.SUCCEEDED, now=NOW, actor="w", reason="fixed"))
    assert [s[2] for s in seen] == ["planned", "dispatching", "running", "verifying", "succeeded"]


def test_a_write_that_loses_the_swap_announces_nothing(observed) -> None:
    store, seen = observed
    job, _ = store.create(make_job())
    store.update(jobs.transition(job, jobs.DISPATCHING, now=NOW, actor="w", reason="first"))
    with pytest.raises(ConcurrencyConflict):
        store.update(jobs.transition(job, jobs.SKIPPED, now=NOW, actor="w", reason="second"))
    assert [s[2] for s in seen] == ["planned", "dispatching"]


def test_a_job_read_elsewhere_falls_back_to_the_transitions_of_the_write(tmp_path) -> None:
    inner = SqliteJobStore(str(tmp_path / "jobs.db"))
    job, _ = inner.create(make_job())
    seen: list[str] = []
    store = ObservedJobStore(inner, lambda j, t: seen.append(t.target))
    later = NOW + timedelta(minutes=1)
    store.update(jobs.transition(job, jobs.DISPATCHING, now=later, actor="w", reason="ok"))
    assert seen == ["dispatching"]


def test_an_announcer_that_fails_does_not_fail_the_write(tmp_path) -> None:
    def broken(job: jobs.Job, transition: jobs.Transition) -> None:
        raise RuntimeError("exporter down")

    store = ObservedJobStore(SqliteJobStore(str(tmp_path / "jobs.db")), broken)
    job, _ = store.create(make_job())
    saved = store.update(jobs.transition(job, jobs.DISPATCHING, now=NOW, actor="w", reason="ok"))
    assert store.get(job.id).status == jobs.DISPATCHING and saved.version == job.version + 1


def test_every_guard_the_policy_can_name_is_known_to_telemetry() -> None:
    """Read from policy.py itself, so a new guard cannot silently lose its ``guard`` dimension."""
    import re

    from autoremediation import policy

    named = set(re.findall(r'_skip\(\s*"([a-z-]+)"', Path(policy.__file__).read_text(encoding="utf-8")))
    assert "circuit-breaker" in named and "opt-in" in named
    assert named <= telemetry.GUARDS, named - telemetry.GUARDS
