"""Effective inbound NSG evaluation for one flow: "can this management source reach TCP <port>?".

Pure code over the ``ports`` dataclasses; nothing here talks to Azure.

How a flow is decided, as Azure documents it:

* Inbound traffic meets the subnet's NSG first, then the NIC's; it must be allowed by both. No NSG at
  a level means that level allows everything.
* Inbound rules of an NSG are walked by priority, lowest number first; the first rule that matches
  decides. Azure's default inbound rules (``AllowVnetInBound`` 65000, ``AllowAzureLoadBalancerInBound``
  65001, ``DenyAllInBound`` 65500) are added when the NSG data does not carry them.
* Azure keeps priorities unique per direction. Data that breaks this anyway is ordered Deny first
  (then by name), so a duplicate can never turn a blocked flow into an allowed one.

The question is asked for a *source*, which is a set of addresses (``VirtualNetwork``, ``10.0.0.0/24``,
``*``), not one address. The answer is "reachable" only when every address of the source gets through:

* a Deny rule decides (blocked) as soon as it overlaps *any part* of what is left of the source;
* an Allow rule removes from the source the part it *wholly covers*; the flow is allowed once nothing
  is left. ``10.0.0.0/25`` then ``10.0.0.128/25`` together allow ``10.0.0.0/24``.

Service tags are resolved as :mod:`.addresses` describes (``VirtualNetwork`` from the VNet read from
ARM, ``Internet`` as what lies outside it, other tags from the Service Tags file when configured).

"Conservative" means: whenever the evaluator cannot tell whether a rule matches (a tag or part of a
tag with unknown addresses, an application security group as a source, a protocol name it does not
know, a source-port restriction, a destination it cannot place), a Deny rule is assumed to match and
an Allow rule is assumed not to. So "reachable" is never concluded from something that was not
evaluated; a "blocked" that rests on such an assumption says so (``Verdict.assumed``) and says what
was uncertain (``Verdict.uncertain``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from ..errors import InvalidInput
from ..ports import NetworkSecurityGroup, SecurityRule
from .addresses import (
    ANY_WORDS,
    AZURE_LOAD_BALANCER,
    HOST_ADDRESS,
    INTERNET,
    VIRTUAL_NETWORK,
    Piece,
    TagAddresses,
    TagInput,
    Tri,
    describe,
    network,
    normalize_tags,
)
from .portspec import _all_ports, parse_port_spec, ports_cover
from .sources import _relate, _relate_group, _source_relations, source_pieces

Level = Literal["subnet", "nic"]
Tags = Mapping[str, TagAddresses]

MIN_PRIORITY = 100
MAX_PRIORITY = 4096
# Re-exported: callers and tests take the evaluator's whole vocabulary from this module.
__all__ = ["HOST_ADDRESS", "TagAddresses", "parse_port_spec", "ports_cover", "source_pieces"]

DEFAULT_INBOUND_RULES: tuple[SecurityRule, ...] = (
    SecurityRule(
        name="AllowVnetInBound",
        priority=65000,
        direction="Inbound",
        access="Allow",
        protocol="*",
        source_prefixes=("VirtualNetwork",),
        destination_prefixes=("VirtualNetwork",),
        description="Allow inbound traffic from all VMs in VNET",
    ),
    SecurityRule(
        name="AllowAzureLoadBalancerInBound",
        priority=65001,
        direction="Inbound",
        access="Allow",
        protocol="*",
        source_prefixes=("AzureLoadBalancer",),
        description="Allow inbound traffic from azure load balancer",
    ),
    SecurityRule(
        name="DenyAllInBound",
        priority=65500,
        direction="Inbound",
        access="Deny",
        protocol="*",
        description="Deny all inbound traffic",
    ),
)
_DEFAULT_NAMES = frozenset(rule.name.lower() for rule in DEFAULT_INBOUND_RULES)

_ASSUMED = "assumed: part of this rule cannot be evaluated, so it is taken to match"
_UNSURE_ALLOW = "an earlier Allow rule could not be evaluated for this source and was not counted"
_ANY_WORDS = ANY_WORDS
_TCP_FAMILY = frozenset({"tcp", "udp", "icmp", "esp", "ah"})


# -------------------------------------------------------------------------------------------- verdict


@dataclass(frozen=True)
class Flow:
    """Inbound traffic to evaluate: ``protocol`` to ``port`` from every address of ``source``.

    ``destination`` is the VM's private address when known; rules with a destination CIDR are
    otherwise undecidable (and treated conservatively). ``destination_groups`` are the ids of the
    application security groups the NIC's IP configuration belongs to (None: not known).
    """

    port: int
    source: str
    protocol: str = "Tcp"
    destination: str | None = None
    destination_groups: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.port, bool) or not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise InvalidInput(f"port {self.port!r} is not a TCP/UDP port (0-65535)")
        if self.destination is not None:
            try:
                ipaddress.ip_address(self.destination)
            except ValueError:
                raise InvalidInput(f"destination {self.destination!r} is not an IP address") from None


@dataclass(frozen=True)
class DecidingRule:
    name: str
    priority: int
    access: str
    nsg_id: str
    level: Level
    default: bool  # one of Azure's default rules
    direction: str = "Inbound"

    def to_dict(self) -> dict[str, object]:
        return {
            "rule": self.name,
            "priority": self.priority,
            "access": self.access,
            "direction": self.direction,
            "nsg_id": self.nsg_id,
            "level": self.level,
            "default_rule": self.default,
        }


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    rule: DecidingRule | None
    reason: str
    assumed: bool = False  # the decision rests on a conservative assumption (see module docstring)
    uncovered: tuple[str, ...] = field(default=())  # the part of the source a Deny caught, described
    uncertain: tuple[str, ...] = field(default=())  # what could not be evaluated on the way


def effective_inbound_rules(nsg: NetworkSecurityGroup) -> tuple[SecurityRule, ...]:
    """The NSG's inbound rules plus the missing Azure defaults, in evaluation order."""
    rules = [r for r in (*nsg.rules, *nsg.default_rules) if r.direction.lower() == "inbound"]
    present = {r.name.lower() for r in rules}
    rules += [r for r in DEFAULT_INBOUND_RULES if r.name.lower() not in present]
    return tuple(sorted(rules, key=lambda r: (r.priority, r.access.lower() != "deny", r.name.lower())))


