"""The guest firewall step accepts only the management sources the NSG step uses, made concrete."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoremediation import operations
from autoremediation.catalog_load import load_catalog
from autoremediation.controlplane import guest_sources
from autoremediation.intake import Intake
from autoremediation.planning import Planner
from autoremediation.routing import load_routes
from autoremediation.runner import _with_control_plane_parameters
from tests.helpers.catalogs import SHIPPED, access_remediation, base_remediation, make_catalog
from tests.unit.test_runner import World

SOURCES_PARAMETER = load_catalog(SHIPPED).get("restore-management-access").parameters["managementSources"]


@pytest.mark.parametrize(
    ("sources", "concrete", "left_out"),
    [
        (["10.1.0.0/24"], ["10.1.0.0/24"], []),
        (["10.1.0.7"], ["10.1.0.7/32"], []),
        (["10.1.0.9/24", "10.1.0.0/24"], ["10.1.0.0/24"], []),  # host bits dropped, duplicates once
        (["VirtualNetwork"], [], ["VirtualNetwork (a service tag, not addresses)"]),
        (
            ["VirtualNetwork", "192.168.4.0/26"],
            ["192.168.4.0/26"],
            ["VirtualNetwork (a service tag, not addresses)"],
        ),
        (
            ["0.0.0.0/0", "*", "Internet"],
            [],
            [
                "0.0.0.0/0 (wider than /8)",
                "* (a service tag, not addresses)",
                "Internet (a service tag, not addresses)",
            ],
        ),
        (["2001:db8::/64"], [], ["2001:db8::/64 (IPv6: the guest step matches IPv4 only)"]),
    ],
)
def test_only_concrete_narrow_ipv4_ranges_reach_the_guest(
    sources: list[str], concrete: list[str], left_out: list[str]
) -> None:
    assert guest_sources(sources) == (concrete, left_out)
    if concrete:
        SOURCES_PARAMETER.validate(",".join(concrete))  # the catalog pattern takes what the step gives


def test_the_control_plane_decision_overrides_a_requested_value() -> None:
    remediation = load_catalog(SHIPPED).get("restore-management-access")
    records = {"nsg-allow-management": {"scriptParameters": {"managementSources": "10.1.0.0/24"}}}

    merged = _with_control_plane_parameters(
        {"port": "22", "managementSources": "203.0.113.0/24"}, remediation, records
    )

    assert merged == {"port": "22", "managementSources": "10.1.0.0/24"}


def test_an_empty_decision_removes_a_requested_value() -> None:
    remediation = load_catalog(SHIPPED).get("restore-management-access")
    records = {"nsg-allow-management": {"scriptParameters": {"managementSources": ""}}}

    merged = _with_control_plane_parameters(
        {"port": "22", "managementSources": "203.0.113.0/24"}, remediation, records
    )

    assert merged == {"port": "22"}


def test_the_dispatched_script_gets_the_steps_sources_not_the_requesters(tmp_path: Path) -> None:
    world = World(tmp_path)
    spec = access_remediation()
    spec["parameters"]["managementSources"] = {
        "type": "string",
        "description": "sources",
        "pattern": r"^[0-9./,]+$",
    }
    root = make_catalog(tmp_path / "catalog-sources", base_remediation(), spec)
    world.catalog = load_catalog(root)
    world.runner.catalog = world.catalog
    world.intake = Intake(
        Planner(world.catalog, load_routes(root, world.catalog)), world.store, world.queue, world.clock
    )
    world.runner.control_plane["nsg-allow-management"] = lambda job, vm, *, dry_run: {
        "action": "none",
        "scriptParameters": {"managementSources": "10.1.0.0/24"},
    }

    result = world.manual("restore-management-access", parameters={"managementSources": "203.0.113.0/24"})
    world.drain()
    operations.approve(world.store, world.queue, world.clock, world.job(result).id, actor="alice")
    world.drain()

    assert world.compute.requests[0].parameters["MANAGEMENT_SOURCES"] == "10.1.0.0/24"
