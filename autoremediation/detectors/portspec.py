"""NSG port specs: ``"22"``, ``"20-25"``, ``"*"``, as ARM keeps them in a rule's port ranges."""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

from ..errors import InvalidInput
from .addresses import ANY_WORDS

_ANY_WORDS = ANY_WORDS


def parse_port_spec(spec: str) -> tuple[int, int]:
    """``"22"`` -> (22, 22), ``"20-25"`` -> (20, 25), ``"*"`` -> (0, 65535). Raises InvalidInput."""
    if not isinstance(spec, str):
        raise InvalidInput(f"port {spec!r} is not a port, a range 'low-high' or '*'")
    return _parse_port_spec(spec)


@lru_cache(maxsize=4096)  # the same port specs recur in every rule set; the answer is immutable
def _parse_port_spec(spec: str) -> tuple[int, int]:
    text = spec.strip()
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
