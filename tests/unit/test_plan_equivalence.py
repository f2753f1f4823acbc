"""The engine plans exactly as the reference copy in ``tests/reference`` does, whatever it is sent.

Parsing, routing, provenance and the static policy were made faster; what they decide must not move.
Every payload (samples, the seed payloads, Microsoft's published ones when present, mutations and random
JSON) is planned by both, against an Azure Monitor that tells the truth, lies or fails in each way the
gate must notice, and the whole outcome is compared field by field: the signals, findings, decisions,
notes, refusals, what was remembered, the job keys, and the exact error when a payload is refused.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from localfleet.alerting import parse_time

from autoremediation import planning, provenance, route_model
from autoremediation.catalog import Catalog, load_catalog
from autoremediation.errors import NotFound, Transient
from autoremediation.ports import AlertRecord, AlertRuleRecord
from autoremediation.resources import VmRef
from autoremediation.routing import Route, load_routes
from autoremediation.store.memory_queue import ManualClock
from tests.helpers.catalogs import FIXTURE_ROUTES, SHIPPED
from tests.helpers.signal_payloads import (
    activity_context,
    alert,
    essentials,
    log_v2_context,
    metric_condition,
    metric_context,
    nsg_rule_id,
    sample,
    vm_id,
    workspace_id,
)
from tests.reference import planning as ref_planning
from tests.reference import policy as ref_policy
from tests.reference import provenance as ref_provenance
from tests.reference import resources as ref_resources
from tests.reference import route_model as ref_route_model
from tests.reference.signals import model as ref_model
from tests.unit.test_signals_fuzz import VALID, json_values, mutated

RULE_GROUP = "/providers/Microsoft.Insights/scheduledQueryRules/"
GENERATED_ID = re.compile(r"req-[0-9a-f]{20}")
VM_PROVIDER = "/providers/Microsoft.Compute/virtualMachines/"
VARIANTS = (
    "as-sent",
    "missing",
    "unavailable",
    "other-state",
    "fired-later",
    "other-rule",
    "untrusted-rule",
    "rule-disabled",
    "rule-missing",
    "out-of-scope",
    "workspace-scope",
    "no-context",
    "bad-context",
    "other-target",
    "activity-service",
    "too-old",
    "override-condition",
    "override-remediation",
    "unknown-remediation",
)

# Field names of the reference's records, by class name: the engine's must hold the same values.
_RECORDS = (
    ref_model.Signal,
    ref_model.ManualRequest,
    ref_route_model.Finding,
    ref_route_model.Route,
    ref_planning.Plan,
    ref_planning.Note,
    ref_planning.PlanReport,
    ref_policy.Decision,
    ref_resources.VmRef,
)
FIELDS = {cls.__name__: tuple(f.name for f in fields(cls)) for cls in _RECORDS}


def dump(value: Any) -> Any:
    """A value as plain, comparable data: records by the reference's field names, containers with
    their type (a tuple is not a list), everything else as its repr (NaN equals NaN)."""
    name = type(value).__name__
    if name in FIELDS:
        return (name, tuple((f, dump(getattr(value, f))) for f in FIELDS[name]))
    if isinstance(value, Mapping):
        return (name, tuple((dump(k), dump(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return (name, tuple(dump(v) for v in value))
    return (name, repr(value))


def catalogs() -> list[tuple[Catalog, tuple[Route, ...]]]:
    """The shipped catalog with its routes, and with the engine tests' own routes."""
    shipped = load_catalog(SHIPPED)
    fixture = tuple(
        Route(
            name=entry["name"],
            match=entry["match"],
            condition=entry["condition"],
            remediation=entry.get("remediation"),
            detector=entry.get("detector"),
            parameters=entry.get("parameters") or {},
        )
        for entry in yaml.safe_load(FIXTURE_ROUTES.read_text(encoding="utf-8"))["routes"]
    )
    return [(shipped, load_routes(SHIPPED, shipped)), (shipped, fixture)]


CATALOGS = catalogs()


def _essentials(payload: Any) -> Mapping[str, Any]:
    try:
        found = payload["data"]["essentials"]
    except (KeyError, TypeError, IndexError):
        return {}
    return found if isinstance(found, Mapping) else {}


def _time(text: Any) -> datetime | None:
    return parse_time(text) if isinstance(text, str) else None


def _target(essentials: Mapping[str, Any]) -> str:
    ids = []
    for key in ("alertTargetIDs", "configurationItems"):
        found = essentials.get(key)
        ids += found if isinstance(found, list) else [found]
    texts = [t for t in ids if isinstance(t, str) and t.lower().startswith("/subscriptions/")]
    vms = [t for t in texts if "/virtualmachines/" in t.lower()]
    return (vms or texts or [""])[0]


