"""Frozen dataclass records built without their generated ``__init__``, where one is built per signal.

A frozen dataclass's ``__init__`` sets each field through ``object.__setattr__``; for the records the
intake path builds for every payload (signals, verdicts, findings, plans) that is a good part of its
cost. :func:`build` makes the same record (same fields, equality, hash, repr, still frozen) by handing
it a complete dict of its fields. Pure: no I/O.
"""

from __future__ import annotations

from typing import Any, TypeVar

T = TypeVar("T")


def build(cls: type[T], values: dict[str, Any]) -> T:
    """A ``cls`` whose attributes are ``values`` (every field by name; the dict is taken, not copied)."""
    record = cls.__new__(cls)
    object.__setattr__(record, "__dict__", values)
    return record
