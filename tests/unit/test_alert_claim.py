"""An alert body read as far as provenance needs (``read_alert_claim``) gives the same answers as the
whole body read by ``parse_alert``: the same errors, the same Signal when the body is reported, and the
same plans, notes and refusals when the planner confirms the claim instead of the parsed body."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from autoremediation.catalog import Catalog
from autoremediation.catalog_load import load_catalog
from autoremediation.errors import SignalError
from autoremediation.planning import Planner
from autoremediation.routing import load_routes
from autoremediation.signals import parse
from autoremediation.signals.alerts import parse_alert, read_alert_claim
from tests.helpers.catalogs import SHIPPED
from tests.helpers.fakes import TrustingGate
from tests.unit.test_provenance import World, log_alert, record, vm

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
# Microsoft's published alerts, kept next to the repository (see the shared_fixtures fixture): added when
# present, the samples are read either way.
REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "azure"
OTHER = vm("vm-other")

# What a claim leaves out, and what it keeps of a body: every other field.
LEFT_OUT = {"status": None, "query": None, "metrics": (), "dimensions": (), "custom_properties": {}}
BODY_EXTRA = ("alertRuleId", "originAlertId")


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(SHIPPED)


def alert_bodies() -> list[tuple[str, Any]]:
    """The alert samples and (when present) Microsoft's published alerts, each with harder variants."""
    paths = sorted(SAMPLES.glob("*.json")) + sorted(REFERENCE.glob("cas-*.json"))
    found = [(p.name, json.loads(p.read_text(encoding="utf-8"))) for p in paths]
    bodies = []
    for name, payload in found:
        if not (isinstance(payload, dict) and "schemaId" in payload):
            continue
        bodies.append((name, payload))
        bodies.append((f"{name} with more ids", with_more_ids(payload)))
    return bodies


def with_more_ids(payload: dict[str, Any]) -> dict[str, Any]:
    """The body naming VMs in every place a context may: conditions, legacy rows, affected items."""
    body = copy.deepcopy(payload)
    context = body["data"].get("alertContext") or {}
    body["data"]["alertContext"] = context
    condition = context.setdefault("condition", {"allOf": []})
    condition.setdefault("allOf", []).append(
        {
            "metricName": "Percentage CPU",
            "dimensions": [
                {"name": "ResourceId", "value": OTHER},
                {"name": "_resourceid", "value": vm("vm-2")},
            ],
        }
    )
    context["Dimensions"] = [{"name": "_ResourceId", "value": vm("vm-3")}]
    context["SearchResults"] = {
        "tables": [
            {"columns": [{"name": "_ResourceId"}, {"name": "Mount"}], "rows": [[vm("vm-4"), "/"], "x"]}
        ]
    }
    context["AffectedConfigurationItems"] = [vm("vm-5") + "/extensions/agent", "not-an-id", OTHER.upper()]
    context["operationName"] = "Microsoft.Compute/virtualMachines/write"
    context["resourceId"] = vm("vm-6")
    context["correlationId"] = "c-1"
    return body


def test_a_claim_reports_the_whole_body_as_parse_alert_reads_it() -> None:
    bodies = alert_bodies()
    assert len(bodies) >= 10  # 5 alert samples, each twice
    for name, payload in bodies:
        whole = parse_alert(payload)
        claim = read_alert_claim(payload)
        assert claim.signal() == whole and repr(claim.signal()) == repr(whole), name
        assert claim.signal() is claim.signal(), "worked out once"
        kept = {k: v for k, v in vars(whole).items() if k not in LEFT_OUT and k != "extra"}
        assert {k: v for k, v in vars(claim.claim).items() if k in kept} == kept, name
        assert {k: getattr(claim.claim, k) for k in LEFT_OUT} == LEFT_OUT, name
        assert dict(claim.claim.extra) == {k: v for k, v in whole.extra.items() if k in BODY_EXTRA}, name


