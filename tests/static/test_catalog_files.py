"""Every remediation folder is complete, valid against the schema, and its scripts match its yaml."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from autoremediation.catalog import UPLOAD_PARAMETERS, env_name, script_parameter_name
from autoremediation.catalog_load import load_catalog

from .conftest import FOLDERS, REMEDIATIONS

SCHEMA = json.loads((REMEDIATIONS / "remediation.schema.json").read_text())
VALIDATOR = Draft202012Validator(SCHEMA, format_checker=Draft202012Validator.FORMAT_CHECKER)
README_SECTIONS = ("What it does", "What it never does", "Risks", "How it verifies")


def load(folder: Path) -> dict[str, Any]:
    data = yaml.safe_load((folder / "remediation.yaml").read_text())
    assert isinstance(data, dict)
    return data


def ids(folder: Path) -> str:
    return folder.name


def test_the_catalog_has_the_remediations_operators_asked_for() -> None:
    names = {folder.name for folder in FOLDERS}
    assert {
        "free-disk-space",
        "restore-management-access",
        "restart-service",
        "fix-time-sync",
        "collect-diagnostics",
    } <= names


def test_the_engine_loads_the_whole_catalog() -> None:
    catalog = load_catalog(REMEDIATIONS)
    assert {folder.name for folder in FOLDERS} == set(catalog.remediations)


@pytest.mark.parametrize("folder", FOLDERS, ids=ids)
def test_yaml_is_valid_against_the_schema(folder: Path) -> None:
    errors = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in VALIDATOR.iter_errors(load(folder))]
    assert errors == []


@pytest.mark.parametrize("folder", FOLDERS, ids=ids)
def test_id_matches_the_folder_and_named_scripts_exist(folder: Path) -> None:
    data = load(folder)
    assert data["id"] == folder.name
    for os_type, entry in data["os"].items():
        script = folder / entry["script"]
        assert script.is_file(), f"{folder.name}: {os_type} script {entry['script']} is missing"
        assert script.suffix == (".sh" if os_type == "linux" else ".ps1")


@pytest.mark.parametrize("folder", FOLDERS, ids=ids)
def test_readme_has_the_required_sections(folder: Path) -> None:
    readme = folder / "README.md"
    assert readme.is_file()
    headings = re.findall(r"^## (.+?)\s*$", readme.read_text(), flags=re.MULTILINE)
    for section in README_SECTIONS:
        assert section in headings, f"{readme}: missing section '## {section}'"


@pytest.mark.parametrize("folder", FOLDERS, ids=ids)
def test_scripts_read_exactly_the_declared_parameters(folder: Path) -> None:
    data = load(folder)
    # A remediation that uploads gets its blob URL and SAS from the runner (never from a request).
    uploads = list(UPLOAD_PARAMETERS) if data.get("uploadTo") else []
    declared = [*uploads, *data.get("parameters", {}), "dryRun"]
    if "linux" in data["os"]:
        text = (folder / data["os"]["linux"]["script"]).read_text()
        for name in declared:
            assert f"${{{env_name(name)}-" in text, f"{folder.name}/linux.sh does not read {env_name(name)}"
    if "windows" in data["os"]:
        text = (folder / data["os"]["windows"]["script"]).read_text()
        block = re.search(r"param\((.*?)\n\)", text, flags=re.DOTALL)
        assert block, f"{folder.name}/windows.ps1 has no param() block"
        found = re.findall(r"\[string\]\$(\w+)", block.group(1))
        assert found == [script_parameter_name(n) for n in declared]


@pytest.mark.parametrize("folder", FOLDERS, ids=ids)
def test_verification_fields_are_printed_by_the_scripts(folder: Path) -> None:
    data = load(folder)
    for expectation in data["verification"].get("expect", []):
        leaf = expectation["field"].split(".")[-1]
        for entry in data["os"].values():
            text = (folder / entry["script"]).read_text()
            assert leaf in text, f"{folder.name}/{entry['script']} never reports {expectation['field']}"
