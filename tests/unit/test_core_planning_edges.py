"""Planning edges: the idempotency key, detector hand-off and what a plan shows."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from autoremediation.catalog import Catalog
from autoremediation.catalog_load import load_catalog
from autoremediation.planning import Note, Plan, Planner, PlanReport, idempotency_key
from autoremediation.policy import Decision
from autoremediation.resources import VmRef
from autoremediation.routing import Finding, Route
from autoremediation.signals.model import ManualRequest, Signal
from tests.helpers.catalogs import make_catalog
from tests.helpers.fakes import vm_id

VM1 = VmRef.parse(vm_id("vm1")) or pytest.fail("the test VM id must parse")
LOCKOUT = Route(
    "lockout",
    {"source": "event", "type": "Microsoft.Resources.ResourceWriteSuccess"},
    "nsg-lockout",
    detector="nsg-lockout",
)


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    return load_catalog(make_catalog(tmp_path_factory.mktemp("catalog")))


def finding(source: str, parameters: dict[str, str], remediation: str | None = "free-disk-space") -> Finding:
    manual = ManualRequest("free-disk-space", parameters, "r", False, "req-1") if source == "manual" else None
    signal = Signal(id="sig-1", source=source, type="t", targets=(VM1,), manual=manual)  # type: ignore[arg-type]
    assert VM1 is not None
    return Finding(signal, "disk-full", remediation, VM1, parameters, "route-a")


def test_an_alert_key_names_the_fired_alert_vm_remediation_and_condition_not_the_parameters() -> None:
    key = idempotency_key(finding("alert", {"targetFreePercent": "30", "mountPoint": "/var"}))
    assert VM1 is not None
    assert key == f"alert|sig-1|fired|{VM1.key}|free-disk-space|disk-full"
    assert idempotency_key(finding("alert", {"mountPoint": "/m19"})) == key


def test_an_alert_key_normalises_the_azure_alert_id() -> None:
    base = finding("alert", {})
    spelled = "/subscriptions/S/providers/Microsoft.AlertsManagement/alerts/ABC"
    keys = {
        idempotency_key(replace(base, signal=replace(base.signal, id=text)))
        for text in (spelled, spelled + "/", spelled.lower(), f" {spelled.upper()} ")
    }
    assert len(keys) == 1 and spelled.lower() in keys.pop()


def test_an_event_key_has_no_fired_part_and_no_parameters_when_there_are_none() -> None:
    assert VM1 is not None
    assert idempotency_key(finding("event", {})) == f"event|sig-1|{VM1.key}|free-disk-space"


def test_a_manual_key_ignores_parameters_so_a_retried_request_finds_its_job() -> None:
    assert VM1 is not None
    key = idempotency_key(finding("manual", {"mountPoint": "/var"}))
    assert key == f"manual|sig-1|{VM1.key}|free-disk-space"


def test_a_finding_without_a_remediation_is_keyed_by_its_condition() -> None:
    assert VM1 is not None
    assert idempotency_key(finding("event", {}, remediation=None)) == f"event|sig-1|{VM1.key}|disk-full"


def test_a_skipped_plan_shows_the_parameters_as_asked_and_names_its_guard() -> None:
    f = finding("event", {"targetFreePercent": "99"})
    shown = Plan(f, Decision("skip", "too high", "parameters")).to_dict()
    assert shown["parameters"] == {"targetFreePercent": "99"}
    assert (shown["guard"], shown["route"], shown["decision"]) == ("parameters", "route-a", "skip")
    resolved = Plan(f, Decision("dispatch", "ok", None, {"targetFreePercent": "30"})).to_dict()
    assert resolved["parameters"] == {"targetFreePercent": "30"}
    assert resolved["guard"] is None


def test_reports_add_up_signals_plans_and_notes() -> None:
    a = PlanReport(notes=(Note("s1", "first"),))
    b = PlanReport(notes=(Note("s2", "second"),))
    assert (a + b).to_dict()["notes"] == [
        {"signal": "s1", "message": "first"},
        {"signal": "s2", "message": "second"},
    ]


def lockout_event() -> Signal:
    return Signal(id="evt-9", source="event", type="Microsoft.Resources.ResourceWriteSuccess", targets=(VM1,))


def test_without_a_detector_the_plan_says_azure_is_needed(catalog: Catalog) -> None:
    report = Planner(catalog, [LOCKOUT]).plan_signal(lockout_event())
    assert report.plans == ()
    assert report.notes == (Note("evt-9", "nsg-lockout needs Azure to decide; no detector here"),)


def test_a_detector_gets_its_name_and_the_signal_and_its_findings_are_planned(catalog: Catalog) -> None:
    seen: list[tuple[str, Signal]] = []

    def detect(name: str, signal: Signal) -> tuple[list[Finding], list[str]]:
        seen.append((name, signal))
        assert VM1 is not None
        found = Finding(signal, "nsg-lockout", "restore-management-access", VM1, {}, "lockout")
        return [found, found], ["rule deny-ssh blocks 22"]

    signal = lockout_event()
    report = Planner(catalog, [LOCKOUT], detect).plan_signal(signal)
    assert seen == [("nsg-lockout", signal)]
    assert [p.decision.action for p in report.plans] == ["await-approval", "await-approval"]
    assert report.notes == (Note("evt-9", "rule deny-ssh blocks 22"),)


def test_routing_notes_carry_the_signal_id(catalog: Catalog) -> None:
    signal = Signal(id="evt-2", source="event", type="Other", targets=(VM1,))
    report: Any = Planner(catalog, [LOCKOUT]).plan_signal(signal)
    assert report.notes == (Note("evt-2", "no route matches this event (Other)"),)
    assert report.to_dict()["notes"] == [
        {"signal": "evt-2", "message": "no route matches this event (Other)"}
    ]
