"""Catalog edges: boolean spellings, how a hostile value is quoted, what ``remediate catalog`` shows."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from autoremediation.catalog import Parameter, ParameterError
from autoremediation.catalog_load import catalog_problems, load_catalog
from autoremediation.errors import UnknownRemediation
from tests.helpers.catalogs import base_remediation, make_catalog

FLAG = Parameter(name="force", type="boolean", description="d")
NAME = Parameter(name="service", type="string", description="d", pattern="[a-z]+")


@pytest.mark.parametrize(
    ("given", "text"),
    [(True, "true"), (False, "false"), (" TRUE ", "true"), ("1", "true"), ("False", "false"), ("0", "false")],
)
def test_boolean_parameters_accept_the_usual_spellings(given: object, text: str) -> None:
    assert FLAG.validate(given) == text


def test_a_bad_boolean_names_the_parameter_and_the_value() -> None:
    with pytest.raises(ParameterError) as caught:
        FLAG.validate("yes please")
    assert caught.value.parameter == "force"
    assert str(caught.value) == "parameter 'force': 'yes please' is not a boolean"


def test_a_value_of_80_characters_is_quoted_whole() -> None:
    value = "A" * 80
    with pytest.raises(ParameterError) as caught:
        NAME.validate(value)
    assert str(caught.value) == f"parameter 'service': '{value}' does not match [a-z]+"


def test_a_longer_value_is_cut_to_80_characters_in_the_message() -> None:
    with pytest.raises(ParameterError) as caught:
        NAME.validate("B" * 81)
    assert str(caught.value) == f"parameter 'service': '{'B' * 77}...' does not match [a-z]+"


def test_the_catalog_summary_shows_every_declared_facet(tmp_path: Path) -> None:
    data = base_remediation(readOnly=True, timeoutSeconds=300, cooldownMinutes=15)
    data["parameters"] = {
        "mode": {"type": "string", "description": "how", "enum": ["quick", "deep"], "required": True},
        "token": {"type": "string", "description": "upload SAS", "pattern": "^https://.+$", "secret": True},
        "mountPoint": {
            "type": "string",
            "description": "mount",
            "pattern": "^/.*$",
            "default": "/",
            "sources": ["alert", "operator"],
        },
    }
    data["verification"] = {"successStatuses": ["fixed"]}
    summary = load_catalog(make_catalog(tmp_path / "c", data)).get("free-disk-space").summary()
    assert summary["readOnly"] is True
    assert (summary["timeoutSeconds"], summary["cooldownMinutes"]) == (300, 15)
    operator_only = {"sources": ["operator"]}  # what a parameter that does not say gets
    assert summary["parameters"] == {
        "mode": {"type": "string", "description": "how", "enum": ["quick", "deep"], "required": True}
        | operator_only,
        "token": {"type": "string", "description": "upload SAS", "pattern": "^https://.+$", "secret": True}
        | operator_only,
        "mountPoint": {
            "type": "string",
            "description": "mount",
            "pattern": "^/.*$",
            "default": "/",
            "sources": ["alert", "operator"],
        },
    }


CODE = Parameter(name="code", type="string", description="d", pattern="[A-Z]+", max_length=4)
PORT = Parameter(name="port", type="integer", description="d", minimum=1, maximum=65535, enum=(22, 3389))


def test_max_length_allows_exactly_the_limit() -> None:
    assert CODE.validate("ABCD") == "ABCD"
    with pytest.raises(ParameterError) as caught:
        CODE.validate("ABCDE")
    assert (caught.value.parameter, str(caught.value)) == (
        "code",
        "parameter 'code': is longer than 4 characters",
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (True, "must be an integer, not a boolean"),
        ("22x", "'22x' is not an integer"),
        (0, "0 is below the minimum 1"),
        (70000, "70000 is above the maximum 65535"),
        (80, "'80' is not one of 22, 3389"),
    ],
)
def test_every_integer_refusal_names_the_parameter(value: object, message: str) -> None:
    with pytest.raises(ParameterError) as caught:
        PORT.validate(value)
    assert caught.value.parameter == "port"
    assert str(caught.value) == f"parameter 'port': {message}"


def test_an_unknown_remediation_lists_the_catalog(tmp_path: Path) -> None:
    catalog = load_catalog(make_catalog(tmp_path / "c"))
    with pytest.raises(UnknownRemediation) as caught:
        catalog.get("reboot")
    assert str(caught.value) == (
        "unknown remediation 'reboot' (the catalog has: free-disk-space, restore-management-access)"
    )


def test_an_optional_parameter_without_value_does_not_hide_the_next_ones_defaults(tmp_path: Path) -> None:
    data = base_remediation()
    data["parameters"] = {
        "service": {"type": "string", "description": "unit", "pattern": "^[a-z]+$"},
        "targetFreePercent": {"type": "integer", "description": "t", "default": 20},
    }
    data["verification"] = {"successStatuses": ["fixed"]}
    remediation = load_catalog(make_catalog(tmp_path / "c", data)).get("free-disk-space")
    assert remediation.resolve_parameters({}) == {"targetFreePercent": "20"}


def test_catalog_declarations_and_their_defaults_reach_the_remediation(tmp_path: Path) -> None:
    data = base_remediation(title="Free space", description="Reclaims space.")
    data["parameters"]["mountPoint"]["maxLength"] = 64
    remediation = load_catalog(make_catalog(tmp_path / "c", data)).get("free-disk-space")
    assert (remediation.title, remediation.description) == ("Free space", "Reclaims space.")
    assert (remediation.approval, remediation.read_only, remediation.approval_required) == (
        "auto",
        False,
        False,
    )
    with pytest.raises(ParameterError, match="is longer than 64 characters"):
        remediation.resolve_parameters({"mountPoint": "/" + "a" * 64})


def test_several_schema_problems_are_listed_in_field_order(tmp_path: Path) -> None:
    root = make_catalog(tmp_path / "c", base_remediation(risk="extreme", cooldownMinutes=-1))
    problems, remediations = catalog_problems(root)
    assert remediations == {}
    assert [p.split(": ")[1] for p in problems] == ["cooldownMinutes", "risk"]


def test_an_unreadable_definition_is_named(tmp_path: Path) -> None:
    root = make_catalog(tmp_path / "c")
    (root / "broken" / "remediation.yaml").mkdir(parents=True)
    problems, remediations = catalog_problems(root)
    assert problems == [f"{root / 'broken' / 'remediation.yaml'}: cannot be read: Is a directory"]
    assert set(remediations) == {"free-disk-space", "restore-management-access"}


def test_a_broken_schema_is_named(tmp_path: Path) -> None:
    root = tmp_path / "c"
    root.mkdir()
    (root / "remediation.schema.json").write_text("{not json")
    problems, remediations = catalog_problems(root)
    assert remediations == {}
    assert len(problems) == 1
    assert problems[0].startswith(f"{root.resolve() / 'remediation.schema.json'}: cannot load the schema: ")


def test_an_empty_catalog_folder_says_it_has_no_remediation(tmp_path: Path) -> None:
    root = make_catalog(tmp_path / "c")
    for folder in ("free-disk-space", "restore-management-access"):
        shutil.rmtree(root / folder)
    assert catalog_problems(root) == (
        [f"{root}: the catalog has no remediation (no */remediation.yaml)"],
        {},
    )