def test_the_claim_and_the_body_read_a_sample_as_it_says() -> None:
    """Held to the sample's own text, not to the reader both share."""
    body = json.loads((SAMPLES / "disk-full-alert.json").read_text(encoding="utf-8"))
    claim = read_alert_claim(body)
    for signal in (claim.claim, claim.signal()):
        assert signal.id.endswith("/alerts/6a1f4e2c-9b3d-4c8e-a7f1-2d5b8c0e4f19")
        assert (signal.source, signal.type, signal.state, signal.rule) == (
            "alert",
            "Log Alerts V2",
            "fired",
            "disk-full-linux",
        )
        assert [t.name for t in signal.targets] == ["vm-linux-disk"]
        assert (signal.severity, signal.signal_type) == ("Sev2", "Log")
        assert signal.fired_at == "2026-11-25T10:05:12.3456789Z" and signal.resolved_at is None
    whole = claim.signal()
    assert whole.custom_properties == {"owner": "platform-team"}
    assert [d["Mount"] for d in whole.dimensions] == ["/var"] and "FreeSpacePercentage" in (whole.query or "")
    assert whole.extra["conditionType"] == "LogQueryCriteria"


def test_the_claim_names_every_vm_of_the_body_in_its_order() -> None:
    sample = json.loads((SAMPLES / "disk-full-alert.json").read_text(encoding="utf-8"))
    claim = read_alert_claim(with_more_ids(sample)).claim
    assert [t.name for t in claim.targets] == [
        "vm-linux-disk",
        "vm-other",
        "vm-2",
        "vm-3",
        "vm-4",
        "vm-5",
        "vm-6",
    ]
    assert claim.operation_name == "Microsoft.Compute/virtualMachines/write" and claim.resource_id == vm(
        "vm-6"
    )


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (
            lambda b: b.__setitem__("schemaId", "other"),
            "alert: schemaId 'other' is not supported: enable the common alert schema"
            " (azureMonitorCommonAlertSchema) on the action group",
        ),
        (
            lambda b: b["data"].__setitem__("essentials", []),
            "alert: data.essentials must be an object, not an array",
        ),
        (lambda b: b["data"]["essentials"].pop("alertId"), "alert: data.essentials.alertId is missing"),
        (
            lambda b: b["data"]["essentials"].__setitem__("monitorCondition", "Maybe"),
            "alert: data.essentials.monitorCondition must be Fired or Resolved, not 'Maybe'",
        ),
        (
            lambda b: b["data"].__setitem__("alertContext", ["not", "an", "object"]),
            "alert: data.alertContext must be an object, not an array",
        ),
        (
            lambda b: b["data"].__setitem__("alertContext", {"condition": "not an object"}),
            "alert: data.alertContext.condition must be an object, not a string",
        ),
        # Two errors: the essentials' is the one said, before the context's.
        (
            lambda b: (
                b["data"]["essentials"].pop("monitoringService"),
                b["data"]["alertContext"].update(condition=[1]),
            ),
            "alert: data.essentials.monitoringService is missing",
        ),
    ],
)
def test_a_bad_body_is_refused_with_the_error_parse_alert_gives(change: Any, error: str) -> None:
    body = json.loads((SAMPLES / "disk-full-alert.json").read_text(encoding="utf-8"))
    change(body)
    with pytest.raises(SignalError) as parsed:
        parse_alert(body)
    with pytest.raises(SignalError) as claimed:
        read_alert_claim(body)
    assert str(claimed.value) == str(parsed.value) == error


def plans_both_ways(world: World, twin: World, payload: Any) -> tuple[Any, Any]:
    """(plan_payload, plan_signals of the parsed body) in two worlds alike: the claim's way and the whole
    body's way."""
    return world.planner.plan_payload(copy.deepcopy(payload)), twin.planner.plan_signals(
        parse(copy.deepcopy(payload))
    )


