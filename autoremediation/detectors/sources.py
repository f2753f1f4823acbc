"""How a rule's source prefixes relate to the parts of a management source (see :mod:`.addresses`).

Pure code. Each relation says whether the rule surely, surely not, or maybe takes in a part of the
source, what it leaves, and why it is unsure.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

from ..errors import InvalidInput
from ..ports import SecurityRule
from .addresses import (
    ANY_WORDS,
    AZURE_LOAD_BALANCER,
    INTERNET,
    VIRTUAL_NETWORK,
    IPNetwork,
    Piece,
    Relation,
    TagAddresses,
    TagInput,
    Tri,
    Unresolved,
    internet_parts,
    intersects,
    is_tag_name,
    network,
    normalize_tags,
    subtract_all,
)

Tags = Mapping[str, TagAddresses]
_ANY_WORDS = ANY_WORDS


def _unresolved(text: str) -> tuple[Unresolved, Unresolved]:
    return (Unresolved(text.lower(), 4, text), Unresolved(text.lower(), 6, text))


def source_pieces(source: str, tag_prefixes: TagInput = None) -> tuple[Piece, ...]:
    """The address set of a management source, as pieces. Raises InvalidInput when it is none of
    ``*``/``Any``, a CIDR or address, or a service tag name."""
    text = source.strip() if isinstance(source, str) else ""
    if text.lower() in _ANY_WORDS:
        return (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0"))
    net = network(text)
    if net is not None:
        return (net,)
    if not is_tag_name(text):
        raise InvalidInput(f"management source {source!r} is not '*', a CIDR, an IP address or a service tag")
    known = normalize_tags(tag_prefixes).get(text.lower())
    if text.lower() == INTERNET or known is None:
        return _unresolved(text)
    return known.prefixes + (() if known.complete else _unresolved(text))


def _subtract(piece: IPNetwork, rule: IPNetwork) -> Relation:
    if piece.version != rule.version or not piece.overlaps(rule):
        return Relation(False, (piece,))
    if piece.subnet_of(rule):  # type: ignore[arg-type]
        return Relation(True, ())
    return Relation(True, tuple(piece.address_exclude(rule)))  # type: ignore[arg-type]


def _why_vnet(tags: Tags) -> str:
    return "; ".join(tags[VIRTUAL_NETWORK].unknown) or "VirtualNetwork: not all of its addresses are known"


def _relate(prefix: str, piece: Piece, tags: Tags) -> Relation:
    """How one rule address prefix relates to one piece of the source."""
    text = prefix.strip()
    key = text.lower()
    if key in _ANY_WORDS:
        return Relation(True, ())
    rule_net = network(text)
    if isinstance(piece, Unresolved):
        return _relate_to_unresolved(key, text, rule_net, piece, tags)
    if rule_net is not None:
        return _subtract(piece, rule_net)
    if not is_tag_name(text):
        return Relation(None, (piece,), True, f"source {text[:80]} is not an address prefix or a service tag")
    if key == INTERNET:
        sure, maybe = internet_parts(piece, tags[VIRTUAL_NETWORK])
        left = tuple(subtract_all([piece], sure))
        overlaps: Tri = True if sure else (None if maybe else False)
        return Relation(overlaps, left, bool(maybe), _why_vnet(tags) if maybe else "")
    known = tags.get(key)
    if known is None:
        return Relation(None, (piece,), True, f"service tag {text}: its addresses are unknown")
    hit = intersects(piece, known.prefixes)
    left = tuple(subtract_all([piece], known.prefixes))
    if known.complete or not left:
        return Relation(hit, left)
    why = "; ".join(known.unknown) or f"service tag {text}: not all of its addresses are known"
    return Relation(True if hit else None, left, True, why)


def _relate_to_unresolved(
    key: str, text: str, rule_net: IPNetwork | None, piece: Unresolved, tags: Tags
) -> Relation:
    unknown = f"{piece.name or piece.key}: its addresses are unknown"
    if piece.key == VIRTUAL_NETWORK:
        unknown = _why_vnet(tags)
    if rule_net is not None:
        if rule_net.version != piece.family:
            return Relation(False, (piece,))
        if rule_net.prefixlen == 0:
            return Relation(True, ())
        if piece.key == INTERNET:
            sure, maybe = internet_parts(rule_net, tags[VIRTUAL_NETWORK])
            if sure:
                return Relation(True, (piece,))
            return Relation(None, (piece,), True, _why_vnet(tags)) if maybe else Relation(False, (piece,))
        return Relation(None, (piece,), True, unknown)
    if key == piece.key:
        return Relation(True, ())
    disjoint = {(VIRTUAL_NETWORK, INTERNET), (INTERNET, VIRTUAL_NETWORK), (AZURE_LOAD_BALANCER, INTERNET)}
    if (key, piece.key) in disjoint:
        return Relation(False, (piece,))
    if key == AZURE_LOAD_BALANCER and piece.key == VIRTUAL_NETWORK:
        return Relation(False, (piece,))  # the host address is in the known part of VirtualNetwork
    if not is_tag_name(text):
        unknown = f"source {text[:80]} is not an address prefix or a service tag"
    return Relation(None, (piece,), True, unknown)


def _relate_group(group_id: str, piece: Piece) -> Relation:
    name = group_id.rstrip("/").rpartition("/")[2] or group_id
    why = f"application security group {name}: the addresses of its members are not read"
    return Relation(None, (piece,), True, why)


def _source_relations(rule: SecurityRule, piece: Piece, tags: Tags) -> list[Relation]:
    relations = [_relate(p, piece, tags) for p in rule.source_prefixes]
    relations += [_relate_group(g, piece) for g in rule.source_asgs]
    return relations
