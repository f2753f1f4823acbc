"""Effective inbound NSG evaluation for one flow: "can this management source reach TCP <port>?".

Pure code over the ``ports`` dataclasses; nothing here talks to Azure.

How a flow is decided, as Azure does it:

* Inbound rules of an NSG are walked by priority, lowest number first; the first rule that matches
  decides. Azure's default inbound rules (``AllowVnetInBound`` 65000, ``AllowAzureLoadBalancerInBound``
  65001, ``DenyAllInBound`` 65500) are added when the NSG data does not carry them.
* Azure keeps priorities unique per direction. Data that breaks this anyway is ordered Deny first
  (then by name), so a duplicate can never turn a blocked flow into an allowed one.
* When a subnet NSG and a NIC NSG both apply, inbound traffic must be allowed by both: the subnet's
  NSG is evaluated first, then the NIC's. No NSG at a level means that level allows everything.

The question is asked for a *source*, which is a set of addresses (``VirtualNetwork``, ``Internet``,
``10.0.0.0/24``, ``*``), not one address. The answer is "reachable" only when every address of the
source gets through:

* a Deny rule decides (blocked) as soon as it overlaps *any part* of what is left of the source;
* an Allow rule removes from the source the part it *wholly covers*; the flow is allowed once nothing
  is left. ``10.0.0.0/25`` then ``10.0.0.128/25`` together allow ``10.0.0.0/24``.

"Conservative" means: whenever the evaluator cannot tell whether a rule matches (a service tag it
has no addresses for, an application security group, a protocol name it does not know, a source-port
restriction, a destination CIDR while the VM's address is unknown), a Deny rule is assumed to match and
an Allow rule is assumed not to. So "reachable" is never concluded from something that was not
evaluated; a "blocked" that rests on such an assumption says so (``Verdict.assumed``).

Address sets the evaluator knows:

* ``*`` / ``Any``: everything, IPv4 and IPv6.
* CIDRs and plain addresses, IPv4 and IPv6 (compared exactly; different families never overlap).
* ``Internet``: globally routable addresses (everything outside the special-purpose ranges listed in
  ``NON_PUBLIC``); by Azure's definition it never overlaps ``VirtualNetwork``.
* ``AzureLoadBalancer``: the host address 168.63.129.16, which ``VirtualNetwork`` includes.
* ``VirtualNetwork`` and every other tag: addresses unknown unless the caller passes them in
  ``tag_prefixes`` (a tag's *complete* expansion, e.g. from Azure's effective-rules view). A tag used
  as a source is considered in both families: an IPv4-only Allow leaves its IPv6 part uncovered.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from ..errors import InvalidInput
from ..ports import NetworkSecurityGroup, SecurityRule

Level = Literal["subnet", "nic"]
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# Three-valued match: True, False, or None when the evaluator cannot tell.
Tri = bool | None

MIN_PRIORITY = 100
MAX_PRIORITY = 4096
HOST_ADDRESS = ipaddress.ip_network("168.63.129.16/32")

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

# Special-purpose ranges that are not globally routable (RFC 6890 registries): not "Internet".
NON_PUBLIC: tuple[IPNetwork, ...] = tuple(
    ipaddress.ip_network(text)
    for text in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/3",  # multicast, reserved and broadcast
        "::/127",
        "::ffff:0:0/96",
        "64:ff9b:1::/48",
        "100::/64",
        "2001:db8::/32",
        "fc00::/7",
        "fe80::/10",
        "ff00::/8",
    )
)

_ASSUMED = "assumed: part of this rule cannot be evaluated, so it is taken to match"
_UNSURE_ALLOW = "an earlier Allow rule could not be evaluated for this source and was not counted"
_ANY_WORDS = frozenset({"*", "any"})
_TCP_FAMILY = frozenset({"tcp", "udp", "icmp", "esp", "ah"})
INTERNET = "internet"
VIRTUAL_NETWORK = "virtualnetwork"
AZURE_LOAD_BALANCER = "azureloadbalancer"
# (rule tag, source tag) pairs Azure defines as disjoint: Internet is the space outside the VNet.
_DISJOINT_TAGS = frozenset(
    {
        (VIRTUAL_NETWORK, INTERNET),
        (INTERNET, VIRTUAL_NETWORK),
        (INTERNET, AZURE_LOAD_BALANCER),
        (AZURE_LOAD_BALANCER, INTERNET),
    }
)


# ---------------------------------------------------------------------------------------------- ports


def parse_port_spec(spec: str) -> tuple[int, int]:
    """``"22"`` -> (22, 22), ``"20-25"`` -> (20, 25), ``"*"`` -> (0, 65535). Raises InvalidInput."""
    text = spec.strip() if isinstance(spec, str) else ""
    if text.lower() in _ANY_WORDS:
        return 0, 65535
    low, dash, high = text.partition("-")
    bounds = (low.strip(), high.strip()) if dash else (low.strip(), low.strip())
    if not all(part.isascii() and part.isdigit() for part in bounds):
        raise InvalidInput(f"port {spec!r} is not a port, a range 'low-high' or '*'")
    start, end = int(bounds[0]), int(bounds[1])
    if end > 65535:
        raise InvalidInput(f"port {spec!r} is outside 0-65535")
    if start > end:
        raise InvalidInput(f"port range {spec!r} starts after it ends")
    return start, end


def ports_cover(specs: Iterable[str], port: int) -> bool:
    """Whether any of the rule's port specs includes ``port``."""
    return any(start <= port <= end for start, end in (parse_port_spec(spec) for spec in specs))


