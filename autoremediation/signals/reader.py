"""Defensive reading of decoded JSON: every value is checked, and every complaint names its path.

Azure payloads drift between samples and releases (numbers as strings, a string where an array is
expected, ``null`` for an absent section), so optional leaves that have an unexpected type are read
as absent, while a missing key field or a section of the wrong shape is a :class:`SignalError`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from ..errors import SignalError

_MISSING = object()


def kind_of(value: object) -> str:
    """The JSON name of a value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "an array"
    return type(value).__name__


def scalar_text(value: object) -> str | None:
    """A JSON scalar as text (numbers and booleans in their JSON form), else None."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        try:
            return str(value)
        except ValueError:  # more digits than Python converts to text
            return None
    if isinstance(value, float):
        return json.dumps(value)
    return None


def any_text(value: object) -> str | None:
    """Scalars as text, arrays and objects as compact JSON, null (or anything unencodable) as None."""
    text = scalar_text(value)
    if text is not None or value is None:
        return text
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        return None


@dataclass(frozen=True)
class Node:
    """A value inside a payload together with where it was found."""

    value: object
    path: str
    kind: str  # "alert", "event", "cloudevent", "manual": the prefix of every message
    present: bool = True

    def child(self, key: str) -> Node:
        path = f"{self.path}.{key}" if self.path else key
        if isinstance(self.value, Mapping):
            try:
                value = self.value.get(key, _MISSING)
            except TypeError:  # a mapping with keys that do not compare to strings
                value = _MISSING
            if value is not _MISSING:
                return Node(value, path, self.kind)
        return Node(None, path, self.kind, present=False)

    def __getitem__(self, key: str) -> Node:
        return self.child(key)

    def error(self, problem: str) -> SignalError:
        return SignalError(f"{self.kind}: {self.path} {problem}")

    @property
    def absent(self) -> bool:
        return not self.present or self.value is None

    def mapping(self, *, required: bool = False) -> Mapping[str, object] | None:
        """The object here; a wrong type is an error for a required section, else read as absent."""
        if isinstance(self.value, Mapping):
            return self.value
        if self.absent:
            if required:
                raise self.error("is null" if self.present else "is missing")
            return None
        if required:
            raise self.error(f"must be an object, not {kind_of(self.value)}")
        return None

    def section(self) -> Node:
        """An optional object section: absent is fine, any other type is malformed."""
        if not self.absent and not isinstance(self.value, Mapping):
            raise self.error(f"must be an object, not {kind_of(self.value)}")
        return self

    def text(self, *, required: bool = False) -> str | None:
        """A scalar as text; a one-element array stands for its element (seen in the wild)."""
        value = self.value
        if isinstance(value, list | tuple) and len(value) == 1:
            value = value[0]
        text = scalar_text(value)
        if text:
            return text
        if required:
            if self.present and self.value is None:
                raise self.error("is null")
            if self.absent or text == "":
                raise self.error("is missing")
            raise self.error(f"must be a string, not {kind_of(self.value)}")
        return None

    def required_text(self) -> str:
        text = self.text(required=True)
        if text is None:  # unreachable: text(required=True) raises instead
            raise self.error("is missing")
        return text

    def texts(self) -> list[str]:
        """A list of scalars as texts; a lone scalar counts as a list of one, other members are skipped."""
        if isinstance(self.value, list | tuple):
            values = [scalar_text(v) for v in self.value]
            return [v for v in values if v]
        text = scalar_text(self.value)
        return [text] if text else []

    def entries(self) -> Iterator[Node]:
        """The members of an array; a lone object counts as an array of one."""
        if isinstance(self.value, list | tuple):
            for index, value in enumerate(self.value):
                yield Node(value, f"{self.path}[{index}]", self.kind)
        elif isinstance(self.value, Mapping):
            yield self


def lookup_ci(mapping: Mapping[str, str], *names: str) -> list[str]:
    """Values whose key equals one of ``names`` ignoring case, in the mapping's order."""
    wanted = {n.lower() for n in names}
    return [v for k, v in mapping.items() if k.lower() in wanted]


def name_value_pairs(node: Node) -> dict[str, str]:
    """``[{"name": .., "value": ..}]`` (or a plain object) as a mapping of texts; nameless items skipped."""
    if isinstance(node.value, Mapping) and not {"name", "value"} <= set(_str_keys(node.value)):
        return text_mapping(node.value)
    result: dict[str, str] = {}
    for entry in node.entries():
        name = entry["name"].text()
        value = entry["value"].text()
        if name and value is not None:
            result[name] = value
    return result


def text_mapping(value: object) -> dict[str, str]:
    """An object's members as texts (arrays and objects as JSON); nulls and odd keys skipped."""
    if not isinstance(value, Mapping):
        return {}
    result: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(key, str):
            continue
        text = any_text(item)
        if text is not None:
            result[key] = text
    return result


def _str_keys(mapping: Mapping[object, object]) -> Iterator[str]:
    return (k for k in mapping if isinstance(k, str))