def worlds(tmp_path: Path, catalog: Catalog, *records: Any) -> tuple[World, World]:
    pair = []
    for name in ("claim", "parse"):
        (tmp_path / name).mkdir()
        world = World(tmp_path / name, catalog)
        for r in records:
            world.alerts.add(r)
        pair.append(world)
    return pair[0], pair[1]


def test_a_confirmed_claim_plans_as_the_parsed_body_does_note_included(
    tmp_path: Path, catalog: Catalog
) -> None:
    world, twin = worlds(tmp_path, catalog, record("ok", vm("vm-1")))
    # The body names two VMs, Azure's record one: the note counts the other, the plan is for vm-1.
    claimed, parsed = plans_both_ways(world, twin, log_alert("ok", [vm("vm-1"), vm("vm-2")]))
    assert claimed == parsed and repr(claimed) == repr(parsed)
    assert [p.finding.target.name for p in claimed.plans] == ["vm-1"]
    [note] = [n.message for n in claimed.notes]
    assert "the payload names 1 VM(s)" in note and vm("vm-2") in note
    assert claimed.signals[0].custom_properties == {"owner": "platform"}  # the rule's, not the body's


def test_a_refused_claim_reports_the_whole_body(tmp_path: Path, catalog: Catalog) -> None:
    world, twin = worlds(tmp_path, catalog, record("late", vm("vm-1")))
    body = log_alert(
        "late", [vm("vm-1")], fired="2026-11-25T09:00:00Z", custom={"remediation": "restart-service"}
    )
    claimed, parsed = plans_both_ways(world, twin, body)
    assert claimed == parsed and repr(claimed) == repr(parsed)
    assert claimed.refused == (claimed.signals[0].id,) and claimed.plans == ()
    reported = claimed.signals[0]
    assert reported.custom_properties == {"remediation": "restart-service"}  # the body, as delivered
    assert reported.query and reported.dimensions[0]["Mount"] == "/var"
    unknown, parsed_unknown = plans_both_ways(world, twin, log_alert("nobody-knows", [vm("vm-1")]))
    assert unknown == parsed_unknown and unknown.signals[0].query


def test_a_claim_confirmed_on_a_remembered_read_remembers_the_whole_body(
    tmp_path: Path, catalog: Catalog
) -> None:
    world, twin = worlds(tmp_path, catalog, record("twice", vm("vm-1")))
    body = log_alert("twice", [vm("vm-1")])
    first, parsed_first = plans_both_ways(world, twin, body)
    again, parsed = plans_both_ways(world, twin, body)
    assert first == parsed_first and first.remembered == ()
    assert again == parsed and repr(again) == repr(parsed)
    assert again.remembered == (parse_alert(body),) and again.remembered[0].query


def test_without_a_gate_every_alert_is_refused_and_reported_whole(catalog: Catalog) -> None:
    planner = Planner(catalog, load_routes(SHIPPED, catalog))
    body = log_alert("any", [vm("vm-1")], custom={"remediation": "restart-service"})
    claimed, parsed = planner.plan_payload(copy.deepcopy(body)), planner.plan_signals(parse(body))
    assert claimed == parsed and claimed.refused and "nothing here can confirm" in claimed.notes[0].message
    # The refused body is the one reported, as delivered: never a claim read only for provenance.
    reported = claimed.signals[0]
    assert reported.custom_properties == {"remediation": "restart-service"}
    assert reported.query and reported.dimensions[0]["Mount"] == "/var"


def test_a_gate_that_routes_the_signal_it_is_given_gets_the_whole_body(catalog: Catalog) -> None:
    planner = Planner(catalog, load_routes(SHIPPED, catalog), gate=TrustingGate())
    body = log_alert("any", [vm("vm-1")], custom={"mountPoint": "/data"})
    claimed, parsed = planner.plan_payload(copy.deepcopy(body)), planner.plan_signals(parse(body))
    assert claimed == parsed and claimed.signals[0].query
    assert [p.finding.parameters["mountPoint"] for p in claimed.plans] == ["/var"]  # the row's dimension
