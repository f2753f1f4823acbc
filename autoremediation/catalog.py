"""The remediation catalog: what a loaded catalog is (its remediations, their parameters and scripts).

A catalog is immutable once loaded and cached per folder; ``catalog_load`` reads and validates
``remediations/<id>/remediation.yaml`` by JSON Schema into these records.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from .errors import CatalogError, InvalidInput, UnknownRemediation

SCHEMA_FILE = "remediation.schema.json"
ROUTES_FILE = "routes.yaml"
OS_TYPES = ("linux", "windows")
# One prelude per shell (result line, fail, traps, strict mode): <catalog>/_prelude/<file>, joined into
# every script of that OS where the script has the marker line, so a fix to it lands everywhere.
PRELUDE_FOLDER = "_prelude"
PRELUDE_FILES = {"linux": "linux.sh", "windows": "windows.ps1"}
PRELUDE_MARKER = "# @prelude"
# What a remediation with ``uploadTo`` receives from the runner at dispatch, never from a request:
# (the blob URL without SAS, the SAS base64-encoded so no cmd.exe metacharacter reaches a parameter).
UPLOAD_PARAMETERS = ("uploadUrl", "uploadToken")
SECRET_SHOWN = "(secret)"  # noqa: S105 - what is shown in place of a secret, not one
# Who may set a parameter's value (remediation.yaml ``sources``); the catalog default fills the rest.
ALERT = "alert"  # an inbound alert or event: a claim anyone who can write an alert rule controls
OPERATOR = "operator"  # an authenticated operator's manual request
DEFAULT_SOURCES = (OPERATOR,)  # a parameter that does not say: never from an alert


class ParameterError(InvalidInput):
    """A parameter value that fails its declaration. ``parameter`` names it."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"parameter {parameter!r}: {message}")
        self.parameter = parameter


