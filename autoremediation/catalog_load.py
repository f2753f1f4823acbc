"""Loading the remediation catalog: ``remediations/<id>/remediation.yaml`` validated by JSON Schema.

Every loader error names the file and the field, so an operator can fix a broken catalog without reading
this code. A loaded catalog is cached per folder.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator

from .catalog import (
    ALERT,
    DEFAULT_SOURCES,
    PRELUDE_FILES,
    PRELUDE_FOLDER,
    SCHEMA_FILE,
    Catalog,
    Parameter,
    ParameterError,
    Remediation,
    join_prelude,
)
from .errors import CatalogError


def _field_path(error: Any) -> str:
    parts = [str(p) for p in error.absolute_path]
    return ".".join(parts) if parts else "(top level)"


def schema_message(error: Any) -> str:
    """A schema error in words that say what to change (jsonschema's own text, when it already does)."""
    required = {
        frozenset(item.get("required", ()))
        for item in error.schema.get("anyOf", ())
        if isinstance(item, dict)
    }
    if error.validator == "anyOf" and required == {frozenset({"pattern"}), frozenset({"enum"})}:
        return (
            "a string parameter needs a pattern (a regular expression every value must match, e.g. "
            "'^[a-z0-9-]{1,64}$') or an enum (the list of values it may take): the value reaches a script "
            "that runs as root"
        )
    if error.validator in ("anyOf", "oneOf") and error.context:
        best = min(error.context, key=lambda e: len(list(e.path)))
        return f"{best.message} (one of the allowed forms)"
    if error.validator == "additionalProperties":
        allowed = ", ".join(sorted(error.schema.get("properties", {})))
        return f"{error.message}; allowed here: {allowed}" if allowed else error.message
    if error.validator == "pattern":
        return f"{error.instance!r} does not have the expected form (pattern {error.validator_value})"
    return str(error.message)


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise CatalogError(f"{path}: not valid YAML: {error}") from None
    except OSError as error:
        raise CatalogError(f"{path}: cannot be read: {error.strerror}") from None


@lru_cache(maxsize=4)
def _schema_validator(folder: Path) -> Draft202012Validator:
    path = folder / SCHEMA_FILE
    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise CatalogError(f"{path}: cannot load the schema: {error}") from None
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def read_preludes(folder: Path) -> dict[str, str]:
    """The catalog's shared preludes by OS (only those that exist)."""
    found = {}
    for os_type, name in PRELUDE_FILES.items():
        file = folder / PRELUDE_FOLDER / name
        if file.is_file():
            found[os_type] = file.read_text(encoding="utf-8")
    return found


def _remediation_problems(
    folder: Path, path: Path, data: Any, texts: dict[str, str], preludes: Mapping[str, str]
) -> list[str]:
    """What is wrong with one remediation; ``texts`` gets each script as checked (its prelude joined in),
    the text the remediation keeps, so no later read of the file is sent unchecked."""
    problems = [
        f"{path}: {_field_path(error)}: {schema_message(error)}"
        for error in sorted(_schema_validator(folder).iter_errors(data), key=lambda e: list(e.path))
    ]
    if problems:
        return problems
    if data["id"] != path.parent.name:
        problems.append(f"{path}: id: {data['id']!r} must equal its folder name {path.parent.name!r}")
    for os_type, entry in data["os"].items():
        script = path.parent / entry["script"]
        if not script.is_file():
            problems.append(f"{path}: os.{os_type}.script: {entry['script']} does not exist")
            continue
        try:
            texts[os_type] = join_prelude(script.read_text(encoding="utf-8"), preludes.get(os_type))
        except CatalogError as error:
            problems.append(f"{path}: os.{os_type}.script: {entry['script']}: {error}")
    if not (path.parent / "README.md").is_file():
        problems.append(f"{path.parent / 'README.md'}: missing: every remediation documents itself")
    for name, spec in (data.get("parameters") or {}).items():
        where = f"{path}: parameters.{name}"
        if "pattern" in spec:
            try:
                re.compile(spec["pattern"])
            except re.error as error:
                problems.append(f"{where}.pattern: not a valid regular expression: {error}")
                continue
        try:
            parameter = _parameter(name, spec)
            defaults = [parameter.default, *parameter.os_default.values()]
            for default in defaults:
                if default is not None:
                    parameter.validate(default)
        except ParameterError as error:
            problems.append(f"{where}.default: {error}")
            continue
        if parameter.secret and ALERT in parameter.sources:
            problems.append(f"{where}.sources: a secret parameter never comes from an alert")
        if not parameter.sources and parameter.required and not defaults_set(parameter):
            problems.append(f"{where}.sources: nobody may set it, it is required and it has no default")
    for check in data["verification"].get("expect", []):
        if "parameter" in check and check["parameter"] not in (data.get("parameters") or {}):
            problems.append(f"{path}: verification.expect: parameter {check['parameter']!r} is not declared")
    return problems


def defaults_set(parameter: Parameter) -> bool:
    return parameter.default is not None or any(v is not None for v in parameter.os_default.values())


def _parameter(name: str, spec: Mapping[str, Any]) -> Parameter:
    return Parameter(
        name=name,
        type=spec["type"],
        description=spec["description"],
        pattern=spec.get("pattern"),
        enum=tuple(spec["enum"]) if "enum" in spec else None,
        minimum=spec.get("minimum"),
        maximum=spec.get("maximum"),
        max_length=spec.get("maxLength"),
        default=spec.get("default"),
        required=bool(spec.get("required", False)),
        secret=bool(spec.get("secret", False)),
        os_default=dict(spec.get("osDefault") or {}),
        sources=tuple(spec.get("sources", DEFAULT_SOURCES)),
    )


def _remediation(
    path: Path, data: Mapping[str, Any], preludes: Mapping[str, str], texts: Mapping[str, str]
) -> Remediation:
    return Remediation(
        id=data["id"],
        title=data["title"],
        description=data["description"],
        conditions=tuple(data["conditions"]),
        risk=data["risk"],
        approval=data.get("approval", "auto"),
        read_only=bool(data.get("readOnly", False)),
        scripts={os_type: entry["script"] for os_type, entry in data["os"].items()},
        parameters={name: _parameter(name, spec) for name, spec in (data.get("parameters") or {}).items()},
        control_plane=tuple(data.get("controlPlane", ())),
        timeout_seconds=int(data["timeoutSeconds"]),
        cooldown_minutes=int(data["cooldownMinutes"]),
        verification=dict(data["verification"]),
        folder=path.parent,
        preludes=dict(preludes),
        upload_to=data.get("uploadTo"),
        script_texts=dict(texts),
    )


def catalog_problems(folder: str | Path) -> tuple[list[str], dict[str, Remediation]]:
    """Every problem of the catalog in ``folder`` (empty when valid) and the remediations that loaded."""
    root = Path(folder)
    if not (root / SCHEMA_FILE).is_file():
        return [f"{root}: not a catalog folder (no {SCHEMA_FILE})"], {}
    try:
        _schema_validator(root.resolve())
    except CatalogError as error:
        return [str(error)], {}
    problems: list[str] = []
    remediations: dict[str, Remediation] = {}
    preludes = read_preludes(root.resolve())
    for path in sorted(root.glob("*/remediation.yaml")):
        try:
            data = _read_yaml(path)
        except CatalogError as error:
            problems.append(str(error))
            continue
        texts: dict[str, str] = {}
        found = _remediation_problems(root.resolve(), path, data, texts, preludes)
        if found:
            problems.extend(found)
            continue
        remediations[data["id"]] = _remediation(path, data, preludes, texts)
    if not remediations and not problems:
        problems.append(f"{root}: the catalog has no remediation (no */remediation.yaml)")
    return problems, remediations


@lru_cache(maxsize=8)
def _load(folder: Path) -> Catalog:
    problems, remediations = catalog_problems(folder)
    if problems:
        raise CatalogError("; ".join(problems))
    return Catalog(folder=folder, remediations=remediations)


def load_catalog(folder: str | Path) -> Catalog:
    """The validated catalog in ``folder`` (cached); CatalogError lists every problem."""
    return _load(Path(folder).resolve())
