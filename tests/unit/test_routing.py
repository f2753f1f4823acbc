from __future__ import annotations

from pathlib import Path

import pytest

from autoremediation.catalog_load import load_catalog
from autoremediation.errors import CatalogError, UnknownRemediation
from autoremediation.resources import VmRef
from autoremediation.routing import load_routes, route_signal, routes_problems
from autoremediation.signals.model import ManualRequest, Signal
from tests.helpers.catalogs import make_catalog

VM = "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1"
VM2 = "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm2"
NSG_RULE = "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Network/networkSecurityGroups/nsg/securityRules/r"  # noqa: E501


@pytest.fixture
def setup(tmp_path: Path):
    root = make_catalog(tmp_path / "c")
    catalog = load_catalog(root)
    return catalog, load_routes(root, catalog)


def vm(vm_id: str = VM) -> VmRef:
    ref = VmRef.parse(vm_id)
    assert ref is not None
    return ref


def log_alert(**kw) -> Signal:
    values = dict(
        id="alert-1",
        source="alert",
        type="Log Alerts V2",
        signal_type="Log",
        state="fired",
        targets=(vm(),),
        query="InsightsMetrics | where Name == 'FreeSpacePercentage'",
        dimensions=({"_ResourceId": VM, "Mount": "/var"},),
    )
    values.update(kw)
    return Signal(**values)


def test_disk_full_log_alert_takes_mount_from_dimension(setup) -> None:
    catalog, routes = setup
    result = route_signal(log_alert(), routes, catalog)
    assert result.route.name == "disk-full-log-search"
    [finding] = result.findings
    assert (finding.condition, finding.remediation) == ("disk-full", "free-disk-space")
    assert finding.target == vm()
    assert finding.parameters == {"mountPoint": "/var"}


@pytest.mark.parametrize(
    "dimension", ["Mount", "MountPoint", "Disk", "InstanceName", "mount", "INSTANCENAME"]
)
def test_each_documented_dimension_name(setup, dimension) -> None:
    catalog, routes = setup
    signal = log_alert(dimensions=({"_ResourceId": VM, dimension: "/data"},))
    assert route_signal(signal, routes, catalog).findings[0].parameters == {"mountPoint": "/data"}


def test_windows_query_and_custom_property_mount(setup) -> None:
    catalog, routes = setup
    signal = log_alert(
        query="Perf | where CounterName == '% Free Space'",
        dimensions=(),
        custom_properties={"mountPoint": "D:"},
    )
    [finding] = route_signal(signal, routes, catalog).findings
    assert finding.parameters == {"mountPoint": "D:"}


def test_dimension_of_the_row_wins_over_custom_property(setup) -> None:
    catalog, routes = setup
    signal = log_alert(custom_properties={"mountPoint": "/"})
    assert route_signal(signal, routes, catalog).findings[0].parameters == {"mountPoint": "/var"}


def test_rows_pair_with_their_own_vm(setup) -> None:
    catalog, routes = setup
    signal = log_alert(
        targets=(vm(), vm(VM2)),
        dimensions=(
            {"_ResourceId": VM.upper(), "Mount": "/var"},
            {"_ResourceId": VM2, "Mount": "/data"},
            {"_ResourceId": VM2, "Mount": "/srv"},
        ),
    )
    found = {
        (f.target.name, f.parameters["mountPoint"]) for f in route_signal(signal, routes, catalog).findings
    }
    assert found == {("vm1", "/var"), ("vm2", "/data"), ("vm2", "/srv")}


def test_query_without_disk_words_matches_nothing(setup) -> None:
    catalog, routes = setup
    result = route_signal(log_alert(query="Heartbeat | summarize count()"), routes, catalog)
    assert result.findings == ()
    assert result.notes == ("no route matches this alert (Log Alerts V2)",)


def test_custom_properties_win_over_routes(setup) -> None:
    catalog, routes = setup
    signal = log_alert(custom_properties={"Remediation": "restore-management-access"})
    result = route_signal(signal, routes, catalog)
    assert result.route.name == "custom-properties"
    assert result.detector == "nsg-lockout"  # borrowed from the shipped route of that remediation