def env_name(parameter: str) -> str:
    """How a Linux script sees a parameter: ``mountPoint`` -> ``MOUNT_POINT``."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", parameter).upper()


def script_parameter_name(parameter: str) -> str:
    """How a Windows script sees a parameter: ``mountPoint`` -> ``MountPoint``."""
    return parameter[:1].upper() + parameter[1:]


@dataclass(frozen=True)
class Parameter:
    name: str
    type: str
    description: str
    pattern: str | None = None
    enum: tuple[Any, ...] | None = None
    minimum: int | None = None
    maximum: int | None = None
    max_length: int | None = None
    default: Any = None
    required: bool = False
    secret: bool = False
    os_default: Mapping[str, Any] = field(default_factory=dict)
    sources: tuple[str, ...] = DEFAULT_SOURCES

    # Worked out on first use and kept (a catalog is loaded once): the pattern compiled, the enum as texts.
    @cached_property
    def _pattern(self) -> re.Pattern[str]:
        return re.compile(self.pattern or "")

    @cached_property
    def _enum_texts(self) -> frozenset[str]:
        return frozenset(str(option) for option in self.enum or ())

    def default_for(self, os_type: str | None) -> Any:
        if os_type and os_type in self.os_default:
            return self.os_default[os_type]
        return self.default

    def _shown(self, text: str) -> str:
        """The value for an error message; a secret's never (the message lands in the job's record,
        telemetry and notifications)."""
        return SECRET_SHOWN if self.secret else _shown(text)

    def validate(self, value: Any) -> str:
        """The value as the script will receive it (always text), or ParameterError."""
        if isinstance(value, (dict, list, tuple, set)) or value is None:
            raise ParameterError(self.name, f"must be a {self.type}, not {type(value).__name__}")
        if self.type == "boolean":
            return self._boolean(value)
        if self.type == "integer":
            text = self._integer(value)
        else:
            text = str(value)
            if self.max_length is not None and len(text) > self.max_length:
                raise ParameterError(self.name, f"is longer than {self.max_length} characters")
            # fullmatch: a pattern without anchors must still describe the whole value.
            if self.pattern is not None and not self._pattern.fullmatch(text):
                # A long pattern helps nobody in an error message: say what the value should be instead.
                hint = self.pattern if len(self.pattern) <= 80 else self.description.strip()
                raise ParameterError(self.name, f"{self._shown(text)} does not match {hint}")
        if self.enum is not None and text not in self._enum_texts:
            allowed = ", ".join(str(option) for option in self.enum)
            raise ParameterError(self.name, f"{self._shown(text)} is not one of {allowed}")
        return text

    def _boolean(self, value: Any) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        text = str(value).strip().lower()
        if text in ("true", "1"):
            return "true"
        if text in ("false", "0"):
            return "false"
        raise ParameterError(self.name, f"{self._shown(str(value))} is not a boolean")

    def _integer(self, value: Any) -> str:
        if isinstance(value, bool):
            raise ParameterError(self.name, "must be an integer, not a boolean")
        text = str(value).strip()
        if not _INTEGER.fullmatch(text):
            raise ParameterError(self.name, f"{self._shown(str(value))} is not an integer")
        number = int(text)
        if self.minimum is not None and number < self.minimum:
            raise ParameterError(self.name, f"{number} is below the minimum {self.minimum}")
        if self.maximum is not None and number > self.maximum:
            raise ParameterError(self.name, f"{number} is above the maximum {self.maximum}")
        return str(number)


_INTEGER = re.compile(r"-?[0-9]{1,12}")
# Parameter sets a remediation remembers having resolved (see Remediation.resolve_parameters).
_RESOLVED_REMEMBERED = 256


def _shown(text: str) -> str:
    """A value quoted for an error message, cut short so a hostile value cannot flood a log."""
    return repr(text if len(text) <= 80 else text[:77] + "...")


@dataclass(frozen=True)
class Remediation:
    id: str
    title: str
    description: str
    conditions: tuple[str, ...]
    risk: str
    approval: str
    read_only: bool
    scripts: Mapping[str, str]  # os -> script file name
    parameters: Mapping[str, Parameter]
    control_plane: tuple[str, ...]
    timeout_seconds: int
    cooldown_minutes: int
    verification: Mapping[str, Any]
    folder: Path
    # os -> the shared prelude joined into that OS's script (none for catalogs without _prelude/).
    preludes: Mapping[str, str] = field(default_factory=dict)
    # "diagnostics": the runner gives the script a blob URL and a short-lived SAS (UPLOAD_PARAMETERS).
    upload_to: str | None = None
    # os -> the script's text with its prelude joined in, as the load read and checked it.
    script_texts: Mapping[str, str] = field(default_factory=dict, repr=False)

    @property
    def approval_required(self) -> bool:
        return self.approval == "required" or self.risk == "high"

    @property
    def os_types(self) -> tuple[str, ...]:
        return tuple(os for os in OS_TYPES if os in self.scripts)

    def script(self, os_type: str) -> str:
        """The script text for an OS (its prelude joined in); InvalidInput when the remediation has none.

        Read when the catalog is loaded, where it is checked, and kept: every dispatch of a loaded catalog
        sends the script the load checked, and one edited on disk later takes effect with the catalog
        loaded again (a new deployment), not halfway through a campaign.
        """
        if os_type not in self.scripts:
            raise InvalidInput(f"remediation {self.id!r} has no script for {os_type}")
        text = self.script_texts.get(os_type)
        if text is None:  # a Remediation made by hand, not by the loader
            text = join_prelude(
                (self.folder / self.scripts[os_type]).read_text(encoding="utf-8"), self.preludes.get(os_type)
            )
        return text

    def resolve_parameters(self, given: Mapping[str, Any], os_type: str | None = None) -> dict[str, str]:
        """Validated parameters with defaults filled in; ParameterError names the first bad one."""
        # An alert storm asks again and again for the same few parameter sets (one mount point on many
        # VMs): a set that resolved is answered from memory (a copy: the caller may change its dict).
        try:
            key = (os_type, tuple((name, type(value), value) for name, value in given.items()))  # 10 != 10.0
            known = self._resolved.get(key)
        except TypeError:  # a value that cannot be a key (a list, say): worked out every time
            return self._resolve(given, os_type)
        if known is None:
            known = self._resolve(given, os_type)
            if len(self._resolved) >= _RESOLVED_REMEMBERED:
                self._resolved.clear()
            self._resolved[key] = known
        return dict(known)

    @cached_property
    def _resolved(self) -> dict[Any, dict[str, str]]:
        return {}

    @cached_property
    def planned(self) -> dict[Any, Any]:
        """The static decisions made on this remediation, by what they were made of (see
        ``policy.plan_decision``): an alert storm asks again and again for the same few."""
        return {}

    def _resolve(self, given: Mapping[str, Any], os_type: str | None) -> dict[str, str]:
        if any(name not in self.parameters for name in given):
            unknown = sorted(set(given) - set(self.parameters))
            raise ParameterError(unknown[0], f"is not a parameter of {self.id}")
        resolved: dict[str, str] = {}
        for name, parameter in self.parameters.items():
            value = given.get(name)
            if value is None or value == "":
                value = parameter.default_for(os_type)
            if value is None:
                if parameter.required:
                    raise ParameterError(name, "is required")
                continue
            resolved[name] = parameter.validate(value)
        return resolved

    def source_problem(self, given: Mapping[str, Any], origins: Mapping[str, str]) -> ParameterError | None:
        """The first value in ``given`` set by a source its parameter does not allow, as an error.

        ``origins`` says where each value came from (``alert``, ``operator``, or a trusted origin such as
        the deployment's own route file or a detector's reading of Azure, which any parameter accepts).
        Refusing, rather than quietly using the default, keeps a forged or misconfigured alert visible and
        never runs a remediation in a form nobody asked for.
        """
        for name in sorted(given):
            origin = origins.get(name)
            parameter = self.parameters.get(name)
            if parameter is None or origin not in (ALERT, OPERATOR) or origin in parameter.sources:
                continue
            allowed = " or ".join(parameter.sources) if parameter.sources else "nobody"
            fallback = parameter.default_for(None)
            after = f"the catalog default ({fallback})" if fallback is not None else "the catalog"
            return ParameterError(
                name, f"may not come from an {origin} (set by {allowed}; otherwise {after} applies)"
            )
        return None

    def run_parameters(
        self, values: Mapping[str, str], os_type: str, *, dry_run: bool
    ) -> tuple[dict[str, str], dict[str, str]]:
        """(plain, protected) Run Command parameters named the way the OS's script reads them."""
        rename = env_name if os_type == "linux" else script_parameter_name
        plain: dict[str, str] = {}
        protected: dict[str, str] = {}
        for name, value in values.items():
            target = protected if self.parameters[name].secret else plain
            target[rename(name)] = value
        plain[rename("dryRun")] = "1" if dry_run else "0"
        return plain, protected

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "conditions": list(self.conditions),
            "risk": self.risk,
            "approvalRequired": self.approval_required,
            "readOnly": self.read_only,
            "os": list(self.os_types),
            "parameters": {
                name: {
                    key: value
                    for key, value in {
                        "type": p.type,
                        "description": p.description,
                        "pattern": p.pattern,
                        "enum": list(p.enum) if p.enum is not None else None,
                        "minimum": p.minimum,
                        "maximum": p.maximum,
                        "default": p.default,
                        "osDefault": dict(p.os_default) or None,
                        "required": p.required or None,
                        "secret": p.secret or None,
                        "sources": list(p.sources),
                    }.items()
                    if value is not None
                }
                for name, p in self.parameters.items()
            },
            "timeoutSeconds": self.timeout_seconds,
            "cooldownMinutes": self.cooldown_minutes,
        }


