"""An alert is a claim: the attacks of issue "provenance" against the shipped catalog and routes, and what
Azure Monitor's record (a fake Alerts port) lets through. Before provenance, each attack below planned a
dispatch (or an approval request) on the victim VM."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from autoremediation.catalog import Catalog
from autoremediation.catalog_load import load_catalog
from autoremediation.errors import InvalidInput, Permanent, Throttled, Transient
from autoremediation.intake import Intake
from autoremediation.planning import Planner
from autoremediation.ports import AlertRecord, AlertRuleRecord
from autoremediation.provenance import (
    AlertGate,
    ProvenanceSettings,
    ProvenanceUnavailable,
    parse_time,
    rule_trusted,
    trusted_rule_problem,
)
from autoremediation.routing import load_routes
from autoremediation.settings import Settings
from autoremediation.store.memory_queue import InProcessQueue, ManualClock
from autoremediation.store.sqlite import SqliteJobStore
from tests.helpers.catalogs import SHIPPED
from tests.helpers.fakes import FakeAlerts

SUB = "00000000-0000-0000-0000-0000000000aa"
PROD = f"/subscriptions/{SUB}/resourceGroups/rg-prod"
EVIL = f"/subscriptions/{SUB}/resourceGroups/rg-attacker"
NOW = datetime(2026, 11, 25, 10, 20, tzinfo=UTC)
FIRED = "2026-11-25T10:15:00.1234567Z"
TRUSTED_RULE = f"{PROD}/providers/Microsoft.Insights/scheduledQueryRules/disk-full-linux"
EVIL_RULE = f"{EVIL}/providers/microsoft.insights/scheduledqueryrules/disk-full-anything"


def vm(name: str) -> str:
    return f"{PROD}/providers/Microsoft.Compute/virtualMachines/{name}"


def alert_id(guid: str) -> str:
    return f"/subscriptions/{SUB}/providers/Microsoft.AlertsManagement/alerts/{guid}"


def log_alert(
    guid: str,
    targets: list[str],
    *,
    rule: str = "disk-full-linux",
    fired: str = FIRED,
    state: str = "Fired",
    custom: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A Log Alerts V2 body split by _ResourceId, one dimension row per VM, as an attacker would write it."""
    return {
        "schemaId": "azureMonitorCommonAlertSchema",
        "data": {
            "essentials": {
                "alertId": alert_id(guid),
                "alertRule": rule,
                "severity": "Sev2",
                "signalType": "Log",
                "monitorCondition": state,
                "monitoringService": "Log Alerts V2",
                "alertTargetIDs": targets,
                "firedDateTime": fired,
                **({"resolvedDateTime": "2026-11-25T10:18:00Z"} if state == "Resolved" else {}),
            },
            "alertContext": {
                "properties": dict(custom or {}),
                "condition": {
                    "allOf": [
                        {
                            "searchQuery": "InsightsMetrics | where Name == 'FreeSpacePercentage'",
                            "dimensions": [
                                {"name": "_ResourceId", "value": t},
                                {"name": "Mount", "value": "/var"},
                            ],
                        }
                        for t in targets
                    ]
                },
            },
            "customProperties": dict(custom or {}),
        },
    }


def log_context(target: str, **dimensions: str) -> dict[str, Any]:
    """``properties.context`` of a log search alert as Azure Monitor records it: its own query and rows."""
    rows = {"Mount": "/var", **dimensions}
    return {
        "conditionType": "LogQueryCriteria",
        "condition": {
            "allOf": [
                {
                    "searchQuery": "InsightsMetrics | where Name == 'FreeSpacePercentage'",
                    "dimensions": [{"name": "_ResourceId", "value": target}]
                    + [{"name": k, "value": v} for k, v in rows.items()],
                }
            ]
        },
    }


def record(guid: str, target: str, rule: str = TRUSTED_RULE, *, fired: str = FIRED, **kw: Any) -> AlertRecord:
    return AlertRecord(
        id=alert_id(guid),
        rule_id=rule,
        target_resource=target,
        monitor_condition=kw.pop("condition", "Fired"),
        fired_at=parse_time(fired),
        monitor_service=kw.pop("monitor_service", "Log Analytics"),
        signal_type=kw.pop("signal_type", "Log"),
        context=kw.pop("context", None) or log_context(target),
        **kw,
    )


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(SHIPPED)


