"""Address sets for NSG evaluation: CIDRs, ``*``, and service tags with what is known of them.

Pure code. What Azure documents about the tags this module resolves itself:

* ``VirtualNetwork``: the virtual network's address space, peered virtual networks, the virtual IP
  address of the host (168.63.129.16), and also connected on-premises address spaces, virtual networks
  connected through a gateway and address prefixes used on user-defined routes ("this tag might also
  contain default routes"). The part read from ARM (the VNet's address space, the remote address
  space of its connected peerings, the host address) is *known*; the rest is known to be empty only
  when the VNet has no gateway subnet, no peering uses a remote gateway, the subnet has no route table
  and every peering could be read. Otherwise the tag is *incomplete*: addresses outside the known part
  are uncertain.
* ``Internet``: the address space outside the virtual network and reachable by the public internet.
  So an address is Internet when it is neither in ``VirtualNetwork`` nor in a range that is not
  routable on the public internet (``NOT_INTERNET``: private-use, shared, loopback, link-local,
  multicast and their IPv6 counterparts). Documentation ranges such as 203.0.113.0/24 are outside
  ``NOT_INTERNET``: they are Internet. Where ``VirtualNetwork`` is incomplete, a public address outside
  its known part is uncertain.
* ``AzureLoadBalancer``: the host address 168.63.129.16 only.
* Every other tag: addresses unknown unless the operator configures Microsoft's published Service
  Tags file (then the file's prefixes are the tag's complete expansion).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from ..errors import InvalidInput

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Tri = bool | None

HOST_ADDRESS = ipaddress.ip_network("168.63.129.16/32")
INTERNET = "internet"
VIRTUAL_NETWORK = "virtualnetwork"
AZURE_LOAD_BALANCER = "azureloadbalancer"
ANY_WORDS = frozenset({"*", "any"})

# Ranges never reachable from the public internet, so never part of the Internet tag.
NOT_INTERNET: tuple[IPNetwork, ...] = tuple(
    ipaddress.ip_network(text)
    for text in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "224.0.0.0/3",  # multicast, reserved and broadcast
        "::/127",
        "::ffff:0:0/96",
        "fc00::/7",
        "fe80::/10",
        "ff00::/8",
    )
)


@dataclass(frozen=True)
class TagAddresses:
    """What is known of one service tag: prefixes surely in it, and whether that is all of it."""

    prefixes: tuple[IPNetwork, ...] = ()
    complete: bool = True
    unknown: tuple[str, ...] = ()  # why the tag is incomplete, for the evidence

    @classmethod
    def exact(cls, prefixes: Iterable[str], name: str = "tag") -> TagAddresses:
        nets = []
        for text in prefixes:
            net = network(str(text))
            if net is None:
                raise InvalidInput(f"address prefix {str(text)[:60]!r} of {name} is not a CIDR")
            nets.append(net)
        return cls(tuple(nets), True)


Tags = Mapping[str, TagAddresses]
TagInput = Mapping[str, "Sequence[str] | TagAddresses"] | None

UNREAD_VIRTUAL_NETWORK = TagAddresses(
    (HOST_ADDRESS,), False, ("VirtualNetwork: the virtual network's address space was not read",)
)
LOAD_BALANCER = TagAddresses((HOST_ADDRESS,), True)


def normalize_tags(tags: TagInput) -> dict[str, TagAddresses]:
    """Tag name (lower case) -> TagAddresses; a plain list of prefixes is a complete expansion."""
    result: dict[str, TagAddresses] = {}
    for name, value in (tags or {}).items():
        result[name.strip().lower()] = (
            value if isinstance(value, TagAddresses) else TagAddresses.exact(value, f"tag {name}")
        )
    result.setdefault(AZURE_LOAD_BALANCER, LOAD_BALANCER)
    result.setdefault(VIRTUAL_NETWORK, UNREAD_VIRTUAL_NETWORK)
    return result


@lru_cache(maxsize=4096)  # rule prefixes repeat across rules, NICs and sources; the answer is immutable
def network(text: str) -> IPNetwork | None:
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        return None


def is_tag_name(text: str) -> bool:
    # Service tags look like words ("Storage.WestEurope", "AzureCloud"); ASG ids and junk do not.
    return bool(text) and text[0].isalpha() and all(ch.isalnum() or ch in ".-_" for ch in text)


def subtract_all(pieces: Iterable[IPNetwork], holes: Iterable[IPNetwork]) -> list[IPNetwork]:
    """What of ``pieces`` lies outside every hole."""
    left = list(pieces)
    for hole in holes:
        rest: list[IPNetwork] = []
        for piece in left:
            if piece.version != hole.version or not piece.overlaps(hole):
                rest.append(piece)
            elif not piece.subnet_of(hole):  # type: ignore[arg-type]
                rest.extend(piece.address_exclude(hole))  # type: ignore[arg-type]
        left = rest
    return left


def intersects(piece: IPNetwork, nets: Iterable[IPNetwork]) -> bool:
    return any(piece.version == n.version and piece.overlaps(n) for n in nets)


@dataclass(frozen=True)
class Unresolved:
    """A part of a source whose addresses are unknown: one address family of a service tag."""

    key: str  # lower-case tag name
    family: int  # 4 or 6
    name: str = field(default="", compare=False)  # as the operator wrote it


Piece = IPNetwork | Unresolved


@dataclass(frozen=True)
class Relation:
    """How one rule prefix relates to one piece of the source.

    ``overlaps``: the rule surely takes in some of the piece (True), surely none (False), or may
    (None). ``left``: what of the piece the rule surely does not cover. ``unsure``: some of ``left``
    may be covered after all (so an Allow that leaves it is not the whole story). ``why``: the reason
    for any uncertainty.
    """

    overlaps: Tri
    left: tuple[Piece, ...]
    unsure: bool = False
    why: str = ""


def internet_parts(piece: IPNetwork, vnet: TagAddresses) -> tuple[list[IPNetwork], list[IPNetwork]]:
    """(surely Internet, maybe Internet) parts of a network piece."""
    outside = subtract_all(subtract_all([piece], vnet.prefixes), NOT_INTERNET)
    return (outside, []) if vnet.complete else ([], outside)


def describe(piece: Piece) -> str:
    if isinstance(piece, Unresolved):
        return f"{piece.name or piece.key} (IPv{piece.family})"
    return str(piece)
