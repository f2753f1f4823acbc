"""Defensive reading of decoded JSON: every value is checked, and every complaint names its path.

Azure payloads drift between samples and releases (numbers as strings, a string where an array is
expected, ``null`` for an absent section), so optional leaves that have an unexpected type are read
as absent, while a missing key field or a section of the wrong shape is a :class:`SignalError`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any, TypeGuard

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
    if value is None:
        return None
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


def _is_mapping(value: object) -> TypeGuard[Mapping[str, object]]:
    # Decoded JSON is made of plain dicts: test for those first, the ABC check only for the rest.
    return type(value) is dict or (value is not None and isinstance(value, Mapping))


def _is_array(value: object) -> TypeGuard[list[object] | tuple[object, ...]]:
    return type(value) is list or (value is not None and isinstance(value, list | tuple))


# Lenient reads on plain values, for the many optional fields whose bad shape is read as absent: no
# node, no path (a node is only needed where a bad value is an error worth a path).


def member(value: object, key: str) -> object:
    """``value[key]`` of an object; None when absent, or when ``value`` is no object."""
    if type(value) is dict:
        return value.get(key)
    if value is not None and isinstance(value, Mapping):
        try:
            return value.get(key)
        except TypeError:  # a mapping with keys that do not compare to strings
            return None
    return None


def as_text(value: object) -> str | None:
    """A scalar as text, None when empty; a one-element array stands for its element (seen in the wild)."""
    if type(value) is str:
        return value.strip() or None
    if value is None:
        return None
    if _is_array(value) and len(value) == 1:
        value = value[0]
    return scalar_text(value) or None


def text_in(value: object, key: str) -> str | None:
    """``as_text(member(value, key))``, the common cases said once more here for speed."""
    if type(value) is dict:
        found = value.get(key)
        if type(found) is str:
            return found.strip() or None
        return None if found is None else as_text(found)
    return as_text(member(value, key))


def as_texts(value: object) -> list[str]:
    """A list of scalars as texts; a lone scalar counts as a list of one, other members are skipped."""
    if type(value) is list:
        texts = [v.strip() if type(v) is str else scalar_text(v) for v in value]  # strings said inline
        return [t for t in texts if t]
    if _is_array(value):
        texts = [scalar_text(v) for v in value]
        return [t for t in texts if t]
    text = scalar_text(value)
    return [text] if text else []


def members(value: object) -> list[object]:
    """The members of an array; a lone object counts as an array of one; anything else, none."""
    if _is_array(value):
        return list(value)
    if _is_mapping(value):
        return [value]
    return []


class Node:
    """A value inside a payload together with where it was found.

    Parsing walks many absent keys, so a node is small (slots) and its path is only spelled out when
    a message needs it.
    """

    __slots__ = ("_key", "_parent", "kind", "present", "value")

    def __init__(self, value: object, path: str, kind: str, present: bool = True) -> None:
        self.value = value
        self.kind = kind  # "alert", "event", "cloudevent", "manual": the prefix of every message
        self.present = present
        self._parent: Node | None = None
        self._key: str | int = path

    @classmethod
    def _under(cls, parent: Node, key: str | int, value: object, present: bool) -> Node:
        node = cls.__new__(cls)
        node.value = value
        node.kind = parent.kind
        node.present = present
        node._parent = parent
        node._key = key
        return node

    @property
    def path(self) -> str:
        parent, key = self._parent, self._key
        if parent is None:
            return str(key)
        above = parent.path
        if isinstance(key, int):
            return f"{above}[{key}]"
        return f"{above}.{key}" if above else key

    def __repr__(self) -> str:
        return f"Node(value={self.value!r}, path={self.path!r}, kind={self.kind!r}, present={self.present})"

    def child(self, key: str) -> Node:
        value = self.value
        if _is_mapping(value):
            try:
                found = value.get(key, _MISSING)
            except TypeError:  # a mapping with keys that do not compare to strings
                found = _MISSING
            if found is not _MISSING:
                return Node._under(self, key, found, True)
        return Node._under(self, key, None, False)

    def __getitem__(self, key: str) -> Node:
        return self.child(key)

    def error(self, problem: str) -> SignalError:
        return SignalError(f"{self.kind}: {self.path} {problem}")

    @property
    def absent(self) -> bool:
        return not self.present or self.value is None

    def mapping(self, *, required: bool = False) -> Mapping[str, object] | None:
        """The object here; a wrong type is an error for a required section, else read as absent."""
        if _is_mapping(self.value):
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
        if not self.absent and not _is_mapping(self.value):
            raise self.error(f"must be an object, not {kind_of(self.value)}")
        return self

    def text(self, *, required: bool = False) -> str | None:
        """A scalar as text; a one-element array stands for its element (seen in the wild)."""
        value = self.value
        if _is_array(value) and len(value) == 1:
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

    def text_of(self, key: str) -> str | None:
        """``self[key].text()``, without making a node."""
        return text_in(self.value, key)

    def required_text_of(self, key: str) -> str:
        """``self[key].required_text()``, without making a node for a plain non-empty string."""
        value = self.value
        if type(value) is dict:
            found = value.get(key)
            if type(found) is str:
                text = found.strip()
                if text:
                    return text
        return self.child(key).required_text()

    def required_text(self) -> str:
        text = self.text(required=True)
        if text is None:  # unreachable: text(required=True) raises instead
            raise self.error("is missing")
        return text

    def texts(self) -> list[str]:
        """A list of scalars as texts; a lone scalar counts as a list of one, other members are skipped."""
        return as_texts(self.value)

    def entries(self) -> Iterator[Node]:
        """The members of an array; a lone object counts as an array of one."""
        members = self.value
        if _is_array(members):
            for index, value in enumerate(members):
                yield Node._under(self, index, value, True)
        elif _is_mapping(members):
            yield self


def lookup_ci(mapping: Mapping[str, str], *names: str) -> list[str]:
    """Values whose key equals one of ``names`` ignoring case, in the mapping's order."""
    wanted = {n.lower() for n in names}
    return [v for k, v in mapping.items() if k.lower() in wanted]


