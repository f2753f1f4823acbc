"""Every Bicep file parses: no compiler is available offline, so a syntax tree stands in for it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from . import bicep

FILES = bicep.bicep_files()
GA_API_VERSION = re.compile(r"^[A-Za-z0-9.]+/[A-Za-z0-9/]+@\d{4}-\d{2}-\d{2}$")
# Microsoft Graph resources are versioned by the Graph endpoint: v1.0 is the GA one (beta is not).
GRAPH_GA_VERSION = re.compile(r"^Microsoft\.Graph/[A-Za-z0-9/]+@v1\.0$")


def test_the_infra_folder_holds_the_templates() -> None:
    names = {path.relative_to(bicep.INFRA).as_posix() for path in FILES}
    assert {"main.bicep", "wiring.bicep", "modules/functionapp.bicep"} <= names


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.relative_to(bicep.INFRA).as_posix())
def test_bicep_file_has_no_syntax_error(path: Path) -> None:
    assert bicep.syntax_errors(bicep.parse(path)) == []


def test_only_a_registry_extension_statement_is_let_past_the_parser() -> None:
    good = "extension 'br:mcr.microsoft.com/bicep/extensions/microsoftgraph/v1.0:1.0.0'\nparam a string\n"
    assert bicep.syntax_errors(bicep.parse_text(good)) == []
    for bad in ("extension 'br:mcr.microsoft.com/x' {\n", "extension microsoftGraph junk junk\n"):
        assert bicep.syntax_errors(bicep.parse_text(bad + "param a string\n"))


def test_the_syntax_check_reports_a_broken_template() -> None:
    broken = "resource sa 'Microsoft.Storage/storageAccounts@2023-05-01' = {\n  name: 'x'\n"
    assert bicep.syntax_errors(bicep.parse_text(broken))


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.relative_to(bicep.INFRA).as_posix())
def test_resources_use_ga_api_versions(path: Path) -> None:
    """Preview API versions change without notice; the templates stay on GA ones."""
    for item in bicep.declarations(bicep.parse(path), "resource"):
        declared = item.type_string
        if "@" not in declared:  # a child declared inside its parent takes the parent's version
            continue
        ga = GA_API_VERSION.match(declared) or GRAPH_GA_VERSION.match(declared)
        assert ga, f"{path.name}: {item.name} uses {declared}"


SPREAD = re.compile(r"(^|[\[{(,:])\s*\.\.\.\s*[A-Za-z_(\[{]", re.MULTILINE)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.relative_to(bicep.INFRA).as_posix())
def test_no_spread_operator(path: Path) -> None:
    """The offline parsers (and older Bicep CLIs) reject the spread operator."""
    code = "\n".join(line.split("//")[0] for line in path.read_text().splitlines())
    assert not SPREAD.search(code)


def test_the_spread_check_sees_a_spread() -> None:
    assert SPREAD.search("var c = {\n  ...a\n  y: 2\n}") and SPREAD.search("var d = [...a, 1]")


def test_module_paths_exist() -> None:
    for path in FILES:
        for module in bicep.declarations(bicep.parse(path), "module"):
            target = path.parent / module.type_string
            assert target.is_file(), f"{path.name}: module {module.name} points at missing {target}"


# A linter rule at error fails `bicep build`, and so `azd provision`, before anything deploys. No Bicep
# compiler runs here, so a rule may stand at error only where a test of this suite proves the templates
# comply with it: name the test next to the rule.
RULES_PROVEN_BY_TESTS: dict[str, str] = {}


def test_bicepconfig_turns_the_linter_on_without_betting_on_unchecked_rules() -> None:
    config = json.loads((bicep.INFRA / "bicepconfig.json").read_text())
    core = config["analyzers"]["core"]
    assert core["enabled"] is True
    levels = {name: rule["level"] for name, rule in core["rules"].items()}
    at_error = {name for name, level in levels.items() if level == "error"}
    assert sorted(at_error - set(RULES_PROVEN_BY_TESTS)) == []
    # The rules that matter most still speak up, as warnings.
    for rule in (
        "no-unused-params",
        "no-hardcoded-env-urls",
        "outputs-should-not-contain-secrets",
        "use-secure-value-for-secure-inputs",
        "secure-parameter-default",
        "what-if-short-circuiting",
    ):
        assert levels.get(rule) in ("warning", "error"), rule
