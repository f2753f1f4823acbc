"""Catalog edges: boolean spellings, how a hostile value is quoted, what ``remediate catalog`` shows."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoremediation.catalog import Parameter, ParameterError, load_catalog
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
        "mountPoint": {"type": "string", "description": "mount", "pattern": "^/.*$", "default": "/"},
    }
    data["verification"] = {"successStatuses": ["fixed"]}
    summary = load_catalog(make_catalog(tmp_path / "c", data)).get("free-disk-space").summary()
    assert summary["readOnly"] is True
    assert (summary["timeoutSeconds"], summary["cooldownMinutes"]) == (300, 15)
    assert summary["parameters"] == {
        "mode": {"type": "string", "description": "how", "enum": ["quick", "deep"], "required": True},
        "token": {"type": "string", "description": "upload SAS", "pattern": "^https://.+$", "secret": True},
        "mountPoint": {"type": "string", "description": "mount", "pattern": "^/.*$", "default": "/"},
    }
