"""What the engine plans for a corpus of payloads, held to recorded outcomes (one digest per case).

Parsing, routing, provenance and the static policy are tuned for speed; what they decide must not move
unnoticed. Each payload (the fuzz tests' seed payloads, Microsoft's published ones when present, and each
seed with one member dropped, nulled or of the wrong type) is planned against an Azure Monitor that tells
the truth, lies or fails in each way the gate must notice, with the shipped routes and the engine tests'
own; the whole outcome (signals, findings, decisions, notes, refusals in their exact words, what was
remembered, job keys) is reduced to one digest per payload and compared with
``tests/fixtures/plan_outcomes.json``.

The digests were first written by the planning code as it was before that tuning, so the file states
what it decided. A change meant to alter a decision rewrites them, and the diff names each case that
moved: ``python -m tests.unit.test_plan_outcomes --write``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from localfleet.alerting import parse_time

from autoremediation import planning, provenance, route_model
from autoremediation.catalog import Catalog
from autoremediation.catalog_load import load_catalog
from autoremediation.errors import NotFound, Transient
from autoremediation.policy import Decision
from autoremediation.ports import AlertRecord, AlertRuleRecord
from autoremediation.resources import VmRef
from autoremediation.routing import Route, load_routes
from autoremediation.signals.model import ManualRequest, Signal
from autoremediation.store.memory_queue import ManualClock
from tests.helpers.catalogs import FIXTURE_ROUTES, SHIPPED
from tests.unit.test_signals_fuzz import VALID, paths, swap_type

OUTCOMES = Path(__file__).resolve().parents[1] / "fixtures" / "plan_outcomes.json"
PUBLISHED = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "azure"

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
    Signal,
    ManualRequest,
    route_model.Finding,
    route_model.Route,
    planning.Plan,
    planning.Note,
    planning.PlanReport,
    Decision,
    VmRef,
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


def _detector(name: str, signal: Any) -> tuple[list[Any], list[str]]:
    """A detector that finds one VM next to the resource the signal is about, with its evidence."""
    about = signal.resource_id or (signal.resources[0] if signal.resources else "")
    parts = about.split("/")
    if len(parts) < 5:
        return [], [f"{name}: nothing to look at"]
    target = VmRef.parse(
        f"/subscriptions/{parts[2]}/resourceGroups/{parts[4]}/providers/Microsoft.Compute/virtualMachines/v1"
    )
    if target is None:
        return [], [f"{name}: no VM"]
    found = route_model.Finding(
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


def outcome(payload: Any, variant: str, catalog: Catalog, routes: tuple[Route, ...]) -> Any:
    """Everything the engine makes of one payload, planned three times (the second may be remembered)."""
    monitor = Monitor(payload, variant)
    clock = ManualClock(monitor.now)
    gate = provenance.AlertGate(
        monitor, provenance.ProvenanceSettings(trusted_rules=monitor.trusted, max_jobs=3), clock
    )
    planner = planning.Planner(catalog, routes, detect=_detector, gate=gate)
    results: list[Any] = []
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
                [planning.idempotency_key(p.finding) for p in report.plans],
                [planning.change_of(s) for s in report.signals],
                [s.summary() for s in report.signals],
            )
        )
    return results


def digest(results: Any) -> str:
    """The outcome as a digest; a request id generated for a manual request without one said once."""
    text = GENERATED_ID.sub("req-(generated)", repr(results))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _name(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode("utf-8")).hexdigest()[:16]


def _broken(payload: Any) -> Iterator[tuple[str, Any]]:
    """The payload with one member dropped, nulled or swapped for the drift seen in real payloads."""
    for path in paths(payload):
        for action in ("drop", "null", "swap"):
            copy = json.loads(json.dumps(payload))
            parent = copy
            for step in path[:-1]:
                parent = parent[step]
            if action == "drop":
                del parent[path[-1]]
            elif action == "null":
                parent[path[-1]] = None
            else:
                parent[path[-1]] = swap_type(parent[path[-1]])
            yield f"{action}:{'/'.join(map(str, path))}", copy


def cases(published: bool) -> Iterator[tuple[str, Any, tuple[str, ...]]]:
    """(case name, payload, the Azure Monitor variants it is planned against)."""
    for payload in VALID:
        name = _name(payload)
        yield f"seed:{name}", payload, VARIANTS
        for how, broken in _broken(payload):
            yield f"seed:{name}:{how}", broken, ("as-sent",)
    if published:
        for path in sorted(PUBLISHED.glob("*.json")):
            yield f"published:{path.name}", json.loads(path.read_text(encoding="utf-8")), VARIANTS


def outcomes(published: bool) -> dict[str, str]:
    """One digest per case: its outcomes with every route table and Azure Monitor variant, in order."""
    found: dict[str, str] = {}
    for case, payload, variants in cases(published):
        each = [
            digest(outcome(payload, variant, catalog, routes))
            for catalog, routes in CATALOGS
            for variant in variants
        ]
        found[case] = hashlib.sha256(" ".join(each).encode("ascii")).hexdigest()[:20]
    return found


def recorded() -> dict[str, str]:
    return json.loads(OUTCOMES.read_text(encoding="utf-8"))


def test_the_seed_payloads_and_their_breakages_plan_as_recorded() -> None:
    expected = {k: v for k, v in recorded().items() if k.startswith("seed:")}
    actual = outcomes(published=False)
    assert len(actual) >= 1_000  # the corpus itself did not shrink unnoticed
    moved = sorted(k for k in actual if expected.get(k) != actual[k])
    assert moved == [], f"{len(moved)} planning outcomes moved or are new, e.g. {moved[:5]}"
    assert set(expected) == set(actual)


def test_microsofts_published_payloads_plan_as_recorded() -> None:
    if not PUBLISHED.is_dir():
        pytest.skip(f"published payloads not present at {PUBLISHED}")
    expected = {k: v for k, v in recorded().items() if k.startswith("published:")}
    actual = {k: v for k, v in outcomes(published=True).items() if k.startswith("published:")}
    assert len(actual) >= 15
    moved = sorted(k for k in actual if expected.get(k) != actual[k])
    assert moved == [], f"{len(moved)} planning outcomes moved or are new, e.g. {moved[:5]}"


def test_variants_reach_every_gate_outcome() -> None:
    """The digests are worth something only if the records make the gate say each of its answers."""
    samples = Path(__file__).resolve().parents[2] / "samples"
    disk_full = json.loads((samples / "disk-full-alert.json").read_text(encoding="utf-8"))
    catalog, routes = CATALOGS[0]
    said = set()
    for variant in VARIANTS:
        [first, *_] = outcome(disk_full, variant, catalog, routes)
        if first[0] == "raised":
            said.add((variant, False, (first[1],)))
            continue
        report = first[1]
        said.add((variant, bool(report["plans"]), tuple(n["message"].split(" ")[0] for n in report["notes"])))
    assert any(plans for _, plans, _ in said)
    assert sum(1 for _, plans, _ in said if not plans) >= 10


def main() -> None:
    parser = argparse.ArgumentParser(description="Record what the engine plans for the corpus.")
    parser.add_argument("--write", action="store_true", help=f"rewrite {OUTCOMES.name}")
    if not parser.parse_args().write:
        parser.error("nothing to do without --write")
    found = outcomes(published=PUBLISHED.is_dir())
    OUTCOMES.write_text(json.dumps(found, indent=0, sort_keys=True) + "\n", encoding="utf-8")
    print(f"{len(found)} outcomes written to {OUTCOMES}")


if __name__ == "__main__":
    main()
