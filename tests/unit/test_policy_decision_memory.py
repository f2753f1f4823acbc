"""A static decision is remembered by what it was made of: the same answers, each caller its own dict."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoremediation import policy
from autoremediation.catalog import ALERT, OPERATOR
from autoremediation.catalog_load import load_catalog
from autoremediation.policy import _static_decision, plan_decision
from tests.helpers.catalogs import SHIPPED, make_catalog


@pytest.fixture
def disk(tmp_path: Path):
    return load_catalog(make_catalog(tmp_path)).get("free-disk-space")


def decide(disk, parameters, origins=None, os_type=None):
    return plan_decision(disk, parameters, state="fired", origins=origins, os_type=os_type)


def test_a_remembered_decision_is_the_fresh_one_and_each_caller_gets_its_own_parameters(disk) -> None:
    first = decide(disk, {"mountPoint": "/var"}, {"mountPoint": ALERT})
    assert first.action == "dispatch" and first.parameters["mountPoint"] == "/var"
    first.parameters["mountPoint"] = "/changed-by-the-caller"  # type: ignore[index]
    again = decide(disk, {"mountPoint": "/var"}, {"mountPoint": ALERT})
    assert again == _static_decision(disk, {"mountPoint": "/var"}, None, {"mountPoint": ALERT})
    assert again.parameters["mountPoint"] == "/var" and again.parameters is not first.parameters
    again.parameters["mountPoint"] = "/changed-by-the-second-caller"  # type: ignore[index]
    third = decide(disk, {"mountPoint": "/var"}, {"mountPoint": ALERT})
    assert third.parameters["mountPoint"] == "/var"


def test_the_os_is_part_of_what_is_remembered() -> None:
    restore = load_catalog(SHIPPED).get("restore-management-access")
    restore.planned.clear()  # the shipped catalog is shared: start from an empty memory
    for os_type, port in (("linux", "22"), ("windows", "3389"), ("linux", "22")):
        assert decide(restore, {}, os_type=os_type).parameters == {"port": port}
    assert len(restore.planned) == 2  # both answered from memory the second time


def test_the_sources_are_part_of_what_is_remembered(disk) -> None:
    knob = next(n for n, p in disk.parameters.items() if p.type == "integer" and ALERT not in p.sources)
    by_operator = decide(disk, {knob: "30"}, {knob: OPERATOR})
    by_alert = decide(disk, {knob: "30"}, {knob: ALERT})
    assert by_operator.action != "skip"
    assert by_alert.action == "skip" and "may not come from an alert" in by_alert.reason
    assert decide(disk, {knob: "30"}, {knob: OPERATOR}) == by_operator


def test_values_equal_in_python_but_not_in_json_are_not_taken_for_each_other(disk) -> None:
    knob = next(n for n, p in disk.parameters.items() if p.type == "integer")
    assert decide(disk, {knob: 10}, {knob: OPERATOR}).parameters[knob] == "10"
    refused = decide(disk, {knob: 10.0}, {knob: OPERATOR})
    assert refused.action == "skip" and "is not an integer" in refused.reason


def test_values_python_takes_for_equal_are_each_named_in_their_refusal(disk) -> None:
    for value in (0.0, -0.0, 0, False):
        refused = decide(disk, {"mountPoint": value}, {"mountPoint": ALERT})
        assert refused.action == "skip" and f"'{value}' does not match" in refused.reason
    assert not disk.planned  # only texts are remembered


def test_a_value_that_is_no_text_is_decided_every_time(disk) -> None:
    for _ in range(2):
        refused = decide(disk, {"mountPoint": ["/var"]}, {"mountPoint": ALERT})
        assert refused.action == "skip" and "must be a string, not list" in refused.reason
    assert not disk.planned  # nothing kept for it


def test_a_long_text_is_decided_every_time(disk) -> None:
    long, name = "/" + "v" * 1024, "x" * 1025  # over 1,024 characters
    for _ in range(2):
        decided = decide(disk, {"mountPoint": long}, {"mountPoint": ALERT})
        assert decided.parameters["mountPoint"] == long
        refused = decide(disk, {name: "/var"})
        assert refused.action == "skip" and name in refused.reason
    assert not disk.planned  # a payload chooses these: nothing kept for them
    fits = "/" + "v" * 1023
    decide(disk, {"mountPoint": fits}, {"mountPoint": ALERT})
    assert len(disk.planned) == 1  # the limit is a length, not everything


def test_the_memory_is_bounded(disk, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(policy, "_DECISIONS_REMEMBERED", 3)
    for n in range(10):
        assert decide(disk, {"mountPoint": f"/m{n}"}).parameters["mountPoint"] == f"/m{n}"
        assert len(disk.planned) <= 3


def test_a_name_of_exactly_the_limit_is_remembered_one_over_it_is_not(disk) -> None:
    for name, kept in (("x" * 1025, 0), ("x" * 1024, 1)):
        for _ in range(2):
            refused = decide(disk, {name: "/var"})
            assert refused.action == "skip" and name in refused.reason
        assert len(disk.planned) == kept
