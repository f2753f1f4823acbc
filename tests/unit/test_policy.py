from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from autoremediation.catalog_load import load_catalog
from autoremediation.policy import (
    GuardFacts,
    GuardSettings,
    breaker_open_until,
    guard_decision,
    in_scope,
    opted_in,
    plan_decision,
)
from autoremediation.ports import VmFacts
from tests.helpers.catalogs import make_catalog

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
VM = "/subscriptions/s1/resourceGroups/rg-a/providers/Microsoft.Compute/virtualMachines/vm1"


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    return load_catalog(make_catalog(Path(tmp_path_factory.mktemp("c")) / "c"))


def facts(**kw) -> VmFacts:
    values = dict(
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


def decide(catalog, remediation="free-disk-space", params=None, settings=None, **fact_kw):
    fact_values = dict(vm=facts(), now=NOW)
    fact_values.update(fact_kw)
    return guard_decision(
        target=VM,
        remediation=catalog.get(remediation),
        raw_parameters={"mountPoint": "/var"} if params is None else params,
        facts=GuardFacts(**fact_values),
        settings=settings or GuardSettings(),
    )


class TestPlanDecision:
    def test_low_risk_dispatches_with_resolved_parameters(self, catalog) -> None:
        d = plan_decision(catalog.get("free-disk-space"), {"mountPoint": "/var"}, state="fired")
        assert (d.action, d.guard) == ("dispatch", None)
        assert d.parameters == {"mountPoint": "/var", "targetFreePercent": "20"}

    def test_resolved_alert_never_dispatches(self, catalog) -> None:
        d = plan_decision(catalog.get("free-disk-space"), {"mountPoint": "/var"}, state="resolved")
        assert (d.action, d.guard) == ("skip", "alert-state")

    def test_bad_parameter_skips_naming_it(self, catalog) -> None:
        d = plan_decision(catalog.get("free-disk-space"), {"mountPoint": "/var;reboot"}, state="fired")
        assert d.action == "skip" and d.guard == "parameters" and "'mountPoint'" in d.reason

    def test_high_risk_awaits_approval(self, catalog) -> None:
        d = plan_decision(catalog.get("restore-management-access"), {"port": "22"}, state=None)
        assert (d.action, d.guard) == ("await-approval", "approval")
        assert "risk high" in d.reason


class TestGuards:
    def test_all_clear_dispatches(self, catalog) -> None:
        d = decide(catalog)
        assert (d.action, d.reason) == ("dispatch", "all guards passed")
        assert d.parameters["mountPoint"] == "/var"

    @pytest.mark.parametrize(
        ("kw", "guard"),
        [
            (dict(settings=GuardSettings(kill_switch=True)), "kill-switch"),
            (
                dict(settings=GuardSettings(allowed_scopes=("/subscriptions/s1/resourceGroups/rg-b",))),
                "scope",
            ),
            (dict(vm=None), "vm-exists"),
            (dict(vm=facts(tags={})), "opt-in"),
            (dict(vm=facts(tags={"autoremediation": "disabled"})), "opt-in"),
            (
                dict(vm=facts(tags={"autoremediation": "enabled", "AutoRemediation-Quarantine": "yes"})),
                "quarantine",
            ),
            (dict(vm=facts(power_state="deallocated")), "vm-running"),
            (dict(vm=facts(agent_ready=False)), "agent-ready"),
            (dict(params={"mountPoint": "../etc"}), "parameters"),
            (dict(last_run_ended_at=NOW - timedelta(minutes=59)), "cooldown"),
            (dict(recent_failures=[NOW - timedelta(minutes=m) for m in (1, 2, 3)]), "circuit-breaker"),
        ],
    )
    def test_each_guard_skips_with_its_name(self, catalog, kw, guard) -> None:
        d = decide(catalog, **kw)
        assert (d.action, d.guard) == ("skip", guard)
        assert d.reason

    def test_quarantine_false_is_not_quarantine(self, catalog) -> None:
        vm = facts(tags={"autoremediation": "enabled", "autoremediation-quarantine": "false"})
        assert decide(catalog, vm=vm).action == "dispatch"

    def test_os_guard(self, catalog) -> None:
        d = decide(catalog, remediation="restore-management-access", params={}, vm=facts(os_type="windows"))
        assert (d.action, d.guard) == ("skip", "os")

    def test_kill_switch_wins_over_everything(self, catalog) -> None:
        d = decide(catalog, vm=None, settings=GuardSettings(kill_switch=True))
        assert d.guard == "kill-switch"

    def test_cooldown_ends(self, catalog) -> None:
        assert decide(catalog, last_run_ended_at=NOW - timedelta(minutes=60)).action == "dispatch"
        d = decide(catalog, last_run_ended_at=NOW - timedelta(minutes=10))
        assert "lasts until 2026-11-25T12:50:00+00:00" in d.reason

    def test_approval_then_dispatch(self, catalog) -> None:
        d = decide(catalog, remediation="restore-management-access", params={})
        assert (d.action, d.parameters) == ("await-approval", {"port": "22"})
        d = decide(catalog, remediation="restore-management-access", params={}, approved=True)
        assert d.action == "dispatch"

    def test_custom_opt_in_tag(self, catalog) -> None:
        settings = GuardSettings(opt_in_tag=("selfheal", ""))
        assert decide(catalog, settings=settings, vm=facts(tags={"SelfHeal": "yes"})).action == "dispatch"
        assert decide(catalog, settings=settings, vm=facts(tags={"selfheal": "false"})).guard == "opt-in"


def test_scope_allow_list() -> None:
    assert in_scope(VM, ())
    assert in_scope(VM, ("/subscriptions/S1/",))
    assert in_scope(VM, ("/subscriptions/s1/resourceGroups/RG-A",))
    assert not in_scope(VM, ("/subscriptions/s1/resourceGroups/rg",))  # a prefix of the name is not a parent
    assert not in_scope(VM, ("/subscriptions/s2",))


def test_opt_in_tag_matching() -> None:
    tag = ("autoremediation", "enabled")
    assert opted_in({"AutoRemediation": "Enabled"}, tag)
    assert not opted_in({"autoremediation": "enabled-ish"}, tag)
    assert not opted_in({"other": "enabled"}, tag)


class TestBreaker:
    settings = GuardSettings(
        breaker_threshold=3, breaker_window=timedelta(minutes=60), breaker_open=timedelta(minutes=30)
    )

    def test_opens_at_threshold_within_window(self) -> None:
        failures = [NOW - timedelta(minutes=m) for m in (50, 20, 5)]
        assert breaker_open_until(failures, NOW, self.settings) == NOW + timedelta(minutes=25)

    def test_stays_closed_below_threshold(self) -> None:
        assert breaker_open_until([NOW - timedelta(minutes=1)] * 2, NOW, self.settings) is None

    def test_failures_spread_wider_than_the_window_do_not_open(self) -> None:
        failures = [NOW - timedelta(minutes=m) for m in (130, 65, 1)]
        assert breaker_open_until(failures, NOW, self.settings) is None

    def test_closes_after_open_period(self) -> None:
        failures = [NOW - timedelta(minutes=m) for m in (40, 35, 31)]
        assert breaker_open_until(failures, NOW, self.settings) is None
        assert breaker_open_until(failures, NOW - timedelta(minutes=2), self.settings) is not None

    def test_window_edge_is_inclusive(self) -> None:
        failures = [NOW - timedelta(minutes=60), NOW - timedelta(minutes=30), NOW]
        assert breaker_open_until(failures, NOW, self.settings) == NOW + timedelta(minutes=30)

    def test_future_failures_are_ignored(self) -> None:
        failures = [NOW + timedelta(minutes=m) for m in (1, 2, 3)]
        assert breaker_open_until(failures, NOW, self.settings) is None