def test_condition_property_picks_the_catalog_remediation(setup) -> None:
    catalog, routes = setup
    signal = Signal(
        id="a",
        source="alert",
        type="Platform",
        state="fired",
        targets=(vm(),),
        custom_properties={"condition": "disk-full", "mountPoint": "/opt"},
    )
    [finding] = route_signal(signal, routes, catalog).findings
    assert (finding.remediation, finding.route, finding.parameters) == (
        "free-disk-space",
        "custom-properties",
        {"mountPoint": "/opt"},
    )


@pytest.mark.parametrize(
    ("props", "note"),
    [
        ({"remediation": "nope"}, "custom property remediation='nope' is not in the catalog"),
        (
            {"condition": "cpu-hot"},
            "custom property condition='cpu-hot': no remediation in the catalog handles it",
        ),
        (
            {"condition": "nsg-lockout", "remediation": "free-disk-space"},
            "remediation 'free-disk-space' does not handle condition 'nsg-lockout'",
        ),
    ],
)
def test_bad_custom_properties_are_notes_not_errors(setup, props, note) -> None:
    catalog, routes = setup
    result = route_signal(log_alert(custom_properties=props), routes, catalog)
    assert result.findings == () and result.notes == (note,)


def test_nsg_write_event_asks_the_detector(setup) -> None:
    catalog, routes = setup
    signal = Signal(
        id="ev",
        source="event",
        type="Microsoft.Resources.ResourceWriteSuccess",
        operation_name="Microsoft.Network/networkSecurityGroups/securityRules/write",
        resource_id=NSG_RULE,
        resources=(NSG_RULE,),
    )
    result = route_signal(signal, routes, catalog)
    assert (result.detector, result.route.name, result.findings) == ("nsg-lockout", "nsg-write-event", ())


def test_nsg_activity_log_alert_asks_the_detector(setup) -> None:
    catalog, routes = setup
    signal = Signal(
        id="al",
        source="alert",
        type="Activity Log - Administrative",
        state="fired",
        operation_name="MICROSOFT.NETWORK/networkSecurityGroups/securityRules/WRITE",
    )
    assert route_signal(signal, routes, catalog).detector == "nsg-lockout"


def test_other_writes_do_not_match(setup) -> None:
    catalog, routes = setup
    signal = Signal(
        id="ev",
        source="event",
        type="Microsoft.Resources.ResourceWriteSuccess",
        operation_name="Microsoft.Storage/storageAccounts/write",
    )
    assert route_signal(signal, routes, catalog).detector is None


def test_validation_events_are_never_routed(setup) -> None:
    catalog, routes = setup
    signal = Signal(
        id="v", source="event", type="Microsoft.EventGrid.SubscriptionValidationEvent", validation_code="abc"
    )
    result = route_signal(signal, routes, catalog)
    assert result.findings == () and "validation" in result.notes[0]


def test_manual_request_bypasses_routes(setup) -> None:
    catalog, routes = setup
    manual = ManualRequest("free-disk-space", {"mountPoint": "/var"}, "full", False, "req-1")
    signal = Signal(id="req-1", source="manual", type="manual", targets=(vm(), vm(VM2)), manual=manual)
    findings = route_signal(signal, routes, catalog).findings
    assert [(f.target.name, f.remediation, f.route) for f in findings] == [
        ("vm1", "free-disk-space", "manual-request"),
        ("vm2", "free-disk-space", "manual-request"),
    ]


def test_manual_request_for_unknown_remediation_is_rejected(setup) -> None:
    catalog, routes = setup
    manual = ManualRequest("format-disk", {}, "", False, "req-2")
    signal = Signal(id="req-2", source="manual", type="manual", targets=(vm(),), manual=manual)
    with pytest.raises(UnknownRemediation, match="format-disk"):
        route_signal(signal, routes, catalog)


def test_matched_route_without_vm_says_so(setup) -> None:
    catalog, routes = setup
    result = route_signal(log_alert(targets=()), routes, catalog)
    assert result.notes == ("route disk-full-log-search: the signal names no virtual machine",)


