"""One ARM write, one job: the idempotency key of a write finding, and intake's window fallback."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoremediation.catalog_load import load_catalog
from autoremediation.intake import Intake
from autoremediation.planning import (
    CHANGE_WINDOW_SECONDS,
    Plan,
    Planner,
    PlanReport,
    change_of,
    idempotency_key,
)
from autoremediation.policy import Decision
from autoremediation.resources import VmRef
from autoremediation.routing import Finding
from autoremediation.signals.model import Signal
from autoremediation.store.memory_queue import InProcessQueue, ManualClock
from autoremediation.store.sqlite import SqliteJobStore
from tests.helpers.catalogs import make_catalog
from tests.helpers.fakes import vm_id

NSG = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/networkSecurityGroups/n"
RULE = f"{NSG}/securityRules/deny-ssh"
OTHER_RULE = RULE.replace("deny-ssh", "deny-rdp")
WRITE = "Microsoft.Network/networkSecurityGroups/securityRules/write"


def signal(source: str, delivery: str, correlation: str | None, resource: str = RULE) -> Signal:
    return Signal(
        id=delivery,
        source=source,  # type: ignore[arg-type]
        type="Microsoft.Resources.ResourceWriteSuccess"
        if source == "event"
        else "Activity Log - Administrative",
        state="fired" if source == "alert" else None,
        resource_id=resource,
        operation_name=WRITE,
        extra={"correlationId": correlation} if correlation else {},
    )


def finding(sig: Signal, route: str = "detector:nsg-lockout") -> Finding:
    change = change_of(sig)
    return Finding(
        signal=sig,
        condition="nsg-lockout",
        remediation="free-disk-space",  # any catalog entry: the remediation is not what is tested
        target=VmRef.parse(vm_id("vm1")),  # type: ignore[arg-type]
        parameters={},
        route=route,
        evidence={"rule": "deny-ssh", **({"change": change} if change else {})},
    )


def test_the_key_of_a_write_finding_is_the_write_not_the_delivery() -> None:
    event = idempotency_key(finding(signal("event", "ev-1", "CORR-1")))
    alert = idempotency_key(finding(signal("alert", "/alerts/a-1", "corr-1")))
    assert event == alert and event.startswith("change|corr-1|")
    assert idempotency_key(finding(signal("event", "ev-2", "corr-2"))) != event


def test_without_a_correlation_id_the_key_stays_the_delivery() -> None:
    assert idempotency_key(finding(signal("event", "ev-1", None))).startswith("event|ev-1|")


def test_routed_findings_keep_their_delivery_key() -> None:
    assert idempotency_key(finding(signal("event", "ev-1", "corr-1"), route="nsg-write-event")).startswith(
        "event|"
    )


def test_change_of_reads_only_writes() -> None:
    assert change_of(signal("event", "e", "c")) == {
        "correlationId": "c",
        "resource": RULE,
        "operation": WRITE,
        "at": "",
    }
    assert change_of(Signal(id="m", source="manual", type="manual")) is None
    delete = Signal(
        id="e", source="event", type="x", operation_name="Microsoft.Network/networkSecurityGroups/delete"
    )
    assert change_of(delete) is None


class Desk:
    def __init__(self, tmp_path: Path) -> None:
        self.clock = ManualClock()
        self.store = SqliteJobStore(str(tmp_path / "jobs.db"))
        catalog = load_catalog(make_catalog(tmp_path / "catalog"))
        self.intake = Intake(Planner(catalog, ()), self.store, InProcessQueue(self.clock), self.clock)

    def admit(self, sig: Signal) -> tuple[str, bool]:
        plan = Plan(finding(sig), Decision("await-approval", "risk high", "approval"))
        (admitted,) = self.intake.admit(PlanReport((sig,), (plan,)), actor="test").jobs
        return admitted.job.id, admitted.created


@pytest.fixture
def desk(tmp_path: Path) -> Desk:
    return Desk(tmp_path)


@pytest.mark.parametrize(
    ("first", "second"),
    [(None, None), ("corr-1", None), (None, "corr-1"), ("corr-1", "corr-1")],
)
def test_event_then_alert_of_one_write_is_one_job(desk: Desk, first: str | None, second: str | None) -> None:
    job, created = desk.admit(signal("event", "ev-1", first))
    desk.clock.advance(CHANGE_WINDOW_SECONDS - 60)
    again, created_again = desk.admit(signal("alert", "/alerts/a-1", second))
    assert (created, again, created_again) == (True, job, False)
    [record] = desk.store.list()
    # The alert is linked to the job the event made, once, so the alert's lifecycle finds it.
    assert record.alert_id == "/alerts/a-1" and record.signal_id == "ev-1"
    desk.admit(signal("alert", "/alerts/a-1", second))
    [record] = desk.store.list()
    assert [n.split(" ", 1)[1] for n in record.notes] == ["the same change also arrived as alert /alerts/a-1"]


def test_an_nsg_and_one_of_its_rules_are_the_same_write(desk: Desk) -> None:
    job, _ = desk.admit(signal("event", "ev-1", None))
    again, created = desk.admit(signal("alert", "/alerts/a-1", None, resource=NSG))
    assert (again, created) == (job, False)


def test_after_the_window_a_write_without_correlation_is_a_new_change(desk: Desk) -> None:
    job, _ = desk.admit(signal("event", "ev-1", None))
    desk.clock.advance(CHANGE_WINDOW_SECONDS + 60)
    later, created = desk.admit(signal("alert", "/alerts/a-1", None))
    assert created and later != job


def test_another_rule_or_another_correlation_id_is_another_change(desk: Desk) -> None:
    job, _ = desk.admit(signal("event", "ev-1", None))
    other_rule, created = desk.admit(signal("alert", "/alerts/a-1", None, resource=OTHER_RULE))
    assert created and other_rule != job
    a, _ = desk.admit(signal("event", "ev-a", "corr-a", resource=OTHER_RULE.replace("rdp", "x")))
    b, created = desk.admit(signal("alert", "/alerts/b", "corr-b", resource=OTHER_RULE.replace("rdp", "x")))
    assert created and a != b