class World:
    def __init__(self, tmp_path: Path, catalog: Catalog, **settings: Any) -> None:
        self.alerts = FakeAlerts()
        self.alerts.rules[TRUSTED_RULE.lower()] = AlertRuleRecord(
            TRUSTED_RULE, {"owner": "platform"}, scopes=(PROD,)
        )
        self.alerts.rules[EVIL_RULE.lower()] = AlertRuleRecord(
            EVIL_RULE, {"remediation": "restart-service", "serviceName": "systemd-exit"}, scopes=(PROD,)
        )
        self.clock = ManualClock(NOW)
        options = {"trusted_rules": (f"{PROD}/providers/Microsoft.Insights/*",), **settings}
        self.gate = AlertGate(self.alerts, ProvenanceSettings(**options), self.clock)
        self.planner = Planner(catalog, load_routes(SHIPPED, catalog), gate=self.gate)
        self.store = SqliteJobStore(str(tmp_path / "jobs.db"))
        self.queue = InProcessQueue(self.clock)
        self.intake = Intake(self.planner, self.store, self.queue, self.clock)

    def plan(self, payload: Any) -> dict[str, Any]:
        return self.planner.plan_payload(payload).to_dict()

    def submit(self, payload: Any) -> Any:
        return self.intake.submit(payload, actor="action-group")


@pytest.fixture
def world(tmp_path: Path, catalog: Catalog) -> World:
    return World(tmp_path, catalog)


def decisions(report: dict[str, Any]) -> list[tuple[str, str]]:
    return [(p["target"].rsplit("/", 1)[-1], p["decision"]) for p in report["plans"]]


# -- a confirmed alert still works -------------------------------------------------------------------


def test_a_confirmed_alert_from_a_trusted_rule_dispatches(world: World) -> None:
    world.alerts.add(record("ok", vm("vm-1")))
    report = world.plan(log_alert("ok", [vm("vm-1")]))
    assert decisions(report) == [("vm-1", "dispatch")]
    assert report["plans"][0]["parameters"]["mountPoint"] == "/var"
    result = world.submit(log_alert("ok", [vm("vm-1")]))
    assert [a.job.status for a in result.jobs] == ["planned"] and len(world.queue.receive()) == 1


# -- the attacks ---------------------------------------------------------------------------------------


def test_forged_log_search_alert_from_an_untrusted_rule_makes_no_job(world: World) -> None:
    # The attacker's own rule on their workspace: `print _ResourceId="<victim>"`, split by _ResourceId.
    # Azure Monitor really holds that alert, targeting the victim: only the rule's trust stops it.
    world.alerts.add(record("evil", vm("victim"), EVIL_RULE))
    forged = log_alert(
        "evil",
        [vm("victim")],
        rule="disk-full-anything",
        custom={"remediation": "restart-service", "serviceName": "systemd-exit"},
    )
    report = world.plan(forged)
    assert report["plans"] == []
    [note] = [n["message"] for n in report["notes"]]
    assert EVIL_RULE in note and "REMEDIATION_TRUSTED_ALERT_RULES" in note and "not trusted" in note
    result = world.submit(forged)
    assert result.jobs == () and world.queue.receive() == [] and world.store.list() == []


def test_body_custom_properties_are_ignored_the_rule_resource_decides(world: World) -> None:
    # A trusted rule's alert whose body was rewritten: ask for restart-service, or tune free-disk-space.
    world.alerts.add(record("tampered", vm("vm-1")))
    tuned = {
        "remediation": "free-disk-space",
        "targetFreePercent": "90",
        "olderThanDays": "1",
        "pruneContainerImages": "true",
    }
    report = world.plan(log_alert("tampered", [vm("vm-1")], custom=tuned))
    [plan] = report["plans"]
    assert plan["route"] == "disk-full-log-search"  # the routes, not the body's `remediation`
    assert (
        plan["parameters"]["targetFreePercent"] != "90"
        and plan["parameters"]["pruneContainerImages"] == "false"
    )
    restart = world.plan(
        log_alert("tampered", [vm("vm-1")], custom={"remediation": "restart-service", "serviceName": "sshd"})
    )
    assert [p["remediation"] for p in restart["plans"]] == ["free-disk-space"]


def test_an_alert_that_fired_in_2020_is_refused(world: World) -> None:
    old = "2020-01-01T00:00:00Z"
    world.alerts.add(record("old", vm("vm-1"), fired=old))
    report = world.plan(log_alert("old", [vm("vm-1")], fired=old))
    assert report["plans"] == []
    [note] = [n["message"] for n in report["notes"]]
    assert note.startswith("provenance:") and "older than 30 min" in note


def test_freshness_is_azure_monitors_fired_time_not_the_payloads(world: World) -> None:
    world.alerts.add(record("replayed", vm("vm-1"), fired="2026-11-24T10:00:00Z"))
    report = world.plan(log_alert("replayed", [vm("vm-1")], fired=FIRED))  # the body claims "just now"
    assert report["plans"] == []
    assert "fired at 2026-11-24T10:00:00+00:00 according to Azure Monitor" in report["notes"][0]["message"]


