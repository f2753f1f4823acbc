"""Plan like run: the runtime guards on fresh facts, and every guard that could not be read named."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from autoremediation import jobs
from autoremediation.catalog import Catalog
from autoremediation.catalog_load import load_catalog
from autoremediation.errors import Transient
from autoremediation.planning import Plan, PlanReport
from autoremediation.policy import Decision, GuardSettings
from autoremediation.preview import NO_JOBS, RUNTIME_GUARDS, static_only, with_runtime_guards
from autoremediation.resources import VmRef, normalize
from autoremediation.routing import Finding
from autoremediation.signals.model import Signal
from autoremediation.store.sqlite import SqliteJobStore
from tests.helpers.catalogs import make_catalog
from tests.helpers.fakes import FakeCompute, vm_facts, vm_id

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    return load_catalog(make_catalog(tmp_path_factory.mktemp("catalog")))


def plan_for(name: str, action: str = "dispatch") -> Plan:
    signal = Signal(id="a-1", source="alert", type="Platform", state="fired")
    finding = Finding(
        signal,
        "disk-full",
        "free-disk-space",
        VmRef.parse(vm_id(name)),
        {"mountPoint": "/var"},
        "disk-full",  # type: ignore[arg-type]
    )
    return Plan(finding, Decision(action, "static", "parameters" if action == "skip" else None))  # type: ignore[arg-type]


def preview(catalog: Catalog, compute: FakeCompute, store: Any = NO_JOBS, **guards: Any) -> Plan:
    report = PlanReport(plans=(plan_for("vm1"),))
    (result,) = with_runtime_guards(report, catalog, compute, store, GuardSettings(**guards), NOW).plans
    return result


def compute_with(**kw: Any) -> FakeCompute:
    compute = FakeCompute()
    compute.vms[normalize(vm_id("vm1"))] = vm_facts("vm1", **kw)
    return compute


@pytest.mark.parametrize(
    ("facts", "guard"),
    [
        ({}, None),
        ({"tags": {}}, "opt-in"),
        ({"tags": {"autoremediation": "enabled", "autoremediation-quarantine": "yes"}}, "quarantine"),
        ({"power_state": "deallocated"}, "vm-running"),
        ({"agent_ready": False}, "agent-ready"),
    ],
)
def test_vm_guards_decide_as_the_runner_does(
    catalog: Catalog, facts: dict[str, Any], guard: str | None
) -> None:
    result = preview(catalog, compute_with(**facts))
    assert (result.decision.guard, result.unchecked) == (guard, ())
    assert result.decision.action == ("skip" if guard else "dispatch")


def test_kill_switch_and_scope_are_checked_too(catalog: Catalog) -> None:
    assert preview(catalog, compute_with(), kill_switch=True).decision.guard == "kill-switch"
    assert (
        preview(catalog, compute_with(), allowed_scopes=("/subscriptions/other",)).decision.guard == "scope"
    )


def test_a_vm_arm_cannot_read_leaves_its_guards_unchecked(catalog: Catalog) -> None:
    compute = compute_with()
    compute.errors["get_vm"] = [Transient("ARM is down", status=503)]
    result = preview(catalog, compute)
    assert result.decision.reason == "static"
    assert result.unchecked == RUNTIME_GUARDS[2:] and "ARM is down" in result.unchecked_why
    # ... but the kill switch needs no VM.
    compute.errors["get_vm"] = [Transient("ARM is down", status=503)]
    assert preview(catalog, compute, kill_switch=True).decision.guard == "kill-switch"


def test_a_vm_that_is_gone_is_skipped(catalog: Catalog) -> None:
    assert preview(catalog, FakeCompute()).decision.guard == "vm-exists"


def test_history_guards_need_the_store(catalog: Catalog, tmp_path: Path) -> None:
    result = preview(catalog, compute_with(), store=None)
    assert result.unchecked == ("cooldown", "circuit-breaker")
    store = SqliteJobStore(str(tmp_path / "jobs.db"))
    for n in range(3):
        job = jobs.new_job(
            idempotency_key=f"k{n}",
            remediation="free-disk-space",
            condition="disk-full",
            target=vm_id(f"other{n}"),
            parameters={},
            now=NOW - timedelta(minutes=10 + n),
            actor="t",
        )
        job, _ = store.create(job)
        for status in (jobs.DISPATCHING, jobs.RUNNING, jobs.FAILED):
            job = store.update(
                jobs.transition(job, status, now=NOW - timedelta(minutes=5 + n), actor="t", reason="x")
            )
    result = preview(catalog, compute_with(), store=store)
    assert (result.decision.guard, result.unchecked) == ("circuit-breaker", ())


def test_static_skips_stand_and_static_only_names_every_runtime_guard(catalog: Catalog) -> None:
    report = PlanReport(plans=(plan_for("vm1"), plan_for("vm2", "skip")))
    dispatch, skip = static_only(report, "no ARM").plans
    assert (dispatch.unchecked, dispatch.unchecked_why) == (RUNTIME_GUARDS, "no ARM")
    assert skip.unchecked is None
    assert dispatch.to_dict()["unchecked"] == list(RUNTIME_GUARDS)
    kept = with_runtime_guards(report, catalog, FakeCompute(), NO_JOBS, GuardSettings(), NOW).plans[1]
    assert kept.decision.reason == "static"


def test_the_cooldown_comes_from_the_vms_lease_record_as_the_runner_reads_it(
    catalog: Catalog, tmp_path: Path
) -> None:
    store = SqliteJobStore(str(tmp_path / "jobs.db"))
    key = normalize(vm_id("vm1"))
    assert store.acquire_lease(key, "job-earlier", 600, NOW - timedelta(minutes=20))
    # The run ended 10 minutes ago; its job may already be gone (retention), its record on the lease stays.
    store.release_lease(key, "job-earlier", ran=("free-disk-space", NOW - timedelta(minutes=10)))
    assert store.list() == []
    assert preview(catalog, compute_with(), store=store).decision.guard == "cooldown"
    assert preview(catalog, compute_with(), store=NO_JOBS).decision.guard is None
