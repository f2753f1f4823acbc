"""A static decision is remembered by what it was made of: the same answers, each caller its own dict."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoremediation import policy
from autoremediation.catalog import ALERT, OPERATOR, load_catalog
from autoremediation.policy import _static_decision, plan_decision
from tests.helpers.catalogs import make_catalog


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


def test_the_sources_and_the_os_are_part_of_what_is_remembered(disk) -> None:
    knob = next(n for n, p in disk.parameters.items() if p.type == "integer" and ALERT not in p.sources)
    by_operator = decide(disk, {knob: "30"}, {knob: OPERATOR})
    by_alert = decide(disk, {knob: "30"}, {knob: ALERT})
    assert by_operator.action != "skip"
    assert by_alert.action == "skip" and "may not come from an alert" in by_alert.reason
    assert decide(disk, {knob: "30"}, {knob: OPERATOR}) == by_operator
    linux, windows = decide(disk, {}, os_type="linux"), decide(disk, {}, os_type="windows")
    assert linux == _static_decision(disk, {}, "linux", None)
    assert windows == _static_decision(disk, {}, "windows", None)


def test_values_equal_in_python_but_not_in_json_are_not_taken_for_each_other(disk) -> None:
    knob = next(n for n, p in disk.parameters.items() if p.type == "integer")
    assert decide(disk, {knob: 10}, {knob: OPERATOR}).parameters[knob] == "10"
    refused = decide(disk, {knob: 10.0}, {knob: OPERATOR})
    assert refused.action == "skip" and "is not an integer" in refused.reason


def test_an_unhashable_value_is_decided_every_time(disk) -> None:
    for _ in range(2):
        refused = decide(disk, {"mountPoint": ["/var"]}, {"mountPoint": ALERT})
        assert refused.action == "skip" and "must be a string, not list" in refused.reason
    assert not disk.planned  # nothing kept for it


def test_the_memory_is_bounded(disk, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(policy, "_DECISIONS_REMEMBERED", 3)
    for n in range(10):
        assert decide(disk, {"mountPoint": f"/m{n}"}).parameters["mountPoint"] == f"/m{n}"
        assert len(disk.planned) <= 3
