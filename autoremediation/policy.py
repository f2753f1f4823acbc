"""Guards -> Decision: dispatch, await approval, defer or skip, always with the reason.

Two moments decide:

* ``plan_decision`` when a signal is routed (no Azure call): resolved alerts, parameters, approval.
* ``guard_decision`` when a job is advanced from ``planned`` with fresh VM facts: kill switch, scope,
  opt-in tag, power state, agent, OS, parameters, cooldown, circuit breaker, approval.

Every skip names its guard, so an operator reading a job knows exactly which rule said no.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from .catalog import ParameterError, Remediation
from .frozen import build
from .ports import VmFacts
from .resources import normalize

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


def _decision(action: Action, reason: str, guard: str | None, parameters: Mapping[str, str]) -> Decision:
    """``Decision(...)``, built once per finding (see frozen.build)."""
    return build(Decision, {"action": action, "reason": reason, "guard": guard, "parameters": parameters})


def _skip(guard: str, reason: str) -> Decision:
    return _decision("skip", reason, guard, {})


def _approval_or_dispatch(
    remediation: Remediation, parameters: Mapping[str, str], approved: bool, passed: str = "all guards passed"
) -> Decision:
    if remediation.approval_required and not approved:
        why = "risk high" if remediation.risk == "high" else "the catalog asks for approval"
        return _decision(
            "await-approval", f"{why}: an operator must approve {remediation.id}", "approval", parameters
        )
    return _decision("dispatch", passed, None, parameters)


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
    # The decision depends on nothing else: one made on the same texts from the same sources is
    # answered from memory (its parameters a copy: the caller may change its dict). Only texts are
    # remembered: values Python takes for equal (0.0 and -0.0, 10 and 10.0) are told apart in the
    # reason; and only short ones (names too): a payload chooses them.
    items = tuple(raw_parameters.items())
    for name, value in items:  # a loop, not all(...) over a generator: a decision is made per finding
        if type(value) is not str or len(value) > _REMEMBERED_TEXT_MAX or len(name) > _REMEMBERED_TEXT_MAX:
            return _static_decision(remediation, raw_parameters, os_type, origins)
    key = (os_type, items, tuple(origins.items()) if origins else ())
    planned = remediation.planned
    known = planned.get(key)
    if known is None:
        decision = _static_decision(remediation, raw_parameters, os_type, origins)
        if len(planned) >= _DECISIONS_REMEMBERED:
            planned.clear()
        planned[key] = (decision.action, decision.reason, decision.guard, dict(decision.parameters))
        return decision
    action, reason, guard, parameters = known
    return _decision(action, reason, guard, dict(parameters))


_DECISIONS_REMEMBERED = 256
_REMEMBERED_TEXT_MAX = 1024  # characters of one name or value


def _static_decision(
    remediation: Remediation,
    raw_parameters: Mapping[str, str],
    os_type: str | None,
    origins: Mapping[str, str] | None,
) -> Decision:
    refused = remediation.source_problem(raw_parameters, origins or {})
    if refused is not None:
        return _skip("parameters", str(refused))
    try:
        parameters = remediation.resolve_parameters(raw_parameters, os_type)
    except ParameterError as error:
        return _skip("parameters", str(error))
    passed = "static checks passed; opt-in, VM state, cooldown and breaker are checked when the job runs"
    return _approval_or_dispatch(remediation, parameters, approved=False, passed=passed)


@dataclass(frozen=True)
class GuardSettings:
    """The guard knobs of ``Settings``, separated so the policy stays pure and easy to test."""

    opt_in_tag: tuple[str, str] = ("autoremediation", "enabled")
    allowed_scopes: tuple[str, ...] = ()
    kill_switch: bool = False
    quarantine_tag: str = "autoremediation-quarantine"
    breaker_threshold: int = 3
    breaker_window: timedelta = timedelta(minutes=60)
    breaker_open: timedelta = timedelta(minutes=60)


@dataclass(frozen=True)
class GuardFacts:
    """Everything the guards look at, read by the runner just before it decides (the failure list may be
    a few seconds old: see ``runner.BREAKER_FACTS_SECONDS``)."""

    vm: VmFacts | None  # None: the VM does not exist (any more)
    now: datetime
    approved: bool = False
    last_run_ended_at: datetime | None = None  # when the last run of this remediation on this VM ended
    recent_failures: Sequence[datetime] = ()  # when this remediation failed lately, any VM


def in_scope(target: str, scopes: Sequence[str]) -> bool:
    """An empty allow-list allows every scope; otherwise the VM must sit under one of them."""
    if not scopes:
        return True
    key = normalize(target)
    return any(key == normalize(s) or key.startswith(normalize(s) + "/") for s in scopes)


def opted_in(tags: Mapping[str, str], opt_in: tuple[str, str]) -> bool:
    """Tag names are case-insensitive in Azure; the value is compared case-insensitively too."""
    name, value = opt_in
    lowered = {k.lower(): (v or "") for k, v in tags.items()}
    if name.lower() not in lowered:
        return False
    actual = lowered[name.lower()].strip().lower()
    return actual == value.lower() if value else actual not in FALSE_TAG_VALUES


def breaker_open_until(
    failures: Sequence[datetime], now: datetime, settings: GuardSettings
) -> datetime | None:
    """When the breaker closes again, if ``threshold`` failures fell within one window; else None."""
    recent = sorted(f for f in failures if f <= now)
    threshold = settings.breaker_threshold
    for index in range(len(recent) - threshold + 1):
        window = recent[index : index + threshold]
        if window[-1] - window[0] <= settings.breaker_window:
            until = window[-1] + settings.breaker_open
            if until > now:
                return until
    return None


def guard_decision(
    *,
    target: str,
    remediation: Remediation,
    raw_parameters: Mapping[str, str],
    facts: GuardFacts,
    settings: GuardSettings,
) -> Decision:
    """The decision at ``planned`` (and again after approval) with fresh facts. First failing guard wins."""
    if settings.kill_switch:
        return _skip("kill-switch", "the global kill switch is on: no remediation runs")
    if not in_scope(target, settings.allowed_scopes):
        return _skip("scope", "the VM is outside the allowed scopes")
    vm = facts.vm
    if vm is None:
        return _skip("vm-exists", "the VM does not exist")
    if not opted_in(vm.tags, settings.opt_in_tag):
        name, value = settings.opt_in_tag
        return _skip("opt-in", f"the VM has not opted in (tag {name}={value or '<any>'} is missing)")
    if settings.quarantine_tag and opted_in(vm.tags, (settings.quarantine_tag, "")):
        # A quarantined VM is isolated on purpose (e.g. under investigation): hands off, whatever runs.
        return _skip("quarantine", f"the VM carries the quarantine tag {settings.quarantine_tag}")
    if vm.power_state != "running":
        return _skip("vm-running", f"the VM is not running (power state: {vm.power_state})")
    if not vm.agent_ready:
        return _skip("agent-ready", "the VM agent is not Ready: a run command cannot reach the guest")
    if vm.os_type not in remediation.os_types:
        return _skip("os", f"{remediation.id} has no script for {vm.os_type}")
    try:
        parameters = remediation.resolve_parameters(raw_parameters, vm.os_type)
    except ParameterError as error:
        return _skip("parameters", str(error))
    if facts.last_run_ended_at is not None and remediation.cooldown_minutes > 0:
        ready_at = facts.last_run_ended_at + timedelta(minutes=remediation.cooldown_minutes)
        if facts.now < ready_at:
            return _skip(
                "cooldown",
                f"{remediation.id} ran on this VM at {facts.last_run_ended_at.isoformat()}; "
                f"cooldown of {remediation.cooldown_minutes} min lasts until {ready_at.isoformat()}",
            )
    until = breaker_open_until(facts.recent_failures, facts.now, settings)
    if until is not None:
        return _skip(
            "circuit-breaker",
            f"{remediation.id} failed {settings.breaker_threshold} times within "
            f"{settings.breaker_window}; the breaker stays open until {until.isoformat()}",
        )
    return _approval_or_dispatch(remediation, parameters, facts.approved)
