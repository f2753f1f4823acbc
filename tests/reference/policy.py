"""Guards -> Decision: dispatch, await approval, defer or skip, always with the reason.

Two moments decide:

* ``plan_decision`` when a signal is routed (no Azure call): resolved alerts, parameters, approval.
* ``guard_decision`` when a job is advanced from ``planned`` with fresh VM facts: kill switch, scope,
  opt-in tag, power state, agent, OS, parameters, cooldown, circuit breaker, approval.

Every skip names its guard, so an operator reading a job knows exactly which rule said no.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from autoremediation.catalog import ParameterError, Remediation

Action = Literal["dispatch", "await-approval", "defer", "skip"]
FALSE_TAG_VALUES = frozenset({"", "false", "0", "no", "off", "disabled"})


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str
    guard: str | None = None
    parameters: Mapping[str, str] = field(default_factory=dict)

    @property
    def skipped(self) -> bool:
        return self.action == "skip"


def _skip(guard: str, reason: str) -> Decision:
    return Decision("skip", reason, guard)


def _approval_or_dispatch(
    remediation: Remediation, parameters: Mapping[str, str], approved: bool, passed: str = "all guards passed"
) -> Decision:
    if remediation.approval_required and not approved:
        why = "risk high" if remediation.risk == "high" else "the catalog asks for approval"
        return Decision(
            "await-approval", f"{why}: an operator must approve {remediation.id}", "approval", parameters
        )
    return Decision("dispatch", passed, None, parameters)


def plan_decision(
    remediation: Remediation,
    raw_parameters: Mapping[str, str],
    *,
    state: str | None,
    os_type: str | None = None,
    origins: Mapping[str, str] | None = None,
) -> Decision:
    """The decision known without looking at Azure. ``origins``: where each raw value came from
    (``alert``, ``operator``, ...); a value from a source its parameter does not allow is refused."""
    if state == "resolved":
        return _skip("alert-state", "the alert is resolved: nothing to remediate")
    refused = remediation.source_problem(raw_parameters, origins or {})
    if refused is not None:
        return _skip("parameters", str(refused))
    try:
        parameters = remediation.resolve_parameters(raw_parameters, os_type)
    except ParameterError as error:
        return _skip("parameters", str(error))
    passed = "static checks passed; opt-in, VM state, cooldown and breaker are checked when the job runs"
    return _approval_or_dispatch(remediation, parameters, approved=False, passed=passed)