@dataclass(frozen=True, eq=False)  # identity equality: loaded once per folder and cached
class Catalog:
    folder: Path
    remediations: Mapping[str, Remediation]

    def get(self, remediation_id: str) -> Remediation:
        try:
            return self.remediations[remediation_id]
        except KeyError:
            known = ", ".join(sorted(self.remediations))
            raise UnknownRemediation(
                f"unknown remediation {remediation_id!r} (the catalog has: {known})"
            ) from None

    def for_condition(self, condition: str) -> Remediation | None:
        """The remediation for a condition: the first in id order that declares it."""
        for remediation_id in sorted(self.remediations):
            if condition in self.remediations[remediation_id].conditions:
                return self.remediations[remediation_id]
        return None

    def redacted(self, remediation_id: str, parameters: Mapping[str, Any] | None) -> dict[str, Any]:
        """``parameters`` fit to show: each one the catalog declares secret reads ``(secret)``.

        The stored job keeps the value (the worker passes it to the run command); only what is shown is
        redacted. A remediation no longer in the catalog cannot say which are secret, so all are hidden.
        """
        declared = self.remediations[remediation_id].parameters if remediation_id in self.remediations else {}
        return {
            name: SECRET_SHOWN if name not in declared or declared[name].secret else value
            for name, value in (parameters or {}).items()
        }

    @property
    def conditions(self) -> frozenset[str]:
        return frozenset(c for r in self.remediations.values() for c in r.conditions)


def join_prelude(script: str, prelude: str | None) -> str:
    """The script with its marker line replaced by the prelude; unchanged without a prelude."""
    if prelude is None:
        return script
    lines = script.splitlines(keepends=True)
    at = [i for i, line in enumerate(lines) if line.rstrip("\r\n") == PRELUDE_MARKER]
    if len(at) != 1:
        raise CatalogError(
            f"a script must hold the line {PRELUDE_MARKER!r} exactly once, where the prelude goes"
        )
    body = prelude if prelude.endswith("\n") else prelude + "\n"
    return "".join(lines[: at[0]]) + body + "".join(lines[at[0] + 1 :])
