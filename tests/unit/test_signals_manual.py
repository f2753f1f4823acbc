"""Manual requests: read strictly, because an operator asked for exactly this."""

from __future__ import annotations

import re

import pytest

from autoremediation.errors import SignalError
from autoremediation.signals import parse
from autoremediation.signals.model import ManualRequest
from tests.helpers.signal_payloads import manual, nsg_rule_id, vm_id


def test_a_manual_request_becomes_one_signal_with_the_request() -> None:
    [signal] = parse(manual(requestedBy="alice@contoso.com", dryRun=True))
    assert signal.source == "manual"
    assert signal.type == "manual"
    assert signal.id == "req-0001"
    assert signal.state is None
    assert [t.id for t in signal.targets] == [vm_id("vm-web-1")]
    assert signal.resources == (vm_id("vm-web-1"),)
    assert signal.manual == ManualRequest(
        remediation="free-disk-space",
        parameters={"mountPoint": "/var"},
        reason="disk full on /var",
        dry_run=True,
        request_id="req-0001",
        requested_by="alice@contoso.com",
    )
    summary = signal.summary()
    assert summary["remediation"] == "free-disk-space" and summary["dryRun"] is True


def test_requested_by_defaults_to_operator_and_parameters_to_none() -> None:
    request = manual()
    del request["parameters"]
    [signal] = parse(request)
    assert signal.manual is not None
    assert signal.manual.requested_by == "operator"
    assert signal.manual.parameters == {}


def test_integer_and_boolean_parameters_become_their_json_text() -> None:
    [signal] = parse(
        manual(parameters={"targetFreePercent": 20, "force": True, "quiet": False, "mountPoint": "/"})
    )
    assert signal.manual is not None
    assert signal.manual.parameters == {
        "targetFreePercent": "20",
        "force": "true",
        "quiet": "false",
        "mountPoint": "/",
    }


def test_targets_are_deduplicated_without_case_and_a_single_string_is_one_target() -> None:
    vm = vm_id("vm-web-1")
    [signal] = parse(manual(targets=[vm, vm.lower(), vm_id("vm-web-2")]))
    assert [t.id for t in signal.targets] == [vm, vm_id("vm-web-2")]
    [signal] = parse(manual(targets=vm))
    assert [t.id for t in signal.targets] == [vm]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"targets": [vm_id("vm-ok"), nsg_rule_id()]},
            f"manual: targets[1] '{nsg_rule_id()}' is not a VM resource id",
        ),
        ({"targets": [vm_id("vm-ok") + "/extensions/x"]}, "manual: targets[0] "),
        ({"targets": ["vm-web-1"]}, "manual: targets[0] 'vm-web-1' is not a VM resource id"),
        ({"targets": [42]}, "manual: targets[0] a number is not a VM resource id"),
        ({"targets": []}, "manual: targets is empty"),
        (
            {"targets": {"id": vm_id("x")}},
            "manual: targets must be an array of VM resource ids, not an object",
        ),
        (
            {"parameters": {"mountPoint": {"path": "/var"}}},
            "manual: parameters.mountPoint must be a string, an integer or a boolean, not an object",
        ),
        (
            {"parameters": {"mountPoint": ["/var"]}},
            "manual: parameters.mountPoint must be a string, an integer or a boolean, not an array",
        ),
        ({"parameters": {"mountPoint": None}}, "manual: parameters.mountPoint must be a string"),
        (
            {"parameters": {"targetFreePercent": 20.5}},
            "manual: parameters.targetFreePercent must be a string",
        ),
        (
            {"parameters": {"mount-point": "/"}},
            "manual: parameters name 'mount-point' is not a parameter name",
        ),
        ({"parameters": ["mountPoint"]}, "manual: parameters must be an object, not an array"),
        ({"requestId": "has space"}, "manual: requestId 'has space' must be 1-128 letters"),
        ({"requestId": "x" * 129}, "manual: requestId"),
        ({"requestId": 12}, "manual: requestId must be a string, not a number"),
        ({"requestId": None}, "manual: requestId is null: leave it out and one is generated"),
        ({"remediation": "Free Disk"}, "manual: remediation 'Free Disk' is not a remediation id"),
        ({"remediation": ""}, "manual: remediation is empty"),
        ({"reason": "   "}, "manual: reason is empty"),
        ({"reason": "line\x00break"}, "manual: reason contains control characters"),
        ({"dryRun": "false"}, "manual: dryRun must be true or false, not a string"),
        ({"dryRun": None}, "manual: dryRun must be true or false, not null"),
        ({"requestedBy": 5}, "manual: requestedBy must be a string, not a number"),
        ({"dry_run": True}, "manual: unknown field 'dry_run'"),
    ],
)
def test_bad_manual_requests_are_refused_naming_the_value(overrides, message) -> None:
    with pytest.raises(SignalError) as caught:
        parse(manual(**overrides))
    assert str(caught.value).startswith(message)


@pytest.mark.parametrize("field", ["targets", "reason"])
def test_required_fields(field) -> None:
    request = manual()
    del request[field]
    with pytest.raises(SignalError, match=f"manual: {field} is missing"):
        parse(request)


def test_dry_run_defaults_to_false_and_a_request_id_is_generated() -> None:
    request = manual()
    del request["dryRun"], request["requestId"]
    [first] = parse(request)
    [second] = parse(request)
    assert first.manual is not None and first.manual.dry_run is False
    assert re.fullmatch(r"req-[0-9a-f]{20}", first.id)
    assert first.id != second.id  # a request without an id runs once each time it is sent