class Monitor:
    """Azure Monitor's record of the payload's alert, true or altered as ``variant`` says."""

    def __init__(self, payload: Any, variant: str) -> None:
        self.variant = variant
        essentials = _essentials(payload)
        alert_id = essentials.get("alertId")
        self.alert_id = alert_id if isinstance(alert_id, str) else None
        rule = essentials.get("alertRule")
        name = rule.strip() if isinstance(rule, str) and rule.strip() else "some-rule"
        target = _target(essentials)
        sub = target.split("/")[2] if target.count("/") >= 2 else "00000000-0000-0000-0000-000000000009"
        group = f"/subscriptions/{sub}/resourceGroups/rg-trusted"
        self.trusted = (f"{group}/providers/*",)
        self.rule_id = f"{group}{RULE_GROUP}{name}"
        if variant == "other-rule":
            self.rule_id = f"{group}{RULE_GROUP}{name}-other"
        if variant == "untrusted-rule":
            self.rule_id = f"/subscriptions/{sub}/resourceGroups/rg-other{RULE_GROUP}{name}"
        if variant == "other-target":
            target = (
                f"/subscriptions/{sub}/resourceGroups/rg-x/providers/Microsoft.Compute/virtualMachines/vm-x"
            )
        state = essentials.get("monitorCondition")
        state = state if isinstance(state, str) else "Fired"
        if variant == "other-state":
            state = "Resolved" if state.strip().lower() == "fired" else "Fired"
        fired = _time(essentials.get("firedDateTime"))
        if fired is not None and variant == "fired-later":
            fired += timedelta(minutes=10)
        context = payload["data"].get("alertContext") if isinstance(payload, dict) and essentials else None
        context = {k: v for k, v in context.items() if k != "properties"} if isinstance(context, dict) else {}
        if variant == "no-context":
            context = {}
        if variant == "bad-context":
            context = {"condition": ["not", "an", "object"]}
        service = essentials.get("monitoringService")
        service = service if isinstance(service, str) else ""
        if variant == "activity-service":
            service = "ActivityLog Administrative"
        signal_type = essentials.get("signalType")
        self.record = AlertRecord(
            self.alert_id or "",
            self.rule_id,
            target,
            state,
            fired_at=fired,
            monitor_service=service,
            signal_type=signal_type if isinstance(signal_type, str) else "",
            context=context,
        )
        custom = payload["data"].get("customProperties") if essentials else None
        custom = {str(k): str(v) for k, v in custom.items()} if isinstance(custom, dict) else {}
        if variant == "override-condition":
            custom = {"condition": "disk-full", "mountPoint": "/data"}
        if variant == "override-remediation":
            custom = {"remediation": "free-disk-space", "mountPoint": "/var"}
        if variant == "unknown-remediation":
            custom = {"remediation": "no-such-thing"}
        scopes: tuple[str, ...] = (f"/subscriptions/{sub}",)
        if variant == "out-of-scope":
            scopes = (f"/subscriptions/{sub}/resourceGroups/rg-elsewhere",)
        if variant == "workspace-scope":
            scopes = (f"{group}/providers/Microsoft.OperationalInsights/workspaces/law",)
        self.rule = AlertRuleRecord(self.rule_id, custom, variant != "rule-disabled", scopes)
        self.now = (fired or datetime(2026, 11, 25, 10, 0, tzinfo=UTC)) + timedelta(minutes=2)
        if variant == "too-old":
            self.now += timedelta(hours=3)

    def get_alert(self, alert_id: str) -> AlertRecord:
        if self.variant == "unavailable":
            raise Transient("Azure Monitor is away")
        if self.variant == "missing" or self.alert_id is None:
            raise NotFound(alert_id)
        return self.record

    def get_rule(self, rule_id: str) -> AlertRuleRecord:
        if self.variant == "rule-missing":
            raise NotFound(rule_id)
        return self.rule

    def change_state(self, alert_id: str, new_state: str, comment: str) -> None:
        return None


