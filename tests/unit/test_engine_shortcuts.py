"""The per-alert engine's shortcuts give what the long way gives: the confirmed signal built field by
field is the body's signal with Azure's fields replaced, and an alert's findings are kept one per job
key (the first of each) whether one, two or many are found."""

from __future__ import annotations

from dataclasses import fields, replace

from autoremediation.planning import _on_target, idempotency_key
from autoremediation.ports import AlertRuleRecord
from autoremediation.provenance_record import recorded_signal
from autoremediation.resources import VmRef
from autoremediation.routing import Finding
from autoremediation.signals.alerts import parse_alert
from autoremediation.signals.model import ManualRequest
from tests.unit.test_provenance import TRUSTED_RULE, log_alert, record, vm


def _finding(signal_vm: str, target: str, remediation: str, condition: str, mount: str) -> Finding:
    signal = parse_alert(log_alert("g1", [signal_vm]))
    ref = VmRef.parse(target)
    assert ref is not None
    return Finding(signal, condition, remediation, ref, {"mountPoint": mount}, "disk-full-log-search")


def test_an_alerts_findings_are_kept_one_per_job_key_the_first_of_each() -> None:
    on = vm("vm-1")
    first = _finding(on, on, "free-disk-space", "disk-full", "/")
    same_key = _finding(on, on.upper() + "/", "free-disk-space", "disk-full", "/var")  # same VM, other row
    other_remediation = _finding(on, on, "restart-service", "service-failed", "/")
    again = _finding(on, on, "restart-service", "service-failed", "/data")
    assert idempotency_key(first) == idempotency_key(same_key) != idempotency_key(other_remediation)

    assert _on_target([first], record("g1", on)) == ([first], [])
    assert _on_target([first, same_key], record("g1", on)) == ([first], [])
    assert _on_target([same_key, first], record("g1", on))[0][0] is same_key
    kept, notes = _on_target([first, same_key, other_remediation, again, first], record("g1", on))
    assert [k is f for k, f in zip(kept, [first, other_remediation], strict=True)] == [True, True]
    assert notes == []


def test_a_finding_off_the_alerts_target_is_a_note_and_the_next_one_is_still_kept_first() -> None:
    on, off = vm("vm-1"), vm("vm-2")
    stray = _finding(on, off, "free-disk-space", "disk-full", "/")
    mine = _finding(on, on, "free-disk-space", "disk-full", "/")
    kept, notes = _on_target([stray, mine, stray], record("g1", on))
    assert kept == [mine] and kept[0] is mine
    assert notes == [
        f"provenance: {off} is not the target of alert {record('g1', on).id}; Azure Monitor records {on}"
    ]


def test_the_confirmed_signal_is_the_bodys_with_azures_fields_and_has_every_field_once() -> None:
    body = replace(
        parse_alert(log_alert("g1", [vm("vm-1"), vm("vm-9")], custom={"remediation": "restart-service"})),
        severity="Sev1",
        description="body's words",
        resolved_at="2026-11-25T10:19:00Z",
        time="2026-11-25T10:18:00Z",
        manual=ManualRequest("x", {}, "r", False, "req"),
        validation_code="code",
    )
    azure = record("g1", vm("vm-1"), monitor_service="ActivityLog Administrative", signal_type=" Log ")
    rule = AlertRuleRecord(TRUSTED_RULE, {"remediation": "free-disk-space"}, True, ())
    confirmed, notes = recorded_signal(body, azure, rule)

    assert list(vars(confirmed)) == [f.name for f in fields(confirmed)]
    ref = VmRef.parse(vm("vm-1"))
    assert confirmed == replace(
        body,
        id=azure.id,
        type="Activity Log - Administrative",
        signal_type="Log",
        targets=(ref,),
        resources=(vm("vm-1"),),
        operation_name=None,
        resource_id=None,
        status=None,
        query="InsightsMetrics | where Name == 'FreeSpacePercentage'",
        metrics=(),
        dimensions=({"_ResourceId": vm("vm-1"), "Mount": "/var"},),
        custom_properties={"remediation": "free-disk-space"},
        extra={"conditionType": "LogQueryCriteria"},
    )
    # the body's own fields, by name (equality above compares them all, these spell out the ones kept)
    kept = ("source", "state", "rule", "severity", "fired_at", "resolved_at", "time", "manual")
    assert [getattr(confirmed, n) for n in kept] == [getattr(body, n) for n in kept]
    assert (confirmed.validation_code, confirmed.description) == ("code", "body's words")
    assert confirmed.custom_properties is not rule.custom_properties
    assert len(notes) == 1 and "names 1 VM(s)" in notes[0]
