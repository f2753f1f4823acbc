"""Parameter provenance: an alert may set only what identifies the problem, never a tuning knob."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from autoremediation.catalog import DEFAULT_SOURCES
from autoremediation.catalog_load import catalog_problems, load_catalog
from autoremediation.errors import InvalidInput
from autoremediation.planning import Planner
from autoremediation.routing import load_routes
from tests.helpers.catalogs import SHIPPED, access_remediation, base_remediation, make_catalog
from tests.helpers.fakes import TrustingGate
from tests.helpers.signal_payloads import clone, manual, sample

CATALOG = load_catalog(SHIPPED)
# Alerts pass a trusting gate: which parameters an alert may set, not whether the alert is real (that
# is tests/unit/test_provenance.py). The body's custom properties stand for the trusted rule's.
PLANNER = Planner(CATALOG, load_routes(SHIPPED, CATALOG), gate=TrustingGate())


def disk_alert(**custom: Any) -> dict[str, Any]:
    payload = clone(sample("disk-full-alert.json"))
    payload["data"]["customProperties"] = custom or None
    return payload


def only_plan(payload: Any) -> dict[str, Any]:
    [plan] = PLANNER.plan_payload(payload).plans
    return plan.to_dict()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("targetFreePercent", "90"),
        ("olderThanDays", "1"),
        ("olderThanDays", "30"),
        ("pruneContainerImages", "true"),
    ],
)
def test_an_alert_never_sets_a_tuning_knob(name: str, value: str) -> None:
    plan = only_plan(disk_alert(**{name: value}))
    assert plan["decision"] == "skip" and plan["guard"] == "parameters"
    assert f"parameter '{name}': may not come from an alert (set by operator" in plan["reason"]


def test_the_attack_of_the_issue_makes_no_dispatch() -> None:
    """All cleanup steps with one day of logs kept: from an alert body, refused as a whole."""
    custom = {"remediation": "free-disk-space", "targetFreePercent": 90, "olderThanDays": 1}
    plan = only_plan(disk_alert(**custom, pruneContainerImages=True))
    assert plan["decision"] == "skip"
    assert "may not come from an alert" in plan["reason"]


def test_the_alert_still_names_the_mount_point_and_dispatches() -> None:
    plan = only_plan(disk_alert())
    assert plan["decision"] == "dispatch"
    assert plan["parameters"] == {
        "mountPoint": "/var",
        "targetFreePercent": "20",
        "olderThanDays": "7",
        "pruneContainerImages": "false",
    }


def test_a_mount_point_from_a_custom_property_is_the_alert_s_to_say() -> None:
    payload = disk_alert(mountPoint="/data")
    payload["data"]["alertContext"]["condition"]["allOf"][0]["dimensions"] = [
        d
        for d in payload["data"]["alertContext"]["condition"]["allOf"][0]["dimensions"]
        if d["name"] != "Mount"
    ]
    plan = only_plan(payload)
    assert plan["decision"] == "dispatch" and plan["parameters"]["mountPoint"] == "/data"


def test_an_operator_may_tune_within_the_floors() -> None:
    [plan] = PLANNER.plan_payload(manual(parameters={"mountPoint": "/var", "olderThanDays": 30})).plans
    assert plan.decision.action == "dispatch" and plan.decision.parameters["olderThanDays"] == "30"


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"olderThanDays": 2}, "parameter 'olderThanDays': 2 is below the minimum 3"),
        ({"targetFreePercent": 51}, "parameter 'targetFreePercent': 51 is above the maximum 50"),
    ],
)
def test_the_floors_hold_for_operators_too(parameters: dict[str, int], message: str) -> None:
    [plan] = PLANNER.plan_payload(manual(parameters={"mountPoint": "/var", **parameters})).plans
    assert (plan.decision.action, plan.decision.reason) == ("skip", message)
    with pytest.raises(InvalidInput, match=message):
        CATALOG.get("free-disk-space").resolve_parameters(parameters)


def test_the_shipped_catalog_says_who_sets_what() -> None:
    sources = {
        (r.id, name): p.sources for r in CATALOG.remediations.values() for name, p in r.parameters.items()
    }
    alert_settable = sorted(key for key, allowed in sources.items() if "alert" in allowed)
    assert alert_settable == [
        ("free-disk-space", "mountPoint"),
        ("restart-service", "serviceName"),
        ("restore-management-access", "port"),
    ]
    assert all("operator" in allowed for allowed in sources.values())


def test_a_literal_of_the_route_file_is_the_deployment_s_choice(tmp_path: Path) -> None:
    routes = """routes:
  - name: disk
    match: {source: alert, signalType: [Log]}
    condition: disk-full
    remediation: free-disk-space
    parameters:
      mountPoint: {dimensions: [Mount]}
      targetFreePercent: {value: 30}