def _detector(finding: Callable[..., Any]) -> Callable[[str, Any], tuple[list[Any], list[str]]]:
    """A detector that finds one VM next to the resource the signal is about, with its evidence."""

    def detect(name: str, signal: Any) -> tuple[list[Any], list[str]]:
        about = signal.resource_id or (signal.resources[0] if signal.resources else "")
        parts = about.split("/")
        if len(parts) < 5:
            return [], [f"{name}: nothing to look at"]
        vm = ref_resources.VmRef.parse(
            f"/subscriptions/{parts[2]}/resourceGroups/{parts[4]}/providers/Microsoft.Compute/virtualMachines/v1"
        )
        if vm is None:
            return [], [f"{name}: no VM"]
        target = VmRef.parse(vm.id) if finding is route_model.Finding else vm
        found = finding(
            signal=signal,
            condition="nsg-lockout",
            remediation="restore-management-access",
            target=target,
            parameters={"port": "22"},
            route=f"detector:{name}",
            evidence={"rule": about},
            origins={"port": "detector"},
        )
        return [found], [f"{name}: looked at {about}"]

    return detect


def outcome(engine: str, payload: Any, variant: str, catalog: Catalog, routes: tuple[Route, ...]) -> Any:
    """Everything one engine makes of one payload, planned twice (the second may be remembered)."""
    monitor = Monitor(payload, variant)
    clock = ManualClock(monitor.now)
    if engine == "reference":
        gate: Any = ref_provenance.AlertGate(
            monitor, ref_provenance.ProvenanceSettings(trusted_rules=monitor.trusted, max_jobs=3), clock
        )
        planner: Any = ref_planning.Planner(
            catalog, routes, detect=_detector(ref_route_model.Finding), gate=gate
        )
        key: Callable[[Any], str] = ref_planning.idempotency_key
        change: Callable[[Any], Any] = ref_planning.change_of
    else:
        gate = provenance.AlertGate(
            monitor, provenance.ProvenanceSettings(trusted_rules=monitor.trusted, max_jobs=3), clock
        )
        planner = planning.Planner(catalog, routes, detect=_detector(route_model.Finding), gate=gate)
        key, change = planning.idempotency_key, planning.change_of
    results = []
    for later in (0, 0, 31):  # the second delivery may be judged on the first read, the third not
        clock.advance(later)
        try:
            report = planner.plan_payload(payload)
        except Exception as error:  # the same refusal, in the same words
            results.append(("raised", type(error).__name__, str(error)))
            continue
        results.append(
            (
                dump(report),
                report.to_dict(),
                [key(p.finding) for p in report.plans],
                [change(s) for s in report.signals],
                [s.summary() for s in report.signals],
            )
        )
    return results


def assert_same(payload: Any, variants: tuple[str, ...] = VARIANTS) -> None:
    for catalog, routes in CATALOGS:
        for variant in variants:
            expected = _same_generated_ids(outcome("reference", payload, variant, catalog, routes))
            actual = _same_generated_ids(outcome("engine", payload, variant, catalog, routes))
            assert actual == expected, (variant, payload)


def _same_generated_ids(results: Any) -> str:
    """The results as text, a request id generated for a manual request without one said once."""
    return GENERATED_ID.sub("req-(generated)", repr(results))


def test_seed_payloads_plan_as_the_reference_does_for_every_kind_of_record() -> None:
    planned = 0
    for payload in VALID:
        assert_same(payload)
        planned += 1
    assert planned >= 16


def test_the_reference_is_not_the_engine() -> None:
    assert ref_planning.Planner is not planning.Planner
    assert ref_provenance.AlertGate is not provenance.AlertGate


def test_variants_reach_every_gate_outcome() -> None:
    """The comparison is worth something only if the records make the gate say each of its answers."""
    disk_full = sample("disk-full-alert.json")
    catalog, routes = CATALOGS[0]
    said = set()
    for variant in VARIANTS:
        [first, *_] = outcome("engine", disk_full, variant, catalog, routes)
        if first[0] == "raised":
            said.add((variant, False, (first[1],)))
            continue
        report = first[1]
        said.add((variant, bool(report["plans"]), tuple(n["message"].split(" ")[0] for n in report["notes"])))
    assert any(plans for _, plans, _ in said)
    assert sum(1 for _, plans, _ in said if not plans) >= 10


def _shared_payloads() -> list[Any]:
    folder = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "azure"
    if not folder.is_dir():
        pytest.skip(f"reference payloads not present at {folder}")
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(folder.glob("*.json"))]


def test_microsofts_published_payloads_plan_as_the_reference_does() -> None:
    payloads = _shared_payloads()
    assert len(payloads) >= 15
    for payload in payloads:
        assert_same(payload)


EQUIVALENCE = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@EQUIVALENCE
@given(mutated(), st.sampled_from(VARIANTS))
def test_mutated_payloads_plan_as_the_reference_does(payload: Any, variant: str) -> None:
    assert_same(payload, (variant,))


@EQUIVALENCE
@given(json_values, st.sampled_from(VARIANTS))
def test_arbitrary_json_plans_as_the_reference_does(payload: Any, variant: str) -> None:
    assert_same(payload, (variant,))