def name_value_pairs(value: object) -> dict[str, str]:
    """``[{"name": .., "value": ..}]`` (or a plain object) as a mapping of texts; nameless items skipped."""
    if type(value) is list:
        return pairs_of_list(value)
    if _is_mapping(value) and not {"name", "value"} <= set(_str_keys(value)):
        return text_mapping(value)
    result: dict[str, str] = {}
    for entry in members(value):
        name = text_in(entry, "name")
        text = text_in(entry, "value")
        if name and text is not None:
            result[name] = text
    return result


def pairs_of_list(entries: list[object]) -> dict[str, str]:
    """``name_value_pairs`` of a list."""
    result: dict[str, str] = {}
    for entry in entries:
        if type(entry) is dict:  # the usual {"name": "...", "value": "..."}: text_in said once more here
            name, text = entry.get("name"), entry.get("value")
            if type(name) is str and type(text) is str:
                name, text = name.strip(), text.strip()
                if name and text:
                    result[name] = text
                continue
        name = text_in(entry, "name")
        text = text_in(entry, "value")
        if name and text is not None:
            result[name] = text
    return result


def text_mapping(value: object) -> dict[str, str]:
    """An object's members as texts (arrays and objects as JSON); nulls and odd keys skipped."""
    if not isinstance(value, Mapping):
        return {}
    result: dict[str, str] = {}
    for key, item in value.items():
        if type(item) is str and type(key) is str:  # the usual case: any_text of a string
            result[key] = item.strip()
            continue
        if not isinstance(key, str):
            continue
        text = any_text(item)
        if text is not None:
            result[key] = text
    return result


def _str_keys(mapping: Mapping[Any, object]) -> Iterator[str]:
    return (k for k in mapping if isinstance(k, str))
