"""Guards a mutation run found unprotected: each test fails when its guard is weakened."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from autoremediation.catalog_load import load_catalog
from autoremediation.policy import in_scope, opted_in
from autoremediation.resources import VmRef
from autoremediation.routing import load_routes, route_signal
from autoremediation.signals.model import Signal
from autoremediation.verification import verify
from tests.helpers.catalogs import SHIPPED, access_remediation, base_remediation, make_catalog
from tests.helpers.fakes import SUB, vm_id

# -- routing: a remediation with ANY secret parameter is never started by an alert -------------------


def test_an_alert_never_starts_a_remediation_with_one_secret_among_plain_parameters(tmp_path: Path) -> None:
    """Like the shipped collect-diagnostics: one secret (uploadUrl) next to a plain one (maxLogLines).
    A check that every parameter is secret (``all`` for ``any``) would let this alert through."""
    upload = base_remediation(id="collect-diagnostics", conditions=["diagnostics-requested"])
    upload["parameters"] = {
        "uploadUrl": {"type": "string", "description": "u", "pattern": "^https://.+$", "secret": True},
        "maxLogLines": {
            "type": "integer",
            "description": "n",
            "minimum": 100,
            "maximum": 1000,
            "default": 200,
            "sources": ["alert", "operator"],
        },
    }
    upload["verification"] = {"successStatuses": ["fixed"]}
    root = make_catalog(tmp_path / "c", base_remediation(), access_remediation(), upload)
    catalog = load_catalog(root)
    signal = Signal(
        id="a-1",
        source="alert",
        type="Log Alerts V2",
        state="fired",
        targets=(VmRef.parse(vm_id("vm1")),),  # type: ignore[arg-type]
        rule="any-rule",
        signal_type="Log",
        custom_properties={"remediation": "collect-diagnostics", "maxLogLines": "500"},
    )
    routing = route_signal(signal, load_routes(root, catalog), catalog)
    assert routing.findings == ()
    assert routing.notes == (
        "collect-diagnostics takes secret parameters: only an operator request can start it",
    )


# -- policy: opt-out tag values ----------------------------------------------------------------------


@pytest.mark.parametrize("value", ["off", "no", "0", "disabled", "false", "", " OFF ", "No", "Disabled"])
def test_every_opt_out_value_means_not_opted_in(value: str) -> None:
    assert opted_in({"autoremediation": value}, ("autoremediation", "")) is False


@pytest.mark.parametrize("value", ["on", "yes", "1", "enabled", "true", "anything"])
def test_other_values_of_a_bare_opt_in_tag_opt_in(value: str) -> None:
    assert opted_in({"AutoRemediation": value}, ("autoremediation", "")) is True


# -- policy: in_scope with several allowed scopes ------------------------------------------------------

RG_A = f"/subscriptions/{SUB}/resourceGroups/rg-a"
RG_B = f"/subscriptions/{SUB}/resourceGroups/rg-b"


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (vm_id("vm1", rg="rg-a"), True),  # under the first scope
        (vm_id("vm1", rg="rg-b"), True),  # under the second: ``all`` for ``any`` says no
        (vm_id("vm1", rg="rg-c"), False),  # under neither
        (vm_id("vm1", rg="rg-a2"), False),  # a name that only starts like an allowed one
    ],
)
def test_a_vm_under_any_of_several_scopes_is_in_scope(target: str, expected: bool) -> None:
    assert in_scope(target, (RG_A, RG_B)) is expected
    assert in_scope(target.upper(), (RG_B.lower(), RG_A.lower())) is expected


# -- verification operators ------------------------------------------------------------------------------


def judged(op: str, actual: Any, expected: Any) -> bool:
    shipped = load_catalog(SHIPPED).get("free-disk-space")
    rules = {"successStatuses": ["fixed"], "expect": [{"field": "after.value", "op": op, "value": expected}]}
    remediation = replace(shipped, verification=rules)  # a copy: the cached catalog stays as shipped
    return verify(
        remediation, exit_code=0, result={"status": "fixed", "after": {"value": actual}}, parameters={}
    ).ok


@pytest.mark.parametrize(
    ("op", "below", "equal", "above"),
    [
        ("==", False, True, False),
        ("!=", True, False, True),
        (">=", False, True, True),
        (">", False, False, True),
        ("<=", True, True, False),
        ("<", True, False, False),
    ],
)
def test_each_verification_operator_at_its_boundary(op: str, below: bool, equal: bool, above: bool) -> None:
    assert (judged(op, 19, 20), judged(op, 20, 20), judged(op, 21, 20)) == (below, equal, above)
    # Numbers that arrive as text are compared as numbers ("9" < "10").
    assert judged(op, "9", "10") is below


def test_not_equal_on_text_and_booleans() -> None:
    assert judged("!=", "active", "failed") is True
    assert judged("!=", "active", "active") is False
    assert judged("!=", True, False) is True
    assert judged("!=", False, False) is False
