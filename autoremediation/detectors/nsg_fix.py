"""The control-plane step of ``restore-management-access``: an allow rule for the management sources,
placed just above the rule that blocks them.

The customer's rules are never moved, changed or deleted: the plan only adds rules whose names start
with ``allow-mgmt-<ssh|rdp|tcpN>-autoremediation`` (and updates those on a later run). ARM accepts
service tags and ``*`` only as a rule's single source prefix, never in a list, so the CIDRs share one
rule and each tag gets a rule of its own.

Destinations: the rule admits the port only on the target VM's private address(es) when the caller
knows them, so fixing one VM never opens SSH/RDP on every other VM behind the same NSG. A rule of ours
that already names other VMs keeps them (each was opened by an earlier fix). Without the addresses the
rule's destination is ``*``, and the plan's reason says so.

Priorities: each new rule takes the highest free priority below the blocking rule (for a default rule
such as ``DenyAllInBound`` 65500, below 4097), never under 100. Azure keeps inbound priorities unique,
so a priority held by another inbound rule is not free; a rule of ours keeps its priority when that
is still above the blocker.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from ..errors import InvalidInput, RemediationError
from ..ports import Network, NetworkSecurityGroup, SecurityRule, VmFacts
from .addresses import TagInput
from .lockout import check_sources
from .nsg import MAX_PRIORITY, MIN_PRIORITY, DecidingRule, Flow, Level, Verdict, evaluate_nsg

RULE_SUFFIX = "autoremediation"
_PORT_NAMES = {22: "ssh", 3389: "rdp"}
_NOT_QUARANTINED = frozenset({"", "false"})
_DESCRIPTION_LIMIT = 140  # ARM's limit for a rule description


class NoFreePriority(RemediationError):
    """No priority between 100 and the blocking rule is free: only a person can make room."""


class AllowRuleNotEffective(RemediationError):
    """The allow rule was written but the NSG still blocks the management port."""


@dataclass(frozen=True)
class AllowRulePlan:
    action: Literal["add", "none", "skip"]
    reason: str
    nsg_id: str = ""
    port: int = 0
    sources: tuple[str, ...] = ()
    rules: tuple[SecurityRule, ...] = ()  # one for the CIDRs, one per service tag
    blocking: DecidingRule | None = None
    level: Level = "nic"
    destinations: tuple[str, ...] = ()  # the VM's private addresses; empty: unknown, rules admit any

    @property
    def rule(self) -> SecurityRule | None:
        """The first rule to write (the only one unless service tags are among the sources)."""
        return self.rules[0] if self.rules else None


def base_rule_name(port: int) -> str:
    return f"allow-mgmt-{_PORT_NAMES.get(port, f'tcp{port}')}-{RULE_SUFFIX}"


def _is_ours(rule: SecurityRule, base: str) -> bool:
    name = rule.name.lower()
    return name == base or name.startswith(base + "-")


def quarantine_reason(quarantine_tag: str, vm: VmFacts, nsg: NetworkSecurityGroup) -> str | None:
    """Why the quarantine tag forbids a change, or None. Tag names compare case-insensitively, as in ARM."""
    name = quarantine_tag.partition("=")[0].strip().lower()
    if not name:
        return None
    holders: tuple[tuple[str, str, Mapping[str, str]], ...] = (
        ("VM", vm.name, vm.tags),
        ("NSG", nsg.name, nsg.tags),
    )
    for kind, holder, tags in holders:
        for key, value in tags.items():
            if key.strip().lower() == name and (value or "").strip().lower() not in _NOT_QUARANTINED:
                return f"{kind} {holder} carries the quarantine tag {key}={value}: the NSG is left as it is"
    return None


def _check_port(port: int) -> int:
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise InvalidInput(f"management port {port!r} is not a TCP port (1-65535)")
    return port


def _is_cidr(text: str) -> bool:
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return True


def _groups(sources: Sequence[str]) -> list[tuple[str, tuple[str, ...]]]:
    """(name suffix, source prefixes) per rule to write: CIDRs together, each tag or ``*`` alone."""
    cidrs = tuple(s for s in sources if _is_cidr(s))
    words = [s for s in sources if s not in cidrs]
    groups: list[tuple[str, tuple[str, ...]]] = [("", cidrs)] if cidrs else []
    groups += [(re.sub(r"[^a-z0-9._-]", "", "any" if w == "*" else w.lower()), (w,)) for w in words]
    if len(groups) == 1:
        groups[0] = ("", groups[0][1])
    return groups


def _check_destinations(destinations: Sequence[str] | None) -> tuple[str, ...]:
    if destinations is None:
        return ()
    if isinstance(destinations, str):
        raise InvalidInput("destinations must be a list of IP addresses, not one string")
    checked: list[str] = []
    for value in destinations:
        try:
            address = str(ipaddress.ip_address(str(value).strip()))
        except ValueError:
            raise InvalidInput(f"destination {str(value)[:60]!r} is not an IP address") from None
        if address not in checked:
            checked.append(address)
    return tuple(checked)


def _verdicts(
    nsg: NetworkSecurityGroup,
    port: int,
    sources: Sequence[str],
    level: Level,
    tag_prefixes: TagInput,
    destinations: Sequence[str] = (),
) -> dict[str, Verdict]:
    """Per source, the first blocked verdict over the destinations (or the last allowed one)."""
    verdicts: dict[str, Verdict] = {}
    for source in sources:
        for destination in destinations or (None,):
            verdict = evaluate_nsg(
                nsg, Flow(port=port, source=source, destination=destination), level, tag_prefixes
            )
            verdicts[source] = verdict
            if not verdict.allowed:
                break
    return verdicts


def level_of(nsg: NetworkSecurityGroup) -> Level:
    """Where the NSG sits, for the record: a subnet when it is on subnets only, else a NIC."""
    return "subnet" if nsg.subnet_ids and not nsg.nic_ids else "nic"


def plan_management_allow(
    nsg: NetworkSecurityGroup,
    vm: VmFacts,
    port: int,
    sources: Sequence[str],
    quarantine_tag: str,
    *,
    level: Level | None = None,
    tag_prefixes: TagInput = None,
    destinations: Sequence[str] | None = None,
) -> AllowRulePlan:
    """What to write into ``nsg`` so that every management source reaches TCP ``port`` on the VM.

    ``destinations`` are the VM's private IP addresses (its NIC's): the rule admits the port on those
    only. None (or empty) when unknown: the rule then admits it on every address behind the NSG, and
    the reason says so. ``none`` when the NSG lets every source through already (an earlier run's rule
    included), ``skip`` under quarantine. Raises NoFreePriority when no priority above the blocker is
    free, InvalidInput when a destination is not an IP address.
    """
    port = _check_port(port)
    sources = check_sources(sources)
    targets = _check_destinations(destinations)
    level = level or level_of(nsg)
    quarantined = quarantine_reason(quarantine_tag, vm, nsg)
    if quarantined:
        return AllowRulePlan("skip", quarantined, nsg.id, port, sources, level=level, destinations=targets)
    verdicts = _verdicts(nsg, port, sources, level, tag_prefixes, targets)
    blocked = {s: v for s, v in verdicts.items() if not v.allowed}
    if not blocked:
        via = ", ".join(sorted({v.rule.name for v in verdicts.values() if v.rule}))
        return AllowRulePlan(
            "none",
            f"NSG {nsg.name} already lets TCP {port} in from {', '.join(sources)} ({via})",
            nsg.id,
            port,
            sources,
            level=level,
            destinations=targets,
        )
    blockers = [v.rule for v in blocked.values() if v.rule is not None]
    blocker = min(blockers, key=lambda r: r.priority) if blockers else None
    ceiling = min(blocker.priority if blocker else MAX_PRIORITY + 1, MAX_PRIORITY + 1)
    rules = _rules_for(nsg, port, sources, ceiling, blocker, vm, targets)
    what = f"{blocker.name} ({blocker.priority})" if blocker else "no allowing rule"
    on = f" to {', '.join(targets)}" if targets else ""
    reason = (
        f"add {', '.join(f'{r.name} ({r.priority})' for r in rules)} to NSG {nsg.name}: "
        f"{what} blocks TCP {port} from {', '.join(blocked)}{on}"
    )
    if not targets:
        reason += (
            f"; the private address of VM {vm.name} is unknown, so the rule admits TCP {port} on every VM "
            "behind this NSG"
        )
    return AllowRulePlan("add", reason, nsg.id, port, sources, rules, blocker, level, targets)


def _rules_for(
    nsg: NetworkSecurityGroup,
    port: int,
    sources: Sequence[str],
    ceiling: int,
    blocker: DecidingRule | None,
    vm: VmFacts,
    destinations: tuple[str, ...] = (),
) -> tuple[SecurityRule, ...]:
    base = base_rule_name(port)
    inbound = [r for r in nsg.rules if r.direction.lower() == "inbound"]
    ours = {r.name.lower(): r.priority for r in inbound if _is_ours(r, base)}
    opened = {r.name.lower(): r.destination_prefixes for r in inbound if _is_ours(r, base)}
    # A rule of ours that an operator pointed at application security groups keeps them: ARM takes
    # either groups or address prefixes on one side, and the groups are the operator's choice.
    grouped = {
        r.name.lower(): r.destination_asgs for r in inbound if _is_ours(r, base) and r.destination_asgs
    }
    taken = {r.priority for r in inbound}
    why = f"{blocker.name} ({blocker.priority})" if blocker else "no rule"
    description = (
        f"Added by autoremediation (restore-management-access) for VM {vm.name}: {why} "
        f"blocked TCP {port} from the management sources"
    )[:_DESCRIPTION_LIMIT]
    rules: list[SecurityRule] = []
    assigned: set[int] = set()
    for suffix, prefixes in _groups(sources):
        name = f"{base}-{suffix}" if suffix else base
        kept = ours.get(name.lower())
        if kept is not None and MIN_PRIORITY <= kept < ceiling and kept not in assigned:
            priority = kept
        else:
            priority = next_free_priority(ceiling, taken | assigned)
        assigned.add(priority)
        rules.append(
            SecurityRule(
                name=name,
                priority=priority,
                direction="Inbound",
                access="Allow",
                protocol="Tcp",
                source_prefixes=prefixes,
                destination_prefixes=()
                if name.lower() in grouped
                else _destinations_for(opened.get(name.lower(), ()), destinations),
                destination_asgs=grouped.get(name.lower(), ()),
                source_ports=("*",),
                destination_ports=(str(port),),
                description=description,
            )
        )
    return tuple(rules)


def _destinations_for(earlier: Sequence[str], destinations: tuple[str, ...]) -> tuple[str, ...]:
    """Our rule's destinations: this VM's addresses plus the addresses an earlier fix opened.

    An earlier ``*`` (or unknown) destination is not kept: it is narrowed to the addresses named now.
    """
    if not destinations:
        return ("*",)
    kept = [d for d in earlier if _is_cidr(d)]
    merged = list(destinations) + [d for d in kept if d not in destinations]
    return tuple(merged)


def next_free_priority(ceiling: int, taken: set[int] | frozenset[int]) -> int:
    """The highest priority below ``ceiling`` (and at most 4096) not in ``taken``, at least 100."""
    top = min(ceiling - 1, MAX_PRIORITY)
    for priority in range(top, MIN_PRIORITY - 1, -1):
        if priority not in taken:
            return priority
    where = f"between {MIN_PRIORITY} and {top} is free" if top >= MIN_PRIORITY else f"exists above {ceiling}"
    raise NoFreePriority(
        f"no NSG priority {where}: an allow rule cannot be placed above the blocking rule without moving "
        "a customer rule, which this tool never does"
    )


def apply_management_allow(
    network: Network,
    plan: AllowRulePlan,
    *,
    tag_prefixes: TagInput = None,
) -> tuple[SecurityRule, ...]:
    """Write the plan's rules, re-read the NSG and check the port is now reachable from every source.

    Returns the rules as ARM stored them (empty for ``none`` / ``skip``). Raises
    AllowRuleNotEffective when the re-read NSG still blocks a source.
    """
    if plan.action != "add":
        return ()
    written = tuple(network.put_security_rule(plan.nsg_id, rule) for rule in plan.rules)
    nsg = network.get_nsg(plan.nsg_id)
    # Checked for the VM's own addresses: the rule admits only those, so that is what must now pass.
    verdicts = _verdicts(nsg, plan.port, plan.sources, plan.level, tag_prefixes, plan.destinations)
    still = [v for v in verdicts.values() if not v.allowed]
    if still:
        raise AllowRuleNotEffective(
            f"after writing {', '.join(r.name for r in plan.rules)} NSG {nsg.name} still blocks: "
            + "; ".join(v.reason for v in still)
        )
    return written