def _protocol(rule_protocol: str, flow_protocol: str) -> tuple[Tri, str]:
    rule_key = rule_protocol.strip().lower()
    if rule_key in _ANY_WORDS or rule_key == "all" or rule_key == flow_protocol.strip().lower():
        return True, ""
    if rule_key in _TCP_FAMILY:
        return False, ""
    return None, f"protocol {rule_protocol!r} is not one the evaluator knows"


def _destination(rule: SecurityRule, flow: Flow, tags: Tags) -> tuple[Tri, str]:
    results: list[Tri] = []
    whys: list[str] = []
    destination = flow.destination
    for prefix in rule.destination_prefixes:
        key = prefix.strip().lower()
        if key in _ANY_WORDS or key == VIRTUAL_NETWORK:  # a VM's private address is in its VNet
            results.append(True)
            continue
        if key in (INTERNET, AZURE_LOAD_BALANCER):
            results.append(False)
            continue
        net = network(prefix)
        known = tags.get(key)
        if net is not None and destination is not None:
            results.append(ipaddress.ip_address(destination) in net)
        elif known is not None and known.complete and destination is not None:
            address = ipaddress.ip_address(destination)
            results.append(any(address in n for n in known.prefixes))
        else:
            results.append(None)
            whys.append(f"destination {prefix[:80]}: the VM's address cannot be placed in it")
    for group in rule.destination_asgs:
        if flow.destination_groups is None:
            results.append(None)
            whys.append("destination application security groups: the NIC's groups are unknown")
        else:
            results.append(group.strip().rstrip("/").lower() in {g.lower() for g in flow.destination_groups})
    return _any_of(results), "; ".join(whys)


def _any_of(values: Iterable[Tri]) -> Tri:
    seen_unknown = False
    for value in values:
        if value is True:
            return True
        seen_unknown = seen_unknown or value is None
    return None if seen_unknown else False


def _all_of(values: Iterable[Tri]) -> Tri:
    seen_unknown = False
    for value in values:
        if value is False:
            return False
        seen_unknown = seen_unknown or value is None
    return None if seen_unknown else True


def _rule_matches_flow(rule: SecurityRule, flow: Flow, tags: Tags) -> tuple[Tri, str]:
    """Everything but the source address: protocol, destination port and address, source port."""
    try:
        port = ports_cover(rule.destination_ports, flow.port)
        source_ports: Tri = True if _all_ports(rule.source_ports) else None  # clients pick any port
    except InvalidInput as exc:
        raise InvalidInput(f"rule {rule.name}: {exc}") from None
    protocol, protocol_why = _protocol(rule.protocol, flow.protocol)
    destination, destination_why = _destination(rule, flow, tags)
    result = _all_of((protocol, port, destination, source_ports))
    if result is not None:
        return result, ""
    whys = [w for w in (protocol_why, destination_why) if w]
    if source_ports is None:
        whys.append(f"source ports {', '.join(rule.source_ports)}: a client may use any source port")
    return None, f"rule {rule.name}: " + "; ".join(whys)