def test_first_matching_route_wins(tmp_path: Path) -> None:
    routes_yaml = """
routes:
  - name: specific
    match: {source: alert, rule: "disk-*-prod", customProperties: {team: ops}}
    condition: disk-full
    remediation: free-disk-space
    parameters: {mountPoint: {value: /srv}}
  - name: general
    match: {source: alert, rule: "disk-*"}
    condition: disk-full
    remediation: free-disk-space
    parameters: {mountPoint: {value: /}}
"""
    root = make_catalog(tmp_path / "c", routes=routes_yaml)
    catalog = load_catalog(root)
    routes = load_routes(root, catalog)
    base = dict(id="a", source="alert", type="Platform", state="fired", targets=(vm(),))
    hit = route_signal(
        Signal(rule="Disk-Full-Prod", custom_properties={"TEAM": "Ops"}, **base), routes, catalog
    )
    assert (hit.route.name, hit.findings[0].parameters) == ("specific", {"mountPoint": "/srv"})
    other = route_signal(
        Signal(rule="disk-full-prod", custom_properties={"team": "dev"}, **base), routes, catalog
    )
    assert other.route.name == "general"
    none = route_signal(Signal(rule="cpu", **base), routes, catalog)
    assert none.route is None


def test_metric_route(setup) -> None:
    catalog, routes = setup
    signal = Signal(
        id="m",
        source="alert",
        type="Platform",
        state="fired",
        targets=(vm(),),
        metrics=("Disk Free Percent",),
        dimensions=({"instance": "/home"},),
    )
    [finding] = route_signal(signal, routes, catalog).findings
    assert (finding.route, finding.parameters) == ("disk-full-metric", {"mountPoint": "/home"})


@pytest.mark.parametrize(
    ("routes_yaml", "problem"),
    [
        (
            "routes: [{name: a, match: {source: alert}, condition: disk-full, remediation: nope}]",
            "remediation: 'nope' is not in the catalog",
        ),
        (
            "routes: [{name: a, match: {source: alert}, condition: nsg-lockout,"
            " remediation: free-disk-space}]",
            "condition: free-disk-space does not handle 'nsg-lockout'",
        ),
        (
            "routes: [{name: a, match: {source: alert}, condition: disk-full,"
            " parameters: {size: {value: 1}}}]",
            "parameters.size: free-disk-space has no such parameter",
        ),
        ("routes: [{name: a, match: {colour: red}, condition: disk-full}]", "Additional properties"),
        (
            "routes: [{name: a, match: {source: alert}, condition: disk-full},"
            " {name: a, match: {source: event}, condition: disk-full}]",
            "duplicate route name",
        ),
        ("routes: [{name: a, match: {}, condition: disk-full}]", "match"),
        ("routes: [unclosed", "not valid"),
    ],
)
def test_route_problems_name_file_and_field(tmp_path: Path, routes_yaml, problem) -> None:
    root = make_catalog(tmp_path / "c", routes=routes_yaml)
    catalog = load_catalog(root)
    problems, _ = routes_problems(root, catalog)
    assert any(problem in p and "routes.yaml" in p for p in problems), problems
    with pytest.raises(CatalogError):
        load_routes(root, catalog)


def test_shipped_routes_are_valid_against_a_catalog_with_the_shipped_ids(setup) -> None:
    _, routes = setup
    assert [r.name for r in routes][:4] == [
        "disk-full-log-search",
        "disk-full-metric",
        "nsg-write-event",
        "nsg-write-activity-log",
    ]


def test_remediations_with_secrets_cannot_be_started_by_alerts(tmp_path: Path) -> None:
    from tests.helpers.catalogs import access_remediation, base_remediation

    upload = base_remediation(id="collect-diagnostics", conditions=["diagnostics-requested"])
    upload["parameters"] = {
        "uploadUrl": {"type": "string", "description": "u", "pattern": "^https://.+$", "secret": True}
    }
    upload["verification"] = {"successStatuses": ["fixed"]}
    root = make_catalog(tmp_path / "c", base_remediation(), access_remediation(), upload)
    catalog = load_catalog(root)
    routes = load_routes(root, catalog)
    signal = log_alert(
        custom_properties={"remediation": "collect-diagnostics", "uploadUrl": "https://evil.example/x"}
    )
    result = route_signal(signal, routes, catalog)
    assert result.findings == ()
    assert result.notes == (
        "collect-diagnostics takes secret parameters: only an operator request can start it",
    )
    manual = ManualRequest("collect-diagnostics", {"uploadUrl": "https://ok.example/x"}, "", False, "r-9")
    request = Signal(id="r-9", source="manual", type="manual", targets=(vm(),), manual=manual)
    assert len(route_signal(request, routes, catalog).findings) == 1
