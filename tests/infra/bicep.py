"""Read Bicep files the way the infra tests need: a syntax tree and a few typed views of it.

tree-sitter-bicep gives a concrete syntax tree without a compiler. Its lexer has one known flaw: ``//``
right after an interpolation (``'${x}//'``) starts a comment, so the templates avoid that spelling and
``syntax_errors`` reports it if it comes back. Its grammar also predates the ``extension`` statement
(Microsoft Graph resources): a line ``extension 'br:...'`` is checked against EXTENSION here and blanked
(same length, so positions hold) before parsing; any other use of the keyword stays a syntax error.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import tree_sitter_bicep
from tree_sitter import Language, Node, Parser, Tree

REPO_ROOT = Path(__file__).resolve().parents[2]
INFRA = REPO_ROOT / "infra"


@cache
def _parser() -> Parser:
    return Parser(Language(tree_sitter_bicep.language()))


EXTENSION = re.compile(
    r"^extension '(br:mcr\.microsoft\.com/bicep/extensions/[a-z0-9./-]+:[0-9][0-9A-Za-z.-]*)'[ \t]*$", re.M
)


def extensions(text: str) -> list[str]:
    """The registry references of a template's ``extension`` statements."""
    return EXTENSION.findall(text)


def parse_text(text: str) -> Tree:
    masked = EXTENSION.sub(lambda match: " " * len(match.group(0)), text)
    return _parser().parse(masked.encode())


@cache
def parse(path: Path) -> Tree:
    return parse_text(path.read_text(encoding="utf-8"))


def bicep_files() -> list[Path]:
    return sorted(INFRA.rglob("*.bicep"))


def walk(node: Node) -> Iterator[Node]:
    yield node
    for child in node.children:
        yield from walk(child)


def syntax_errors(tree: Tree) -> list[str]:
    """Each ERROR or MISSING node as 'line:column: text'."""
    found = []
    for node in walk(tree.root_node):
        if node.type == "ERROR" or node.is_missing:
            row, column = node.start_point
            text = (node.text or b"").decode(errors="replace")[:60]
            found.append(f"{row + 1}:{column + 1}: {node.type} {text!r}")
    return found


def text(node: Node) -> str:
    return (node.text or b"").decode()


def literal(node: Node) -> str | None:
    """The value of a string without interpolation, else None."""
    if node.type != "string":
        return None
    parts = [child for child in node.children if child.type not in ("'", "'''")]
    if any(child.type != "string_content" for child in parts):
        return None
    return "".join(text(child) for child in parts)


def string_contents(tree: Tree) -> Iterator[str]:
    """The literal text pieces of every string (interpolations left out)."""
    for node in walk(tree.root_node):
        if node.type == "string_content":
            yield text(node)


def _key(prop: Node) -> str:
    key = prop.children[0]
    value = literal(key) if key.type == "string" else text(key)
    return value or ""


def _value(prop: Node) -> Node:
    return prop.children[-1]


def properties(node: Node) -> dict[str, Node]:
    """The properties of an object node: key -> value node."""
    return {_key(child): _value(child) for child in node.children if child.type == "object_property"}


def object_properties(tree: Tree, key: str) -> Iterator[Node]:
    """Value nodes of every object property named ``key``, at any depth."""
    for node in walk(tree.root_node):
        if node.type == "object_property" and _key(node) == key:
            yield _value(node)


def array_literals(node: Node) -> list[str | None]:
    """The items of an array node, as literal strings (None for anything else)."""
    return [literal(child) for child in node.children if child.type not in ("[", "]", ",")]


@dataclass(frozen=True)
class Declaration:
    kind: str  # param, var, resource, module, output
    name: str
    node: Node

    @property
    def value(self) -> Node:
        """The node after '=' (the body of a resource or module, the value of a var or param default)."""
        children = self.node.children
        for index, child in enumerate(children):
            if child.type == "=":
                return children[index + 1]
        return children[-1]

    @property
    def type_string(self) -> str:
        """A resource's 'Namespace/type@version' (empty for other declarations)."""
        for child in self.node.children:
            if child.type == "string":
                return literal(child) or ""
        return ""

    @property
    def has_default(self) -> bool:
        return any(child.type == "=" for child in self.node.children)


_DECLARATIONS = {
    "parameter_declaration": "param",
    "variable_declaration": "var",
    "resource_declaration": "resource",
    "module_declaration": "module",
    "output_declaration": "output",
}


def declarations(tree: Tree, kind: str | None = None) -> list[Declaration]:
    found = []
    for node in walk(tree.root_node):
        if node.type in _DECLARATIONS and (kind is None or _DECLARATIONS[node.type] == kind):
            name = next(child for child in node.children if child.type == "identifier")
            found.append(Declaration(_DECLARATIONS[node.type], text(name), node))
    return found


def declaration(tree: Tree, kind: str, name: str) -> Declaration:
    for item in declarations(tree, kind):
        if item.name == name:
            return item
    raise KeyError(f"no {kind} {name!r}")


def resources(kind_prefix: str) -> list[tuple[Path, Declaration]]:
    """Every resource declaration whose type starts with ``kind_prefix`` (case-insensitive), all files."""
    found = []
    for path in bicep_files():
        for item in declarations(parse(path), "resource"):
            if item.type_string.lower().startswith(kind_prefix.lower()):
                found.append((path, item))
    return found
