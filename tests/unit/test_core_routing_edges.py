"""Routing edges: which route matches, where each parameter comes from, and what a note says."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from autoremediation.catalog import Catalog
from autoremediation.catalog_load import load_catalog
from autoremediation.resources import VmRef
from autoremediation.routing import OVERRIDE_ROUTE, Route, matches, route_signal, routes_problems
from autoremediation.signals.model import ManualRequest, Signal
from tests.helpers.catalogs import base_remediation, make_catalog
from tests.helpers.fakes import vm_id

VM1 = VmRef.parse(vm_id("vm1")) or pytest.fail("the test VM id must parse")

DISK_ROUTE = Route(
    name="disk-full",
    match={"source": "alert", "rule": "disk-*"},
    condition="disk-full",
    remediation="free-disk-space",
    parameters={"mountPoint": {"dimensions": ["Mount"], "customProperty": "mount"}},
)


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    # Two remediations handle disk-full: the condition alone picks the first by id.
    root = make_catalog(
        tmp_path_factory.mktemp("catalog"),
        base_remediation(),
        base_remediation(id="zz-disk-cleanup", title="Other cleanup"),
    )
    return load_catalog(root)


def alert(**kw: Any) -> Signal:
    values: dict[str, Any] = dict(
        id="alert-1",
        source="alert",
        type="Log Alerts V2",
        state="fired",
        targets=(VM1,),
        rule="disk-free-low",
        signal_type="Log",
    )
    values.update(kw)
    return Signal(**values)


def only(routing: Any) -> dict[str, str]:
    assert len(routing.findings) == 1, routing
    return dict(routing.findings[0].parameters)


@pytest.mark.parametrize(
    ("match", "expected"),
    [
        ({"source": "event"}, False),
        ({"source": "alert"}, True),
        ({"type": "Platform"}, False),
        ({"type": [" log alerts v2 ", "Platform"]}, True),
        ({"signalType": "Metric"}, False),
        ({"signalType": "LOG"}, True),
        ({"rule": "cpu-*"}, True),  # only with rule "cpu-high" below
        ({"customProperties": {"team": ""}}, True),
        ({"customProperties": {"team": "ops"}}, False),
    ],
)
def test_each_match_field_decides_on_its_own(match: dict[str, Any], expected: bool) -> None:
    signal = alert(rule="cpu-high")
    assert matches(Route("r", match, "disk-full"), signal) is expected


def test_a_route_without_a_source_matches_every_source() -> None:
    event = alert(source="event", type="Microsoft.Resources.ResourceActionSuccess")
    assert matches(Route("r", {"type": "microsoft.resources.resourceactionsuccess"}, "x"), event)


def test_a_named_remediation_wins_over_the_first_one_for_the_condition(catalog: Catalog) -> None:
    route = Route("disk", {"source": "alert"}, "disk-full", remediation="zz-disk-cleanup")
    routing = route_signal(alert(), [route], catalog)
    assert [f.remediation for f in routing.findings] == ["zz-disk-cleanup"]


def test_a_route_without_a_remediation_takes_the_first_for_its_condition(catalog: Catalog) -> None:
    routing = route_signal(alert(), [Route("disk", {"source": "alert"}, "disk-full")], catalog)
    assert [f.remediation for f in routing.findings] == ["free-disk-space"]
    assert routing.findings[0].condition == "disk-full"


def test_a_route_for_an_unknown_condition_says_so(catalog: Catalog) -> None:
    route = Route("cpu", {"source": "alert"}, "cpu-high")
    routing = route_signal(alert(), [route], catalog)
    assert routing.notes == ("route cpu: no remediation for cpu-high",)
    assert (routing.signal, routing.route, routing.findings) == (alert(), route, ())


def test_a_route_with_no_vm_in_the_signal_says_so(catalog: Catalog) -> None:
    routing = route_signal(alert(targets=()), [DISK_ROUTE], catalog)
    assert routing.notes == ("route disk-full: the signal names no virtual machine",)
    assert routing.route == DISK_ROUTE
    assert routing.signal == alert(targets=())


def test_a_validation_handshake_is_never_routed(catalog: Catalog) -> None:
    signal = alert(validation_code="abc")
    routing = route_signal(signal, [DISK_ROUTE], catalog)
    assert routing.notes == ("Event Grid subscription validation: answered, never routed",)
    assert routing.signal is signal


def test_no_route_names_source_and_type(catalog: Catalog) -> None:
    routing = route_signal(alert(rule="cpu-high"), [DISK_ROUTE], catalog)
    assert routing.notes == ("no route matches this alert (Log Alerts V2)",)
    assert routing.signal == alert(rule="cpu-high")


def test_a_detector_route_hands_the_signal_to_its_detector(catalog: Catalog) -> None:
    route = Route("lockout", {"source": "event"}, "nsg-lockout", detector="nsg-lockout")
    signal = alert(source="event", type="x")
    routing = route_signal(signal, [route], catalog)
    assert (routing.signal, routing.route, routing.detector, routing.findings) == (
        signal,
        route,
        "nsg-lockout",
        (),
    )


def test_a_row_naming_another_vm_gives_no_parameters_to_this_one(catalog: Catalog) -> None:
    rows = ({"_ResourceId": vm_id("vm2"), "Mount": "/other"}, {"Mount": "/mine"})
    assert only(route_signal(alert(dimensions=rows), [DISK_ROUTE], catalog)) == {"mountPoint": "/mine"}


def test_rows_naming_this_vm_win_over_rows_naming_none(catalog: Catalog) -> None:
    rows = ({"Mount": "/generic"}, {"resourceId": vm_id("vm1").upper(), "Mount": "/exact"})
    assert only(route_signal(alert(dimensions=rows), [DISK_ROUTE], catalog)) == {"mountPoint": "/exact"}


def test_an_empty_dimension_falls_back_to_the_custom_property(catalog: Catalog) -> None:
    signal = alert(dimensions=({"Mount": ""},), custom_properties={"MOUNT": "/from-prop"})
    assert only(route_signal(signal, [DISK_ROUTE], catalog)) == {"mountPoint": "/from-prop"}


def test_an_empty_custom_property_leaves_the_parameter_to_its_default(catalog: Catalog) -> None:
    signal = alert(custom_properties={"mount": "", "targetFreePercent": ""})
    assert only(route_signal(signal, [DISK_ROUTE], catalog)) == {}


def test_a_dimension_wins_over_a_literal_value(catalog: Catalog) -> None:
    route = Route(
        "disk",
        {"source": "alert"},
        "disk-full",
        parameters={"mountPoint": {"dimensions": ["Mount"], "value": "/"}},
    )
    assert only(route_signal(alert(dimensions=({"Mount": "/var"},)), [route], catalog)) == {
        "mountPoint": "/var"
    }
    assert only(route_signal(alert(), [route], catalog)) == {"mountPoint": "/"}


@pytest.mark.parametrize(("literal", "text"), [(True, "true"), (False, "false"), (30, "30")])
def test_literal_route_values_reach_the_script_as_text(catalog: Catalog, literal: Any, text: str) -> None:
    route = Route(
        "disk", {"source": "alert"}, "disk-full", parameters={"targetFreePercent": {"value": literal}}
    )
    assert only(route_signal(alert(), [route], catalog)) == {"targetFreePercent": text}


def test_custom_properties_named_like_a_parameter_fill_it_case_insensitively(catalog: Catalog) -> None:
    signal = alert(custom_properties={"TARGETFREEPERCENT": "35"})
    assert only(route_signal(signal, [DISK_ROUTE], catalog)) == {"targetFreePercent": "35"}


def test_override_borrows_the_mapping_of_the_route_for_the_same_remediation_and_condition(
    catalog: Catalog,
) -> None:
    decoy = Route(
        "decoy",
        {"source": "event"},
        "other",
        remediation="free-disk-space",
        parameters={"mountPoint": {"value": "/wrong"}},
    )
    signal = alert(
        rule="anything", custom_properties={"condition": "disk-full"}, dimensions=({"Mount": "/d"},)
    )
    routing = route_signal(signal, [decoy, DISK_ROUTE], catalog)
    finding = routing.findings[0]
    assert (finding.route, finding.condition, finding.remediation) == (
        OVERRIDE_ROUTE,
        "disk-full",
        "free-disk-space",
    )
    assert dict(finding.parameters) == {"mountPoint": "/d"}
    assert routing.route is not None and dict(routing.route.match) == {}
    assert routing.signal is signal


def test_an_override_naming_an_unknown_remediation_is_a_note(catalog: Catalog) -> None:
    signal = alert(custom_properties={"remediation": "reboot"})
    routing = route_signal(signal, [DISK_ROUTE], catalog)
    assert routing.notes == ("custom property remediation='reboot' is not in the catalog",)
    assert (routing.signal, routing.findings) == (signal, ())


def test_override_without_a_shipped_route_still_runs_with_declared_parameters(catalog: Catalog) -> None:
    signal = alert(custom_properties={"remediation": "zz-disk-cleanup", "mountPoint": "/srv"})
    routing = route_signal(signal, [], catalog)
    finding = routing.findings[0]
    assert (finding.remediation, finding.condition) == ("zz-disk-cleanup", "disk-full")
    assert dict(finding.parameters) == {"mountPoint": "/srv"}
    assert routing.route is not None and routing.route.detector is None


def write_routes(tmp_path: Path, text: str) -> Path:
    return make_catalog(tmp_path / "c", routes=text)


def test_route_problems_name_the_field_path(tmp_path: Path) -> None:
    root = write_routes(tmp_path, "routes:\n  - name: a\n    match: {source: alert}\n    condition: 7\n")
    problems, routes = routes_problems(root, None)
    assert routes == ()
    assert len(problems) == 1
    assert f"{root / 'routes.yaml'}: routes.0.condition: 7 is not of type 'string'" == problems[0]


def test_route_problems_at_the_top_level_say_so(tmp_path: Path) -> None:
    root = write_routes(tmp_path, "rules: []\n")
    problems, _ = routes_problems(root, None)
    assert problems and all(p.startswith(f"{root / 'routes.yaml'}: (top level): ") for p in problems)


def test_routes_keep_their_description(tmp_path: Path) -> None:
    text = (
        "routes:\n"
        "  - {name: a, description: Full disks, match: {source: alert}, condition: disk-full}\n"
        "  - {name: b, match: {source: event}, condition: disk-full}\n"
    )
    problems, routes = routes_problems(write_routes(tmp_path, text), None)
    assert problems == []
    assert [r.description for r in routes] == ["Full disks", ""]


def test_a_manual_request_runs_under_its_remediations_first_condition(catalog: Catalog) -> None:
    request = ManualRequest("zz-disk-cleanup", {"mountPoint": "/srv"}, "ticket 7", False, "req-3")
    signal = Signal(id="req-3", source="manual", type="manual", targets=(VM1,), manual=request)
    routing = route_signal(signal, [DISK_ROUTE], catalog)
    finding = routing.findings[0]
    assert (finding.condition, finding.remediation, finding.route) == (
        "disk-full",
        "zz-disk-cleanup",
        "manual-request",
    )
    assert dict(finding.parameters) == {"mountPoint": "/srv"}
    assert routing.signal is signal
