"""Routes compiled once per (routes, catalog): the same outcome as routing route by route, with routes
that change, overrides made per signal, and many signals through one table."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoremediation.catalog_load import load_catalog
from autoremediation.errors import SignalError
from autoremediation.resources import VmRef
from autoremediation.routing import Route, matches, route_signal, route_table
from autoremediation.signals.alert_context import read_alert_context
from autoremediation.signals.model import Signal

VM = "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1"
REPO = Path(__file__).resolve().parents[2] / "remediations"


@pytest.fixture(scope="module")
def shipped():
    from autoremediation.routing import load_routes

    catalog = load_catalog(REPO)
    return catalog, load_routes(REPO, catalog)


def alert(**kw) -> Signal:
    target = VmRef.parse(VM)
    assert target is not None
    values = dict(id="a1", source="alert", type="Log Alerts V2", state="fired", targets=(target,))
    values.update(kw)
    return Signal(**values)


def test_one_table_per_loaded_routes_and_catalog(shipped) -> None:
    catalog, routes = shipped
    assert route_table(routes, catalog) is route_table(routes, catalog)


def test_a_list_of_routes_that_changes_is_routed_as_it_now_is(shipped) -> None:
    catalog, routes = shipped
    current = list(routes)
    signal = alert(signal_type="Log", query="Syslog | where SyslogMessage has 'Failed with result'")
    assert route_signal(signal, current, catalog).route.name == "service-down-log-search"
    current.insert(0, Route("first", {"source": "alert", "signalType": "log"}, "clock-skew", "fix-time-sync"))
    assert route_signal(signal, current, catalog).route.name == "first"


def test_overrides_made_per_signal_leave_the_table_as_it_was(shipped) -> None:
    catalog, routes = shipped
    table = route_table(routes, catalog)
    kept = dict(table._sources)
    for n in range(200):
        custom = {"remediation": "restart-service", "serviceName": f"svc{n}"}
        [finding] = table.route(alert(custom_properties=custom)).findings
        assert finding.parameters == {"serviceName": f"svc{n}"}
        assert route_signal(alert(custom_properties={"condition": f"unknown-{n}"}), routes, catalog).notes
    assert table._sources == kept
    assert "unknown-1" not in table._for_condition


TEXTS = st.sampled_from(
    [
        "Log",
        "log search",
        " Metric ",
        "Activity Log - Administrative",
        "Log Alerts V2",
        "Microsoft.Network/networkSecurityGroups/securityRules/write",
        "Microsoft.Resources.ResourceWriteSuccess",
        "FreeSpacePercentage",
        "Failed with result",
        "chronyd",
        "Percentage CPU",
        "disk/free_percent",
        "",
    ]
)


@settings(max_examples=300, deadline=None)
@given(
    source=st.sampled_from(["alert", "event"]),
    kind=TEXTS,
    signal_type=st.none() | TEXTS,
    operation=st.none() | TEXTS,
    query=st.none() | TEXTS,
    metrics=st.lists(TEXTS, max_size=2),
    rule=st.none() | st.sampled_from(["disk-full-linux", "CPU-high", "x"]),
)
def test_the_table_picks_the_first_route_that_matches_in_file_order(
    shipped, source, kind, signal_type, operation, query, metrics, rule
) -> None:
    catalog, routes = shipped
    signal = alert(
        source=source,
        type=kind,
        signal_type=signal_type,
        operation_name=operation,
        query=query,
        metrics=tuple(metrics),
        rule=rule,
    )
    first = next((r for r in routes if matches(r, signal)), None)
    assert route_signal(signal, routes, catalog).route == first


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ([], "alert: data.alertContext must be an object, not an array"),
        ({"condition": "x"}, "alert: data.alertContext.condition must be an object, not a string"),
    ],
)
def test_a_recorded_context_of_a_wrong_shape_is_named(context, message) -> None:
    with pytest.raises(SignalError) as error:
        read_alert_context(context)
    assert str(error.value) == message


def test_a_recorded_context_is_read_as_a_body_context() -> None:
    read = read_alert_context(
        {
            "condition": {
                "allOf": [{"metricName": "Percentage CPU", "dimensions": [{"name": "A", "value": " 1 "}]}]
            },
            "conditionType": "SingleResourceMultipleMetricCriteria",
            "caller": "",
        }
    )
    assert read.metrics == ("Percentage CPU",)
    assert read.dimensions == ({"A": "1"},)
    assert read.extra == {"conditionType": "SingleResourceMultipleMetricCriteria"}
