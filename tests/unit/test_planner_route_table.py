"""The planner keeps its compiled route table only while its routes and catalog stay the same: a planner
given another catalog or other routes plans with them from the next signal on."""

from __future__ import annotations

import json
from pathlib import Path

from autoremediation.catalog import Catalog
from autoremediation.catalog_load import load_catalog
from autoremediation.planning import Planner, PlanReport
from autoremediation.routing import load_routes
from autoremediation.signals import parse
from tests.helpers.catalogs import access_remediation, base_remediation, make_catalog
from tests.helpers.fakes import TrustingGate

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
DISK_ROUTE = "disk-full-log-search"  # the fixture route the disk-full sample matches


def plan_disk_alert(planner: Planner, remediation: str | None = None) -> PlanReport:
    """The disk-full sample; ``remediation``: the custom property that names one (an override route)."""
    body = json.loads((SAMPLES / "disk-full-alert.json").read_text(encoding="utf-8"))
    if remediation is not None:
        body["data"]["customProperties"]["remediation"] = remediation
    return planner.plan_signals(parse(body))


def actions(report: PlanReport) -> list[tuple[str, str, str]]:
    return [(p.finding.route or "", p.finding.target.name, p.decision.action) for p in report.plans]


def planner_and_catalogs(tmp_path: Path) -> tuple[Planner, Catalog, Catalog]:
    """A planner on the fixture catalog, and a second catalog that also has ``clean-disk``."""
    first = load_catalog(make_catalog(tmp_path / "first"))
    more = load_catalog(
        make_catalog(
            tmp_path / "more", base_remediation(), base_remediation(id="clean-disk"), access_remediation()
        )
    )
    routes = load_routes(tmp_path / "first", first)
    return Planner(first, routes, gate=TrustingGate()), first, more


def test_another_catalog_is_routed_with_from_the_next_signal(tmp_path: Path) -> None:
    planner, first, more = planner_and_catalogs(tmp_path)
    refused = plan_disk_alert(planner, "clean-disk")
    assert refused.plans == ()
    assert any("remediation='clean-disk' is not in the catalog" in n.message for n in refused.notes)
    planner.catalog = more  # the same routes, a catalog that has it
    planned = plan_disk_alert(planner, "clean-disk")
    assert [(p.finding.remediation, p.finding.target.name) for p in planned.plans] == [
        ("clean-disk", "vm-linux-disk")
    ]
    planner.catalog = first
    assert plan_disk_alert(planner, "clean-disk").plans == ()


def test_other_routes_are_planned_with_from_the_next_signal(tmp_path: Path) -> None:
    planner, _, _ = planner_and_catalogs(tmp_path)
    routes = planner.routes
    assert actions(plan_disk_alert(planner)) == [(DISK_ROUTE, "vm-linux-disk", "dispatch")]
    planner.routes = tuple(r for r in routes if r.name != DISK_ROUTE)
    assert plan_disk_alert(planner).plans == ()
    planner.routes = routes
    assert actions(plan_disk_alert(planner)) == [(DISK_ROUTE, "vm-linux-disk", "dispatch")]


def test_routes_given_as_a_list_are_read_as_they_are_now(tmp_path: Path) -> None:
    planner, _, _ = planner_and_catalogs(tmp_path)
    disk = next(r for r in planner.routes if r.name == DISK_ROUTE)
    listed = [r for r in planner.routes if r is not disk]
    planner.routes = listed  # type: ignore[assignment]
    assert plan_disk_alert(planner).plans == ()
    listed.append(disk)  # changed in place: the same list object
    assert actions(plan_disk_alert(planner)) == [(DISK_ROUTE, "vm-linux-disk", "dispatch")]