def _all_ports(specs: Iterable[str]) -> bool:
    ranges = sorted(parse_port_spec(spec) for spec in specs)
    reach = -1
    for start, end in ranges:
        if start > reach + 1:
            return False
        reach = max(reach, end)
    return reach >= 65535


# ------------------------------------------------------------------------------------------ addresses


@dataclass(frozen=True)
class _Tag:
    """A part of a service tag's address set: one address family of it."""

    key: str  # lower-case tag name
    family: int  # 4 or 6
    name: str = field(default="", compare=False)  # as the operator wrote it


Piece = IPNetwork | _Tag


def _network(text: str) -> IPNetwork | None:
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        return None


def _is_tag_name(text: str) -> bool:
    # Service tags look like words ("Storage.WestEurope", "AzureCloud"); ASG ids and junk do not.
    return bool(text) and text[0].isalpha() and all(ch.isalnum() or ch in ".-_" for ch in text)


def source_pieces(source: str, tag_prefixes: Mapping[str, Sequence[str]] | None = None) -> tuple[Piece, ...]:
    """The address set of a management source, as pieces. Raises InvalidInput when it is none of
    ``*``/``Any``, a CIDR or address, or a service tag name."""
    text = source.strip() if isinstance(source, str) else ""
    if text.lower() in _ANY_WORDS:
        return (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0"))
    net = _network(text)
    if net is not None:
        return (net,)
    if not _is_tag_name(text):
        raise InvalidInput(f"management source {source!r} is not '*', a CIDR, an IP address or a service tag")
    expansion = _expansion(text, tag_prefixes)
    if expansion is not None:
        return expansion
    if text.lower() == AZURE_LOAD_BALANCER:
        return (_Tag(AZURE_LOAD_BALANCER, 4, text),)
    return (_Tag(text.lower(), 4, text), _Tag(text.lower(), 6, text))


def _expansion(tag: str, tag_prefixes: Mapping[str, Sequence[str]] | None) -> tuple[IPNetwork, ...] | None:
    if not tag_prefixes:
        return None
    for name, prefixes in tag_prefixes.items():
        if name.lower() == tag.lower():
            nets = [_network(p) for p in prefixes]
            if any(n is None for n in nets):
                raise InvalidInput(f"address prefixes of tag {name}: {list(prefixes)!r} are not all CIDRs")
            return tuple(n for n in nets if n is not None)
    return None


@dataclass(frozen=True)
class _Relation:
    overlaps: Tri
    left: tuple[Piece, ...]  # what of the source piece this prefix does not wholly cover


def _subtract(piece: IPNetwork, rule: IPNetwork) -> _Relation:
    if piece.version != rule.version or not piece.overlaps(rule):
        return _Relation(False, (piece,))
    if piece.subnet_of(rule):  # type: ignore[arg-type]
        return _Relation(True, ())
    return _Relation(True, tuple(piece.address_exclude(rule)))  # type: ignore[arg-type]


def _non_public_part(piece: IPNetwork) -> tuple[IPNetwork, ...]:
    parts = []
    for block in NON_PUBLIC:
        if block.version == piece.version and block.overlaps(piece):
            parts.append(piece if piece.subnet_of(block) else block)  # type: ignore[arg-type]
    return tuple(parts)


def _has_public_part(net: IPNetwork) -> bool:
    return _non_public_part(net) != (net,)


def _relate(prefix: str, piece: Piece, tag_prefixes: Mapping[str, Sequence[str]] | None) -> _Relation:
    """How one rule address prefix relates to one piece of the source."""
    text = prefix.strip()
    key = text.lower()
    if key in _ANY_WORDS:
        return _Relation(True, ())
    rule_net = _network(text)
    if rule_net is None and key == AZURE_LOAD_BALANCER and not isinstance(piece, _Tag):
        rule_net = HOST_ADDRESS
    if rule_net is None and _is_tag_name(text):
        expansion = _expansion(text, tag_prefixes)
        if expansion is not None and not isinstance(piece, _Tag):
            return _relate_many(expansion, piece)
    if isinstance(piece, _Tag):
        return _relate_to_tag(key, rule_net, piece)
    if rule_net is not None:
        return _subtract(piece, rule_net)
    if key == INTERNET:
        private = _non_public_part(piece)
        return _Relation(private != (piece,), private)
    return _Relation(None, (piece,))  # VirtualNetwork, unknown tags, ASG ids: addresses unknown


def _relate_many(nets: Sequence[IPNetwork], piece: IPNetwork) -> _Relation:
    left: list[IPNetwork] = [piece]
    hit = False
    for net in nets:
        rest: list[IPNetwork] = []
        for part in left:
            relation = _subtract(part, net)
            hit = hit or bool(relation.overlaps)
            rest.extend(p for p in relation.left if not isinstance(p, _Tag))
        left = rest
    return _Relation(hit, tuple(left))


def _relate_to_tag(key: str, rule_net: IPNetwork | None, piece: _Tag) -> _Relation:
    if rule_net is not None:
        if rule_net.version != piece.family:
            return _Relation(False, (piece,))
        if rule_net.prefixlen == 0:
            return _Relation(True, ())
        if piece.key == INTERNET:
            return _Relation(_has_public_part(rule_net), (piece,))
        if piece.key == AZURE_LOAD_BALANCER:
            covered = HOST_ADDRESS.subnet_of(rule_net)  # type: ignore[arg-type]
            return _Relation(covered, () if covered else (piece,))
        return _Relation(None, (piece,))
    if key == piece.key:
        return _Relation(True, ())
    if (key, piece.key) in _DISJOINT_TAGS:
        return _Relation(False, (piece,))
    if (key, piece.key) == (VIRTUAL_NETWORK, AZURE_LOAD_BALANCER):
        return _Relation(True, ())
    if (key, piece.key) == (AZURE_LOAD_BALANCER, VIRTUAL_NETWORK):
        return _Relation(True, (piece,))
    return _Relation(None, (piece,))


def _describe(piece: Piece) -> str:
    if isinstance(piece, _Tag):
        return f"{piece.name or piece.key} (IPv{piece.family})"
    return str(piece)


# -------------------------------------------------------------------------------------------- verdict


@dataclass(frozen=True)
class Flow:
    """Inbound traffic to evaluate: ``protocol`` to ``port`` from every address of ``source``.

    ``destination`` is the VM's private address when known; rules with a destination CIDR are
    otherwise undecidable (and treated conservatively).
    """

    port: int
    source: str
    protocol: str = "Tcp"
    destination: str | None = None

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

    def to_dict(self) -> dict[str, object]:
        return {
            "rule": self.name,
            "priority": self.priority,
            "access": self.access,
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


def effective_inbound_rules(nsg: NetworkSecurityGroup) -> tuple[SecurityRule, ...]:
    """The NSG's inbound rules plus the missing Azure defaults, in evaluation order."""
    rules = [r for r in (*nsg.rules, *nsg.default_rules) if r.direction.lower() == "inbound"]
    present = {r.name.lower() for r in rules}
    rules += [r for r in DEFAULT_INBOUND_RULES if r.name.lower() not in present]
    return tuple(sorted(rules, key=lambda r: (r.priority, r.access.lower() != "deny", r.name.lower())))


def _protocol(rule_protocol: str, flow_protocol: str) -> Tri:
    rule_key = rule_protocol.strip().lower()
    if rule_key in _ANY_WORDS or rule_key == "all" or rule_key == flow_protocol.strip().lower():
        return True
    return False if rule_key in _TCP_FAMILY else None


def _destination(prefixes: Sequence[str], destination: str | None) -> Tri:
    results: list[Tri] = []
    for prefix in prefixes:
        key = prefix.strip().lower()
        if key in _ANY_WORDS or key == VIRTUAL_NETWORK:  # a VM's private address is in its VNet
            results.append(True)
        elif key in (INTERNET, AZURE_LOAD_BALANCER):
            results.append(False)
        else:
            net = _network(prefix)
            if net is None or destination is None:
                results.append(None)
            else:
                results.append(ipaddress.ip_address(destination) in net)
    return _any_of(results)


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


def _rule_matches_flow(rule: SecurityRule, flow: Flow) -> Tri:
    """Everything but the source address: protocol, destination port and address, source port."""
    try:
        port = ports_cover(rule.destination_ports, flow.port)
        source_ports = True if _all_ports(rule.source_ports) else None  # clients pick any source port
    except InvalidInput as exc:
        raise InvalidInput(f"rule {rule.name}: {exc}") from None
    return _all_of(
        (
            _protocol(rule.protocol, flow.protocol),
            port,
            _destination(rule.destination_prefixes, flow.destination),
            source_ports,
        )
    )


def evaluate_nsg(
    nsg: NetworkSecurityGroup,
    flow: Flow,
    level: Level = "nic",
    tag_prefixes: Mapping[str, Sequence[str]] | None = None,
) -> Verdict:
    """The verdict of one NSG for ``flow`` (see the module docstring for the semantics)."""
    left: tuple[Piece, ...] = source_pieces(flow.source, tag_prefixes)
    where = f"{level} NSG {nsg.name or nsg.id}"
    what = f"{flow.protocol.upper()} {flow.port} from {flow.source}"
    unsure_allow = False  # an Allow was passed over only because it could not be evaluated
    for rule in effective_inbound_rules(nsg):
        applies = _rule_matches_flow(rule, flow)
        if applies is False:
            continue
        deciding = DecidingRule(
            rule.name, rule.priority, rule.access, nsg.id, level, rule.name.lower() in _DEFAULT_NAMES
        )
        if rule.access.lower() == "deny":
            caught, unsure = _caught_by(rule, left, tag_prefixes)
            if caught:
                assumed = applies is None or unsure or unsure_allow
                note = f" ({_ASSUMED})" if applies is None or unsure else ""
                if unsure_allow:
                    note += f" ({_UNSURE_ALLOW})"
                reason = f"{what} is denied by rule {rule.name} (priority {rule.priority}) of {where}{note}"
                return Verdict(False, deciding, reason, assumed, tuple(_describe(p) for p in caught))
        elif rule.access.lower() == "allow":
            if applies is None:
                unsure_allow = True
                continue
            left, unsure = _after_allow(rule, left, tag_prefixes)
            unsure_allow = unsure_allow or unsure
            if not left:
                reason = f"{what} is allowed by rule {rule.name} (priority {rule.priority}) of {where}"
                return Verdict(True, deciding, reason)
    reason = f"{what}: no inbound rule of {where} admits {', '.join(_describe(p) for p in left)}"
    return Verdict(False, None, reason, unsure_allow, tuple(_describe(p) for p in left))


def _caught_by(
    rule: SecurityRule, left: Sequence[Piece], tag_prefixes: Mapping[str, Sequence[str]] | None
) -> tuple[list[Piece], bool]:
    """The pieces a Deny rule's sources overlap (unknown counts as overlapping) and if any was unknown."""
    caught: list[Piece] = []
    unsure = False
    for piece in left:
        overlaps = _any_of(_relate(p, piece, tag_prefixes).overlaps for p in rule.source_prefixes)
        if overlaps is not False:
            caught.append(piece)
            unsure = unsure or overlaps is None
    return caught, unsure


def _after_allow(
    rule: SecurityRule, left: Sequence[Piece], tag_prefixes: Mapping[str, Sequence[str]] | None
) -> tuple[tuple[Piece, ...], bool]:
    """What of the source an Allow rule leaves uncovered, and whether any relation was unknown."""
    remaining = list(left)
    unsure = False
    for prefix in rule.source_prefixes:
        relations = [_relate(prefix, piece, tag_prefixes) for piece in remaining]
        unsure = unsure or any(r.overlaps is None for r in relations)
        remaining = [rest for relation in relations for rest in relation.left]
    return tuple(remaining), unsure


def evaluate_path(
    flow: Flow,
    subnet_nsg: NetworkSecurityGroup | None,
    nic_nsg: NetworkSecurityGroup | None,
    tag_prefixes: Mapping[str, Sequence[str]] | None = None,
) -> Verdict:
    """Inbound through the subnet's NSG, then the NIC's: both must allow."""
    last: Verdict | None = None
    levels: tuple[tuple[Level, NetworkSecurityGroup | None], ...] = (("subnet", subnet_nsg), ("nic", nic_nsg))
    for level, nsg in levels:
        if nsg is None:
            continue
        verdict = evaluate_nsg(nsg, flow, level, tag_prefixes)
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
