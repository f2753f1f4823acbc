"""Whatever JSON arrives, parse() returns well-formed Signals or raises SignalError: nothing else."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autoremediation.errors import SignalError
from autoremediation.resources import VmRef
from autoremediation.signals import parse
from tests.helpers.signal_payloads import (
    activity_context,
    alert,
    cloud_event,
    eg_event,
    essentials,
    log_v2_context,
    manual,
    metric_condition,
    metric_context,
    nsg_rule_id,
    resource_data,
    sample,
    sample_names,
    vm_id,
)

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Keys and values the parsers look for, so random documents reach deep into every branch.
KEYS = [
    "schemaId",
    "data",
    "essentials",
    "alertContext",
    "customProperties",
    "alertId",
    "alertRule",
    "severity",
    "signalType",
    "monitorCondition",
    "monitoringService",
    "alertTargetIDs",
    "configurationItems",
    "firedDateTime",
    "resolvedDateTime",
    "condition",
    "allOf",
    "dimensions",
    "name",
    "value",
    "metricName",
    "searchQuery",
    "SearchQuery",
    "SearchResults",
    "tables",
    "columns",
    "rows",
    "Dimensions",
    "properties",
    "operationName",
    "authorization",
    "scope",
    "status",
    "resourceId",
    "entity",
    "eventType",
    "specversion",
    "id",
    "type",
    "source",
    "subject",
    "topic",
    "resourceUri",
    "resourceInfo",
    "targetResourceId",
    "validationCode",
    "remediation",
    "targets",
    "parameters",
    "reason",
    "dryRun",
    "requestId",
    "requestedBy",
]
TEXTS = [
    "azureMonitorCommonAlertSchema",
    "Fired",
    "Resolved",
    "1.0",
    "Sev3",
    "_ResourceId",
    "ResourceId",
    "Microsoft.Resources.ResourceWriteSuccess",
    "Microsoft.EventGrid.SubscriptionValidationEvent",
    "Microsoft.ResourceNotifications.HealthResources.AvailabilityStatusChanged",
    "free-disk-space",
    vm_id("vm-f"),
    vm_id("vm-f").upper() + "/",
    nsg_rule_id(),
    "/subscriptions/x",
    "",
]

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | st.sampled_from(TEXTS)
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), children, max_size=6)
    ),
    max_leaves=40,
)


def valid_payloads() -> list[Any]:
    payloads: list[Any] = [sample(name) for name in sample_names()]
    payloads += [
        alert(
            context=metric_context(metric_condition(dims=[{"name": "_ResourceId", "value": vm_id("vm-d")}])),
            custom={"k": "v"},
        ),
        alert(
            essentials(signalType="Log", monitoringService="Log Alerts V2"),
            log_v2_context("Q", {"_ResourceId": vm_id("vm-l"), "Mount": "/"}),
        ),
        alert(
            essentials(monitoringService="Log Analytics"),
            {
                "SearchQuery": "Q",
                "SearchResults": {
                    "tables": [{"columns": [{"name": "_ResourceId"}], "rows": [[vm_id("vm-r")]]}]
                },
            },
        ),
        alert(
            essentials(monitoringService="Activity Log - Administrative"),
            activity_context("Microsoft.Network/networkSecurityGroups/securityRules/write", nsg_rule_id()),
        ),
        [
            eg_event(
                "Microsoft.Resources.ResourceWriteSuccess",
                resource_data(vm_id("vm-e"), "op/write"),
                subject=vm_id("vm-e"),
            )
        ],
        cloud_event(
            "Microsoft.ResourceNotifications.HealthResources.AvailabilityStatusChanged",
            {
                "resourceInfo": {
                    "id": vm_id("vm-h") + "/providers/Microsoft.ResourceHealth/x/y",
                    "properties": {"targetResourceId": vm_id("vm-h")},
                }
            },
        ),
        [eg_event("Microsoft.EventGrid.SubscriptionValidationEvent", {"validationCode": "abc"})],
        manual(parameters={"a": 1, "b": True, "c": "x"}),
    ]
    return payloads


VALID = valid_payloads()


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a member of a JSON document."""
    found: list[tuple[Any, ...]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            found.append((*prefix, key))
            found += paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.append((*prefix, index))
            found += paths(item, (*prefix, index))
    return found


def swap_type(value: Any) -> Any:
    """The drift seen in real payloads: scalar <-> one-element array, number <-> string, object -> array."""
    if isinstance(value, list):
        return value[0] if value else None
    if isinstance(value, dict):
        return list(value.values())
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return [value]
    return {}


def assert_well_formed(payload: Any) -> None:
    try:
        signals = parse(payload)
    except SignalError as error:
        assert str(error)
        return
    assert signals
    for signal in signals:
        assert isinstance(signal.id, str) and signal.id
        json.dumps(signal.summary())
        assert all(VmRef.parse(t.id) == t for t in signal.targets)
        assert all(isinstance(v, str) for v in signal.custom_properties.values())
        assert all(isinstance(v, str) for row in signal.dimensions for v in row.values())
        assert signal.state in (None, "fired", "resolved")


@FUZZ
@given(json_values)
def test_arbitrary_json_only_ever_raises_signal_error(payload: Any) -> None:
    assert_well_formed(payload)


@FUZZ
@given(json_values)
def test_arbitrary_json_text_only_ever_raises_signal_error(payload: Any) -> None:
    assert_well_formed(json.dumps(payload))


@FUZZ
@given(
    st.dictionaries(
        st.sampled_from(["schemaId", "eventType", "specversion", "remediation"]),
        st.sampled_from(TEXTS),
        min_size=1,
        max_size=2,
    ),
    st.dictionaries(st.sampled_from(KEYS), json_values, max_size=8),
)
def test_documents_that_look_like_a_known_kind_only_ever_raise_signal_error(head: dict, body: dict) -> None:
    assert_well_formed({**body, **head})
    assert_well_formed([{**body, **head}])


@st.composite
def mutated(draw: st.DrawFn) -> Any:
    payload = json.loads(json.dumps(draw(st.sampled_from(VALID))))
    for _ in range(draw(st.integers(1, 3))):
        candidates = paths(payload)
        if not candidates:
            break
        path = draw(st.sampled_from(candidates))
        parent = payload
        for step in path[:-1]:
            parent = parent[step]
        key = path[-1]
        action = draw(st.sampled_from(["drop", "swap", "null", "replace"]))
        if action == "drop":
            del parent[key]
        elif action == "swap":
            parent[key] = swap_type(parent[key])
        elif action == "null":
            parent[key] = None
        else:
            parent[key] = draw(json_values)
    return payload


@FUZZ
@given(mutated())
def test_mutated_valid_payloads_parse_or_raise_signal_error(payload: Any) -> None:
    assert_well_formed(payload)


def test_every_seed_payload_is_valid() -> None:
    for payload in VALID:
        assert parse(payload)
