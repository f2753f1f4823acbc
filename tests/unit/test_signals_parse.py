"""parse(): recognising the payload, JSON text, the summary, and the shipped samples."""

from __future__ import annotations

import json

import pytest

from autoremediation.errors import InvalidInput, SignalError
from autoremediation.signals import UNRECOGNISED, decode, parse
from tests.helpers.signal_payloads import alert, eg_event, manual, sample, sample_names

DEMO_SUB = "00000000-0000-0000-0000-000000000001"
DEMO_VM = f"/subscriptions/{DEMO_SUB}/resourceGroups/rg-demo/providers/Microsoft.Compute/virtualMachines/"
NSG_RULE = (
    f"/subscriptions/{DEMO_SUB}/resourceGroups/rg-demo/providers/Microsoft.Network/"
    "networkSecurityGroups/nsg-demo/securityRules/deny-ssh"
)
RULE_WRITE = "Microsoft.Network/networkSecurityGroups/securityRules/write"


def test_each_kind_is_recognised() -> None:
    assert [s.source for s in parse(alert())] == ["alert"]
    assert [s.source for s in parse([eg_event("X.Y", None)])] == ["event"]
    assert [s.source for s in parse(manual())] == ["manual"]


def test_json_text_and_bytes_are_decoded() -> None:
    payload = alert()
    text = json.dumps(payload)
    assert parse(text) == parse(payload)
    assert parse(text.encode("utf-8")) == parse(payload)
    assert parse(b"\xef\xbb\xbf" + text.encode("utf-8")) == parse(payload)  # a BOM some clients send


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("{", "payload is not JSON: Expecting property name enclosed in double quotes (line 1, column 2)"),
        ("", "payload is not JSON"),
        (b"\xff\xfe{}", "payload is not UTF-8 text"),
        ("[" * 100_000, "payload is not usable JSON"),
        ("1" * 5000, "payload is not usable JSON"),
    ],
)
def test_bodies_that_are_not_json_are_refused(body, message) -> None:
    with pytest.raises(SignalError) as caught:
        parse(body)
    assert str(caught.value).startswith(message)


@pytest.mark.parametrize(
    "payload",
    [
        None,
        3,
        2.5,
        True,
        {},
        {"hello": "world"},
        [1, 2],
        [None],
        [[]],
        {"validationResponse": "abc"},
        {"data": {"essentials": {"alertId": "x"}}},
        {"parameters": {}, "responses": {}},
    ],
)
def test_unrecognised_payloads(payload) -> None:
    with pytest.raises(SignalError) as caught:
        parse(payload)
    assert str(caught.value).startswith(UNRECOGNISED)


def test_signal_error_is_invalid_input() -> None:
    with pytest.raises(InvalidInput):
        parse({})


def test_decode_is_exposed_for_callers_that_need_the_json() -> None:
    assert decode(b'{"a": 1}') == {"a": 1}


def test_summary_is_json_and_has_stable_keys() -> None:
    for payload in (alert(), [eg_event("X.Y", None)], manual()):
        [signal] = parse(payload)
        summary = signal.summary()
        assert json.loads(json.dumps(summary)) == summary
        assert set(summary) == {
            "id",
            "source",
            "type",
            "state",
            "targets",
            "time",
            "rule",
            "operation",
            "resource",
            "remediation",
            "dryRun",
            "validation",
        }


def test_every_sample_parses() -> None:
    names = sample_names()
    assert len(names) >= 7
    for name in names:
        assert parse(sample(name)), name


def test_disk_full_sample_fires_for_var_on_the_linux_vm() -> None:
    [signal] = parse(sample("disk-full-alert.json"))
    assert (signal.source, signal.type, signal.signal_type, signal.state) == (
        "alert",
        "Log Alerts V2",
        "Log",
        "fired",
    )
    assert [t.id for t in signal.targets] == [DEMO_VM + "vm-linux-disk"]
    assert signal.query is not None and "FreeSpacePercentage" in signal.query
    assert [d["Mount"] for d in signal.dimensions] == ["/var"]
    assert signal.dimensions[0]["_ResourceId"].lower() == (DEMO_VM + "vm-linux-disk").lower()


def test_resolved_sample_is_the_same_alert_resolved() -> None:
    [fired] = parse(sample("disk-full-alert.json"))
    [resolved] = parse(sample("disk-full-alert-resolved.json"))
    assert resolved.id == fired.id
    assert resolved.state == "resolved"
    assert resolved.targets == fired.targets
    assert resolved.resolved_at is not None and resolved.time == resolved.resolved_at


def test_windows_and_not_opted_in_samples() -> None:
    [windows] = parse(sample("windows-disk-full-alert.json"))
    assert [t.name for t in windows.targets] == ["vm-windows"]
    assert windows.query is not None and "% Free Space" in windows.query
    assert windows.dimensions[0]["InstanceName"] == "C:"
    [other] = parse(sample("not-opted-in-alert.json"))
    assert [t.name for t in other.targets] == ["vm-no-optin"]
    assert other.dimensions[0]["Mount"] == "/"


def test_nsg_samples_name_the_rule_and_the_operation() -> None:
    [event] = parse(sample("nsg-rule-write-event.json"))
    [activity] = parse(sample("nsg-rule-write-alert.json"))
    assert (event.source, event.type) == ("event", "Microsoft.Resources.ResourceWriteSuccess")
    assert (activity.source, activity.type) == ("alert", "Activity Log - Administrative")
    for signal in (event, activity):
        assert signal.operation_name == RULE_WRITE
        assert signal.resource_id == NSG_RULE
        assert signal.status == "Succeeded"
        assert signal.targets == ()


def test_manual_sample() -> None:
    [signal] = parse(sample("manual-request.json"))
    assert signal.manual is not None
    assert signal.manual.remediation == "free-disk-space"
    assert dict(signal.manual.parameters) == {"mountPoint": "/var"}
    assert [t.id for t in signal.targets] == [DEMO_VM + "vm-linux-disk"]
