"""Guard edges: the exact reason each guard gives, the breaker's window and the cooldown boundary."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from autoremediation.catalog import Catalog
from autoremediation.catalog_load import load_catalog
from autoremediation.policy import (
    Decision,
    GuardFacts,
    GuardSettings,
    breaker_open_until,
    guard_decision,
    opted_in,
    plan_decision,
)
from autoremediation.ports import VmFacts
from tests.helpers.catalogs import access_remediation, base_remediation, make_catalog

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
VM = "/subscriptions/s1/resourceGroups/rg-a/providers/Microsoft.Compute/virtualMachines/vm1"


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    root = make_catalog(
        tmp_path_factory.mktemp("c"),
        base_remediation(),
        base_remediation(id="quick-clean", cooldownMinutes=1),
        base_remediation(id="careful-clean", approval="required"),
        access_remediation(),
    )
    return load_catalog(root)


def vm(**kw: Any) -> VmFacts:
    values: dict[str, Any] = dict(
        id=VM,
        name="vm1",
        location="westeurope",
        os_type="linux",
        power_state="running",
        agent_ready=True,
        tags={"autoremediation": "enabled"},
    )
    values.update(kw)
    return VmFacts(**values)


def decide(
    catalog: Catalog,
    remediation: str = "free-disk-space",
    params: dict[str, str] | None = None,
    settings: GuardSettings | None = None,
    **facts: Any,
) -> Decision:
    values: dict[str, Any] = dict(vm=vm(), now=NOW)
    values.update(facts)
    return guard_decision(
        target=VM,
        remediation=catalog.get(remediation),
        raw_parameters=params or {},
        facts=GuardFacts(**values),
        settings=settings or GuardSettings(),
    )


@pytest.mark.parametrize(
    ("kw", "guard", "reason"),
    [
        (
            dict(settings=GuardSettings(kill_switch=True)),
            "kill-switch",
            "the global kill switch is on: no remediation runs",
        ),
        (
            dict(settings=GuardSettings(allowed_scopes=("/subscriptions/s2",))),
            "scope",
            "the VM is outside the allowed scopes",
        ),
        (dict(vm=None), "vm-exists", "the VM does not exist"),
        (
            dict(vm=vm(tags={})),
            "opt-in",
            "the VM has not opted in (tag autoremediation=enabled is missing)",
        ),
        (
            dict(vm=vm(tags={}), settings=GuardSettings(opt_in_tag=("selfheal", ""))),
            "opt-in",
            "the VM has not opted in (tag selfheal=<any> is missing)",
        ),
        (
            dict(vm=vm(agent_ready=False)),
            "agent-ready",
            "the VM agent is not Ready: a run command cannot reach the guest",
        ),
        (
            dict(remediation="restore-management-access", vm=vm(os_type="windows")),
            "os",
            "restore-management-access has no script for windows",
        ),
        (
            dict(params={"targetFreePercent": "4"}),
            "parameters",
            "parameter 'targetFreePercent': 4 is below the minimum 5",
        ),
    ],
)
def test_each_guard_says_exactly_why(catalog: Catalog, kw: dict[str, Any], guard: str, reason: str) -> None:
    decision = decide(catalog, **kw)
    assert (decision.action, decision.guard, decision.reason) == ("skip", guard, reason)


def test_a_tag_without_a_value_is_not_an_opt_in() -> None:
    assert opted_in({"AutoRemediation": None}, ("autoremediation", "")) is False  # type: ignore[dict-item]
    assert opted_in({"AutoRemediation": "yes"}, ("autoremediation", "")) is True


def test_a_one_minute_cooldown_still_holds_a_second_run_back(catalog: Catalog) -> None:
    decision = decide(catalog, "quick-clean", last_run_ended_at=NOW - timedelta(seconds=30))
    assert (decision.action, decision.guard) == ("skip", "cooldown")
    assert decide(catalog, "quick-clean", last_run_ended_at=NOW - timedelta(minutes=1)).action == "dispatch"


def test_the_breaker_needs_every_failure_of_the_threshold_inside_one_window() -> None:
    settings = GuardSettings(breaker_threshold=3, breaker_window=timedelta(minutes=60))
    spread = [NOW - timedelta(minutes=100), NOW - timedelta(minutes=99), NOW - timedelta(minutes=5)]
    # Two close failures and a third 94 minutes later: no window of 60 minutes holds three.
    assert breaker_open_until(spread, NOW, settings) is None


def test_the_breaker_closes_exactly_when_its_open_time_ends() -> None:
    settings = GuardSettings(breaker_threshold=2, breaker_open=timedelta(minutes=30))
    failures = [NOW - timedelta(minutes=31), NOW - timedelta(minutes=30)]
    assert breaker_open_until(failures, NOW, settings) is None
    assert breaker_open_until(failures, NOW - timedelta(seconds=1), settings) == NOW


def test_the_breaker_window_runs_from_the_first_to_the_last_failure_of_the_threshold() -> None:
    settings = GuardSettings(breaker_threshold=3, breaker_window=timedelta(minutes=60))
    late_pair = [NOW - timedelta(minutes=100), NOW - timedelta(minutes=30), NOW - timedelta(minutes=29)]
    assert breaker_open_until(late_pair, NOW, settings) is None
    inside = [NOW - timedelta(minutes=59), NOW - timedelta(minutes=30), NOW - timedelta(minutes=1)]
    assert breaker_open_until(inside, NOW, settings) == NOW + timedelta(minutes=59)


def test_plan_decision_reasons(catalog: Catalog) -> None:
    free = catalog.get("free-disk-space")
    resolved = plan_decision(free, {}, state="resolved")
    assert (resolved.action, resolved.guard, resolved.reason) == (
        "skip",
        "alert-state",
        "the alert is resolved: nothing to remediate",
    )
    fired = plan_decision(free, {}, state="fired")
    assert (fired.action, fired.reason) == (
        "dispatch",
        "static checks passed; opt-in, VM state, cooldown and breaker are checked when the job runs",
    )


def test_approval_says_whether_risk_or_the_catalog_asks_for_it(catalog: Catalog) -> None:
    high = plan_decision(catalog.get("restore-management-access"), {}, state="fired", os_type="windows")
    assert (high.action, high.guard, high.reason) == (
        "await-approval",
        "approval",
        "risk high: an operator must approve restore-management-access",
    )
    # The OS of the VM picks the OS default of a parameter.
    assert dict(high.parameters) == {"port": "3389"}
    asked = plan_decision(catalog.get("careful-clean"), {}, state="fired")
    assert asked.reason == "the catalog asks for approval: an operator must approve careful-clean"