def evaluate_nsg(
    nsg: NetworkSecurityGroup,
    flow: Flow,
    level: Level = "nic",
    tag_prefixes: TagInput = None,
) -> Verdict:
    """The verdict of one NSG for ``flow`` (see the module docstring for the semantics).

    ``tag_prefixes``: what is known of service tags (tag name -> TagAddresses, or a list of prefixes
    for a tag's complete expansion). Without a ``VirtualNetwork`` entry only the host address is known
    to be in that tag.
    """
    tags = normalize_tags(tag_prefixes)
    left: tuple[Piece, ...] = source_pieces(flow.source, tags)
    where = f"{level} NSG {nsg.name or nsg.id}"
    what = f"{flow.protocol.upper()} {flow.port} from {flow.source}"
    unsure_allow = False  # an Allow was passed over only because it could not be evaluated
    doubts: list[str] = []
    for rule in effective_inbound_rules(nsg):
        applies, why = _rule_matches_flow(rule, flow, tags)
        if applies is False:
            continue
        deciding = DecidingRule(
            rule.name, rule.priority, rule.access, nsg.id, level, rule.name.lower() in _DEFAULT_NAMES
        )
        if rule.access.lower() == "deny":
            caught, unsure, whys = _caught_by(rule, left, tags)
            if caught:
                assumed = applies is None or unsure or unsure_allow
                note = f" ({_ASSUMED})" if applies is None or unsure else ""
                if unsure_allow:
                    note += f" ({_UNSURE_ALLOW})"
                doubts += [why] if applies is None else []
                doubts += whys
                reason = f"{what} is denied by rule {rule.name} (priority {rule.priority}) of {where}{note}"
                return Verdict(
                    False,
                    deciding,
                    reason,
                    assumed,
                    tuple(describe(p) for p in caught),
                    tuple(dict.fromkeys(doubts)),
                )
        elif rule.access.lower() == "allow":
            if applies is None:
                unsure_allow = True
                doubts.append(why)
                continue
            left, unsure, whys = _after_allow(rule, left, tags)
            unsure_allow = unsure_allow or unsure
            doubts += whys
            if not left:
                reason = f"{what} is allowed by rule {rule.name} (priority {rule.priority}) of {where}"
                return Verdict(True, deciding, reason)
    reason = f"{what}: no inbound rule of {where} admits {', '.join(describe(p) for p in left)}"
    return Verdict(
        False, None, reason, unsure_allow, tuple(describe(p) for p in left), tuple(dict.fromkeys(doubts))
    )


def _caught_by(rule: SecurityRule, left: Sequence[Piece], tags: Tags) -> tuple[list[Piece], bool, list[str]]:
    """The pieces a Deny rule's sources overlap (unknown counts as overlapping), if any was unknown
    and why."""
    caught: list[Piece] = []
    unsure = False
    whys: list[str] = []
    for piece in left:
        relations = _source_relations(rule, piece, tags)
        overlaps = _any_of(r.overlaps for r in relations)
        if overlaps is not False:
            caught.append(piece)
            if overlaps is None:
                unsure = True
                whys += [r.why for r in relations if r.overlaps is None and r.why]
    return caught, unsure, whys


def _after_allow(
    rule: SecurityRule, left: Sequence[Piece], tags: Tags
) -> tuple[tuple[Piece, ...], bool, list[str]]:
    """What of the source an Allow rule leaves uncovered, whether any of it may be covered after all,
    and why."""
    remaining = list(left)
    unsure = False
    whys: list[str] = []
    entries: list[tuple[str, bool]] = [(p, False) for p in rule.source_prefixes]
    entries += [(g, True) for g in rule.source_asgs]
    for entry, is_group in entries:
        relations = [_relate_group(entry, p) if is_group else _relate(entry, p, tags) for p in remaining]
        for relation in relations:
            if relation.unsure or relation.overlaps is None:
                unsure = True
                if relation.why:
                    whys.append(relation.why)
        remaining = [rest for relation in relations for rest in relation.left]
    return tuple(remaining), unsure, whys


def evaluate_path(
    flow: Flow,
    subnet_nsg: NetworkSecurityGroup | None,
    nic_nsg: NetworkSecurityGroup | None,
    tag_prefixes: TagInput = None,
) -> Verdict:
    """Inbound through the subnet's NSG, then the NIC's: both must allow."""
    tags = normalize_tags(tag_prefixes)
    last: Verdict | None = None
    levels: tuple[tuple[Level, NetworkSecurityGroup | None], ...] = (("subnet", subnet_nsg), ("nic", nic_nsg))
    for level, nsg in levels:
        if nsg is None:
            continue
        verdict = evaluate_nsg(nsg, flow, level, tags)
        if not verdict.allowed:
            return verdict
        last = verdict
    if last is None:
        return Verdict(
            True,
            None,
            f"no NSG on the subnet or the NIC: Azure lets {flow.protocol.upper()} "
            f"{flow.port} from {flow.source} through",
        )
    if subnet_nsg is not None and nic_nsg is not None:
        return Verdict(
            True,
            last.rule,
            f"{last.reason}, after the subnet NSG {subnet_nsg.name or subnet_nsg.id} allowed it too",
        )
    return last