def test_an_alert_is_fresh_up_to_the_configured_age(tmp_path: Path, catalog: Catalog) -> None:
    world = World(tmp_path, catalog, max_age=timedelta(minutes=5))
    world.alerts.add(record("edge", vm("vm-1")))  # fired 10:15:00.12, now 10:20:00
    assert decisions(world.plan(log_alert("edge", [vm("vm-1")]))) == [("vm-1", "dispatch")]
    world.clock.advance(1)
    assert world.plan(log_alert("edge", [vm("vm-1")]))["plans"] == []


def test_one_alert_naming_300_vms_acts_only_on_its_recorded_target(world: World) -> None:
    targets = [vm(f"vm-{i:03}") for i in range(300)]
    world.alerts.add(record("wide", targets[0]))
    report = world.plan(log_alert("wide", targets))
    assert decisions(report) == [("vm-000", "dispatch")]
    [note] = [n["message"] for n in report["notes"]]
    assert note.startswith("provenance: the payload names 299 VM(s) that are not the target")
    assert len(world.submit(log_alert("wide", targets)).jobs) == 1 and len(world.store.list()) == 1


def test_the_job_limit_is_a_setting(tmp_path: Path, catalog: Catalog) -> None:
    world = World(tmp_path, catalog, max_jobs=0)
    world.alerts.add(record("one", vm("vm-1")))
    report = world.plan(log_alert("one", [vm("vm-1")]))
    assert report["plans"] == []
    assert "asks for 1 jobs, more than REMEDIATION_MAX_JOBS_PER_SIGNAL=0" in report["notes"][-1]["message"]


# -- what Azure does not confirm --------------------------------------------------------------------------


def test_an_unknown_alert_id_is_refused(world: World) -> None:
    report = world.plan(log_alert("never-fired", [vm("vm-1")]))
    assert report["plans"] == []
    assert (
        report["notes"][0]["message"] == f"provenance: Azure Monitor has no alert {alert_id('never-fired')}"
    )


def test_a_vm_that_is_not_the_alerts_target_is_a_note_not_a_job(world: World) -> None:
    world.alerts.add(record("one", vm("vm-1")))
    report = world.plan(log_alert("one", [vm("vm-1"), vm("victim")]))
    assert decisions(report) == [("vm-1", "dispatch")]
    [note] = [n["message"] for n in report["notes"]]
    assert note.startswith("provenance: ") and "not the target of alert" in note
    assert vm("victim") in note and vm("vm-1") in note
    result = world.submit(log_alert("one", [vm("vm-1"), vm("victim")]))
    assert [a.job.status for a in result.jobs] == ["planned"] and len(world.store.list()) == 1
    assert len(world.queue.receive()) == 1  # only the confirmed target is queued


def test_monitor_condition_must_agree(world: World) -> None:
    world.alerts.add(record("cond", vm("vm-1"), condition="Resolved"))
    note = world.plan(log_alert("cond", [vm("vm-1")]))["notes"][0]["message"]
    assert note.startswith("provenance:") and "as Resolved, the payload says fired" in note


def test_the_rule_must_be_the_payloads_rule(world: World) -> None:
    world.alerts.add(record("rule", vm("vm-1")))
    note = world.plan(log_alert("rule", [vm("vm-1")], rule="disk-full-windows"))["notes"][0]["message"]
    assert note.startswith("provenance:") and TRUSTED_RULE in note and "'disk-full-windows'" in note
    payload = log_alert("rule", [vm("vm-1")])
    payload["data"]["essentials"]["alertRuleId"] = TRUSTED_RULE.replace("rg-prod", "rg-other")
    assert world.plan(payload)["plans"] == []


def test_a_rule_that_no_longer_exists_is_refused(world: World) -> None:
    gone = f"{PROD}/providers/Microsoft.Insights/scheduledQueryRules/disk-full-gone"
    world.alerts.add(record("gone", vm("vm-1"), gone))
    note = world.plan(log_alert("gone", [vm("vm-1")], rule="disk-full-gone"))["notes"][0]["message"]
    assert note == f"provenance: alert rule {gone} does not exist in ARM"


@pytest.mark.parametrize("error", [Transient("connection reset"), Throttled("429", retry_after=5)])
def test_azure_monitor_unreachable_fails_closed(world: World, error: Exception) -> None:
    world.alerts.add(record("ok", vm("vm-1")))
    world.alerts.failure = error
    with pytest.raises(ProvenanceUnavailable, match=r"^provenance: Azure Monitor could not confirm"):
        world.submit(log_alert("ok", [vm("vm-1")]))
    assert world.store.list() == [] and world.queue.receive() == []