"""
    root = make_catalog(tmp_path / "c", base_remediation(), routes=routes)
    catalog = load_catalog(root)
    planner = Planner(catalog, load_routes(root, catalog), gate=TrustingGate())
    [plan] = planner.plan_payload(disk_alert()).plans
    assert plan.decision.action == "dispatch"
    assert plan.finding.origins == {"mountPoint": "alert", "targetFreePercent": "route"}
    assert plan.decision.parameters["targetFreePercent"] == "30"


def test_a_custom_property_cannot_pose_as_the_route_literal(tmp_path: Path) -> None:
    """The mapping names a custom property first and a literal as fallback: the property wins, and is
    the alert's claim."""
    routes = """routes:
  - name: disk
    match: {source: alert, signalType: [Log]}
    condition: disk-full
    remediation: free-disk-space
    parameters:
      targetFreePercent: {customProperty: target, value: 30}
"""
    root = make_catalog(tmp_path / "c", base_remediation(), routes=routes)
    catalog = load_catalog(root)
    planner = Planner(catalog, load_routes(root, catalog), gate=TrustingGate())
    [plan] = planner.plan_payload(disk_alert(target="85")).plans
    assert plan.decision.action == "skip" and "may not come from an alert" in plan.decision.reason


def test_a_parameter_that_does_not_say_is_operator_only(tmp_path: Path) -> None:
    assert DEFAULT_SOURCES == ("operator",)
    data = base_remediation()
    del data["parameters"]["mountPoint"]["sources"]
    catalog = load_catalog(make_catalog(tmp_path / "c", data, access_remediation()))
    assert catalog.get("free-disk-space").parameters["mountPoint"].sources == ("operator",)
    planner = Planner(catalog, load_routes(tmp_path / "c", catalog), gate=TrustingGate())
    [plan] = planner.plan_payload(disk_alert()).plans
    assert plan.decision.action == "skip"
    assert "parameter 'mountPoint': may not come from an alert (set by operator" in plan.decision.reason


def test_a_detector_reading_azure_is_no_payload_claim() -> None:
    remediation = CATALOG.get("restore-management-access")
    assert remediation.source_problem({"port": "22"}, {"port": "detector"}) is None
    operator_only = CATALOG.get("free-disk-space")
    assert operator_only.source_problem({"olderThanDays": "7"}, {"olderThanDays": "detector"}) is None
    problem = operator_only.source_problem({"olderThanDays": "7"}, {"olderThanDays": "alert"})
    assert problem is not None and problem.parameter == "olderThanDays"


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ({"secret": True, "sources": ["alert", "operator"]}, "a secret parameter never comes from an alert"),
        ({"required": True, "sources": []}, "nobody may set it, it is required and it has no default"),
        ({"sources": ["webhook"]}, "'webhook' is not one of ['alert', 'operator']"),
    ],
)
def test_the_catalog_refuses_sources_that_cannot_be(
    tmp_path: Path, spec: dict[str, Any], problem: str
) -> None:
    data = base_remediation()
    data["parameters"]["token"] = {"type": "string", "description": "t", "pattern": "^[a-z]+$", **spec}
    problems, _ = catalog_problems(make_catalog(tmp_path / "c", data))
    assert any(problem in p and "parameters.token" in p for p in problems), problems


def test_an_unknown_origin_is_the_signal_s_claim() -> None:
    """A finding made without origins (a new code path) is treated as what the alert said."""
    from autoremediation.routing import Finding

    [plan] = PLANNER.plan_payload(disk_alert()).plans
    bare = Finding(
        plan.finding.signal, "disk-full", "free-disk-space", plan.finding.target, {"olderThanDays": "1"}, "x"
    )
    assert bare.origin_of("olderThanDays") == "alert"
