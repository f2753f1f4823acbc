"""What is routed is Azure Monitor's record of a confirmed alert, not the body that claimed it; a trusted
rule acts only inside its own scopes and only while enabled."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from autoremediation.catalog import Catalog
from autoremediation.catalog_load import load_catalog
from autoremediation.ports import AlertRuleRecord
from autoremediation.provenance import service_name, under
from tests.helpers.catalogs import SHIPPED
from tests.unit.test_provenance import (
    EVIL,
    PROD,
    TRUSTED_RULE,
    World,
    decisions,
    log_alert,
    log_context,
    record,
    vm,
)


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(SHIPPED)


@pytest.fixture
def world(tmp_path: Path, catalog: Catalog) -> World:
    return World(tmp_path, catalog)


def restart_service_body(guid: str, target: str) -> dict[str, Any]:
    """A real trusted disk-full alert, re-posted by a key holder as a failed-service log alert."""
    body = log_alert(guid, [target])
    body["data"]["essentials"]["monitoringService"] = "Log Alerts V2"
    body["data"]["alertContext"]["condition"]["allOf"] = [
        {
            "searchQuery": "Syslog | where SyslogMessage has 'Failed with result'",
            "dimensions": [
                {"name": "_ResourceId", "value": target},
                {"name": "ServiceName", "value": "systemd-exit"},
            ],
        }
    ]
    return body


def test_a_reposted_body_cannot_reroute_a_confirmed_alert_to_restart_service(world: World) -> None:
    world.alerts.add(record("disk", vm("vm-1")))  # Azure: a disk-full alert on vm-1, /var
    report = world.plan(restart_service_body("disk", vm("vm-1")))
    [plan] = report["plans"]
    assert (plan["remediation"], plan["route"]) == ("free-disk-space", "disk-full-log-search")
    assert plan["parameters"]["mountPoint"] == "/var"
    assert "serviceName" not in plan["parameters"]


def test_the_body_cannot_change_the_mount_point_azure_recorded(world: World) -> None:
    world.alerts.add(record("disk", vm("vm-1"), context=log_context(vm("vm-1"), Mount="/data")))
    body = log_alert("disk", [vm("vm-1")])  # says /var
    [plan] = world.plan(body)["plans"]
    assert plan["parameters"]["mountPoint"] == "/data"


def test_an_alert_whose_record_has_no_context_does_not_route_and_says_why(world: World) -> None:
    world.alerts.add(replace(record("bare", vm("vm-1")), context={}))
    report = world.plan(log_alert("bare", [vm("vm-1")]))  # the body carries a disk-full query
    assert report["plans"] == []
    messages = [n["message"] for n in report["notes"]]
    assert any(m.startswith("provenance: Azure Monitor records no alert context") for m in messages)
    assert any(m.startswith("no route matches this alert") for m in messages)


def test_activity_log_services_are_named_as_the_common_alert_schema_names_them() -> None:
    assert service_name("ActivityLog Administrative") == "Activity Log - Administrative"
    assert service_name("Platform") == "Platform"
    assert service_name(" Log Analytics ") == "Log Analytics"


# -- the rule's scopes and state -------------------------------------------------------------------------


def test_a_trusted_rule_cannot_reach_a_vm_outside_its_scopes(tmp_path: Path, catalog: Catalog) -> None:
    world = World(tmp_path, catalog)
    world.alerts.rules[TRUSTED_RULE.lower()] = AlertRuleRecord(
        TRUSTED_RULE, {}, scopes=(f"{PROD}/providers/Microsoft.Compute/virtualMachines/vm-1",)
    )
    outside = vm("vm-10")  # a prefix of the id is not containment
    world.alerts.add(record("far", outside))
    report = world.plan(log_alert("far", [outside]))
    assert report["plans"] == []
    [note] = [n["message"] for n in report["notes"]]
    assert note.startswith("provenance: alert ") and "not under the scopes of rule" in note
    assert outside in note and TRUSTED_RULE in note
    world.alerts.add(record("near", vm("vm-1")))
    assert decisions(world.plan(log_alert("near", [vm("vm-1")]))) == [("vm-1", "dispatch")]


def test_a_rule_without_scopes_reaches_nothing(tmp_path: Path, catalog: Catalog) -> None:
    world = World(tmp_path, catalog)
    world.alerts.rules[TRUSTED_RULE.lower()] = AlertRuleRecord(TRUSTED_RULE, {})
    world.alerts.add(record("x", vm("vm-1")))
    [note] = [n["message"] for n in world.plan(log_alert("x", [vm("vm-1")]))["notes"]]
    assert "none recorded" in note


def test_a_workspace_scope_holds_the_vms_of_its_own_subscription_only(
    tmp_path: Path, catalog: Catalog
) -> None:
    world = World(tmp_path, catalog)
    workspace = f"{EVIL}/providers/Microsoft.OperationalInsights/workspaces/logs"
    world.alerts.rules[TRUSTED_RULE.lower()] = AlertRuleRecord(TRUSTED_RULE, {}, scopes=(workspace,))
    world.alerts.add(record("ws", vm("vm-1")))
    assert decisions(world.plan(log_alert("ws", [vm("vm-1")]))) == [("vm-1", "dispatch")]
    other = vm("vm-9").replace("0000000000aa", "0000000000bb")
    world.alerts.add(record("ws2", other))
    assert world.plan(log_alert("ws2", [other]))["plans"] == []


def test_a_disabled_rule_starts_nothing(tmp_path: Path, catalog: Catalog) -> None:
    world = World(tmp_path, catalog)
    world.alerts.rules[TRUSTED_RULE.lower()] = AlertRuleRecord(
        TRUSTED_RULE, {}, enabled=False, scopes=(PROD,)
    )
    world.alerts.add(record("off", vm("vm-1")))
    report = world.plan(log_alert("off", [vm("vm-1")]))
    assert report["plans"] == []
    assert (
        report["notes"][0]["message"]
        == f"provenance: alert rule {TRUSTED_RULE} is disabled in ARM: its alerts start nothing"
    )


def test_under_compares_whole_path_segments_case_insensitively() -> None:
    assert under(f"{PROD}/providers/X/y/Z", PROD.upper() + "/")
    assert under(PROD, PROD)
    assert not under(f"{PROD}-2/providers/X/y/z", PROD)
    assert not under(PROD, "")