def test_azure_monitor_refusing_the_read_fails_closed(world: World) -> None:
    world.alerts.add(record("ok", vm("vm-1")))
    world.alerts.failure = Permanent("403 AuthorizationFailed")
    report = world.plan(log_alert("ok", [vm("vm-1")]))
    assert report["plans"] == [] and "403 AuthorizationFailed" in report["notes"][0]["message"]


def test_without_azure_monitor_no_alert_is_planned(catalog: Catalog) -> None:
    report = (
        Planner(catalog, load_routes(SHIPPED, catalog)).plan_payload(log_alert("x", [vm("vm-1")])).to_dict()
    )
    assert report["plans"] == [] and report["notes"][0]["message"].startswith("provenance:")


def test_an_unconfirmed_resolved_does_not_cancel_the_confirmed_job(world: World) -> None:
    world.alerts.add(record("live", vm("vm-1")))
    [admitted] = world.submit(log_alert("live", [vm("vm-1")])).jobs
    forged = world.submit(log_alert("live", [vm("vm-1")], state="Resolved"))  # Azure: still Fired
    assert forged.resolved == ()
    assert world.store.get(admitted.job.id).status == "planned"
    world.alerts.resolve(alert_id("live"), "2026-11-25T10:18:00Z")
    assert world.submit(log_alert("live", [vm("vm-1")], state="Resolved")).resolved == (admitted.job.id,)
    assert world.store.get(admitted.job.id).status == "cancelled"


def test_an_operators_request_is_not_bounded_by_the_signal_limit(tmp_path: Path, catalog: Catalog) -> None:
    world = World(tmp_path, catalog, max_jobs=1)
    manual = {
        "remediation": "free-disk-space",
        "targets": [vm("vm-1"), vm("vm-2")],
        "reason": "x",
        "dryRun": False,
        "requestId": "r-1",
    }
    assert len(world.plan(manual)["plans"]) == 2  # an operator's own request is not a signal's fan-out


# -- trusted rules -------------------------------------------------------------------------------------------


def test_trusted_rules_are_ids_or_globs_inside_one_resource_group() -> None:
    patterns = (TRUSTED_RULE, f"{EVIL}/providers/Microsoft.Insights/metricAlerts/cpu-*")
    assert rule_trusted(TRUSTED_RULE.upper(), patterns)
    assert rule_trusted(f"{EVIL}/providers/microsoft.insights/metricalerts/cpu-high", patterns)
    assert not rule_trusted(f"{EVIL}/providers/Microsoft.Insights/metricAlerts/disk-full", patterns)
    assert not rule_trusted(TRUSTED_RULE + "-2", (TRUSTED_RULE,))
    for broad in (
        "*",
        f"/subscriptions/{SUB}/resourceGroups/*/providers/x",
        "/subscriptions/*/resourceGroups/rg/providers/x",
    ):
        assert trusted_rule_problem(broad) is not None
        assert not rule_trusted(TRUSTED_RULE, (broad,))


def test_the_setting_refuses_a_glob_broader_than_a_resource_group() -> None:
    broad = f"/subscriptions/{SUB}/resourceGroups/*/providers/x"
    env = {"REMEDIATION_TRUSTED_ALERT_RULES": f"{TRUSTED_RULE}, {broad}"}
    with pytest.raises(InvalidInput, match="REMEDIATION_TRUSTED_ALERT_RULES entry"):
        Settings.from_env(env)
    ok = Settings.from_env({"REMEDIATION_TRUSTED_ALERT_RULES": f"{TRUSTED_RULE};{EVIL}/providers/*"})
    assert ok.trusted_alert_rules == (TRUSTED_RULE, f"{EVIL}/providers/*")
    assert (
        Settings.from_env({}).alert_max_age_minutes == 30 and Settings.from_env({}).max_jobs_per_signal == 20
    )


def test_parse_time_reads_azure_spellings() -> None:
    assert parse_time("2026-11-25T10:05:12.3456789Z") == datetime(2026, 11, 25, 10, 5, 12, 345678, tzinfo=UTC)
    assert parse_time("2026-11-25T10:05:12+01:00") == datetime(2026, 11, 25, 9, 5, 12, tzinfo=UTC)
    assert parse_time("2026-11-25T10:05:12") == datetime(2026, 11, 25, 10, 5, 12, tzinfo=UTC)
    assert parse_time("yesterday") is None and parse_time(None) is None


def test_a_gate_passes_events_and_manual_requests_through(world: World) -> None:
    payload = copy.deepcopy(
        {
            "remediation": "free-disk-space",
            "targets": [vm("vm-1")],
            "reason": "x",
            "dryRun": False,
            "requestId": "r-1",
        }
    )
    assert decisions(world.plan(payload)) == [("vm-1", "dispatch")]
    assert world.alerts.reads == 0