@EQUIVALENCE
@given(mutated(), json_values)
def test_a_recorded_context_of_any_shape_routes_as_the_reference_does(payload: Any, context: Any) -> None:
    if isinstance(payload, dict) and isinstance(payload.get("data"), dict):
        payload["data"]["alertContext"] = context
    assert_same(payload, ("as-sent",))


# Alerts built from the values the engine reads, so random draws reach every branch of routing: several
# rows per VM, VMs named in several spellings, children of VMs, severities and states as sent in the wild.
VM_IDS = [
    vm_id("vm-a"),
    vm_id("vm-a").lower(),
    vm_id("vm-a").upper() + "/",
    vm_id("vm-b"),
    vm_id("vm-a") + "/extensions/ama",
    workspace_id(),
    nsg_rule_id(),
    " " + vm_id("vm-c") + " ",
    "vm-a",
]
MOUNTS = ["/", "/var", "/var", "C:", "", "/bad mount;", "x" * 300]
rows = st.fixed_dictionaries(
    {},
    optional={
        "_ResourceId": st.sampled_from(VM_IDS),
        "ResourceId": st.sampled_from(VM_IDS),
        "Mount": st.sampled_from(MOUNTS),
        "InstanceName": st.sampled_from(MOUNTS),
        "Computer": st.sampled_from(["vm-a", "vm-b"]),
    },
)
contexts = st.one_of(
    st.builds(
        lambda query, r, props: log_v2_context(query, *r, properties=props),
        st.sampled_from(["InsightsMetrics | FreeSpacePercentage", "Perf | % Free Space", "Heartbeat", ""]),
        st.lists(rows, max_size=4),
        st.sampled_from([{}, {"mountPoint": "/data"}, {"condition": "disk-full"}]),
    ),
    st.builds(
        lambda name, dims: metric_context(
            metric_condition(name, [{"name": k, "value": v} for r in dims for k, v in r.items()])
        ),
        st.sampled_from(["LogicalDisk\\% Free Space", "disk/free_percent", "Percentage CPU"]),
        st.lists(rows, max_size=3),
    ),
    st.builds(
        lambda r: {
            "SearchQuery": "InsightsMetrics | FreeSpacePercentage",
            "SearchResults": {
                "tables": [
                    {
                        "columns": [{"name": k} for k in ("_ResourceId", "Mount", "Computer")],
                        "rows": [[x.get("_ResourceId"), x.get("Mount"), x.get("Computer")] for x in r],
                    }
                ]
            },
        },
        st.lists(rows, max_size=4),
    ),
    st.builds(
        activity_context,
        st.sampled_from(
            [
                "Microsoft.Network/networkSecurityGroups/securityRules/write",
                "Microsoft.Compute/virtualMachines/write",
            ]
        ),
        st.sampled_from([nsg_rule_id(), vm_id("vm-a"), None]),
    ),
)
built_alerts = st.builds(
    lambda fields, context, custom: alert(essentials(**fields), context, custom),
    st.fixed_dictionaries(
        {},
        optional={
            "severity": st.sampled_from(["Sev0", "Sev4", "3", 3, "sev 2", "High", None, ["Sev1"]]),
            "monitorCondition": st.sampled_from(["Fired", "Resolved", " fired ", None]),
            "monitoringService": st.sampled_from(
                [
                    "Platform",
                    "Log Alerts V2",
                    "Log Analytics",
                    "Activity Log - Administrative",
                    "Budget",
                    None,
                ]
            ),
            "signalType": st.sampled_from(["Metric", "Log", "Log Search", "Activity Log", None]),
            "alertRule": st.sampled_from(["disk-full-linux", " cpu-high ", None]),
            "alertTargetIDs": st.lists(st.sampled_from(VM_IDS), max_size=3),
            "configurationItems": st.lists(st.sampled_from(VM_IDS), max_size=2),
            "firedDateTime": st.sampled_from(
                ["2026-03-01T08:00:00.000Z", "2026-03-01T08:00:00Z", "yesterday"]
            ),
            "resolvedDateTime": st.sampled_from(["2026-03-01T09:00:00.1234567Z", None]),
        },
    ),
    contexts,
    st.sampled_from(
        [None, {}, {"mountPoint": "/srv"}, {"condition": "disk-full"}, {"remediation": "free-disk-space"}]
    ),
)


@EQUIVALENCE
@given(built_alerts, st.sampled_from(VARIANTS))
def test_built_alerts_plan_as_the_reference_does(payload: Any, variant: str) -> None:
    assert_same(payload, (variant,))
