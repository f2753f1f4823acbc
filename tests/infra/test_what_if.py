"""what-if-short-circuiting, checked here because no Bicep linter runs offline.

A module whose resource names, scopes, conditions or loop counts depend on a value known only during
the deployment (another module's output, a resource's runtime property) cannot be predicted by what-if,
and Bicep's `what-if-short-circuiting` rule flags it. main.bicep computes every such value from
parameters and variables instead; this test walks each module call and the module it calls.
"""

from __future__ import annotations

import re
from pathlib import Path

from . import bicep

MAIN = bicep.INFRA / "main.bicep"
RUNTIME = re.compile(r"\.outputs\.|\.properties\.|reference\(|list[A-Z]\w*\(")


def _body_and_guards(item: bicep.Declaration) -> tuple[bicep.Node | None, list[str]]:
    """The object of a resource or module declaration, and the text of its condition / loop source."""
    node = item.value
    guards: list[str] = []
    while node is not None and node.type in ("if_statement", "for_statement"):
        children = node.children
        if node.type == "if_statement":
            guards.append(bicep.text(next(c for c in children if c.type == "parenthesized_expression")))
        else:
            in_at = next(i for i, c in enumerate(children) if c.type == "in")
            guards.append(bicep.text(children[in_at + 1]))
        node = next((c for c in children if c.type in ("object", "if_statement")), None)
    return node, guards


def _identity_expressions(item: bicep.Declaration) -> list[str]:
    """Texts that decide the resource id: name, scope, parent, condition, loop source."""
    body, guards = _body_and_guards(item)
    found = list(guards)
    if body is not None:
        props = bicep.properties(body)
        found += [bicep.text(props[key]) for key in ("name", "scope", "parent") if key in props]
    return found


def _runtime_params(call: bicep.Declaration) -> set[str]:
    body, _ = _body_and_guards(call)
    assert body is not None
    params = bicep.properties(body).get("params")
    if params is None:
        return set()
    return {name for name, value in bicep.properties(params).items() if RUNTIME.search(bicep.text(value))}


def _violations(main_text: str, module_text_of: dict[str, str]) -> list[str]:
    found = []
    main = bicep.parse_text(main_text)
    for call in bicep.declarations(main, "module"):
        for expression in _identity_expressions(call):
            if RUNTIME.search(expression):
                found.append(f"module {call.name}: {expression}")
        runtime = _runtime_params(call)
        if not runtime:
            continue
        module = bicep.parse_text(module_text_of[call.type_string])
        for resource in bicep.declarations(module, "resource") + bicep.declarations(module, "module"):
            for expression in _identity_expressions(resource):
                used = {name for name in runtime if re.search(rf"\b{name}\b", expression)}
                found += [f"module {call.name} -> {resource.name}: {name} in {expression}" for name in used]
    return found


def _modules(main_path: Path) -> dict[str, str]:
    return {
        call.type_string: (main_path.parent / call.type_string).read_text()
        for call in bicep.declarations(bicep.parse(main_path), "module")
    }


def test_main_bicep_names_every_resource_from_values_known_at_the_start() -> None:
    assert _violations(MAIN.read_text(), _modules(MAIN)) == []


def test_the_check_flags_a_module_output_used_in_a_name() -> None:
    # The shape the linter's documentation flags, and the one main.bicep had before: an assignment named
    # with a principal id that only the identity module's output knows.
    modules = _modules(MAIN)
    broken = MAIN.read_text().replace(
        "principalKey: appIdentityKey", "principalKey: identity.outputs.appIdentityPrincipalId", 1
    )
    assert broken != MAIN.read_text()
    assert any("principalKey" in line for line in _violations(broken, modules))
    scoped = MAIN.read_text().replace(
        "scope: subscription(operatorRoleSubscriptionId)",
        "scope: subscription(identity.outputs.appIdentityId)",
        1,
    )
    assert any(line.startswith("module operatorRole:") for line in _violations(scoped, modules))
