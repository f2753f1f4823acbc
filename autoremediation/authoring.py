"""What ``remediate validate`` checks beyond the schema: the things a remediation's scripts and README
must agree on with its ``remediation.yaml``, each reported in words that say what to change."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from .catalog import UPLOAD_PARAMETERS, Remediation, env_name, script_parameter_name

README_SECTIONS = ("What it does", "What it never does", "Risks", "How it verifies")
# Shell and PowerShell syntax no parameter value may carry ("&" is allowed after "?" in a SAS URL).
HOSTILE = (";", "|", "`", "$(", "${", "<", ">", "'", '"', "\n", " ", "\\", "../")


def authoring_problems(remediations: Mapping[str, Remediation]) -> list[str]:
    problems: list[str] = []
    for remediation in remediations.values():
        problems += _readme(remediation)
        problems += _scripts(remediation)
        problems += _patterns(remediation)
    return problems


def _patterns(remediation: Remediation) -> list[str]:
    """A string parameter's pattern must refuse shell syntax, alone and inside the values it declares."""
    problems: list[str] = []
    for name, parameter in remediation.parameters.items():
        if parameter.type != "string" or parameter.pattern is None:
            continue
        known = [parameter.default, *parameter.os_default.values(), *(parameter.enum or ())]
        examples = [str(v) for v in known if isinstance(v, str) and v] or ["a"]
        for fragment in HOSTILE:
            candidates = (
                [fragment] + [e + fragment for e in examples] + [e[:1] + fragment + e[1:] for e in examples]
            )
            accepted = next((c for c in candidates if re.fullmatch(parameter.pattern, c)), None)
            if accepted is not None:
                where = f"{remediation.folder / 'remediation.yaml'}: parameters.{name}.pattern"
                problems.append(
                    f"{where} accepts {accepted!r}: narrow it so {fragment!r} cannot reach the script"
                )
                break
    return problems


def _readme(remediation: Remediation) -> list[str]:
    path = remediation.folder / "README.md"
    if not path.is_file():
        return []  # reported by the catalog loader
    headings = re.findall(r"^## (.+?)\s*$", path.read_text(encoding="utf-8"), flags=re.MULTILINE)
    return [
        f"{path}: add a section '## {section}' (every remediation README has {', '.join(README_SECTIONS)})"
        for section in README_SECTIONS
        if section not in headings
    ]


def _scripts(remediation: Remediation) -> list[str]:
    problems: list[str] = []
    # A remediation that uploads also reads the blob URL and SAS the runner gives it at dispatch.
    uploads = UPLOAD_PARAMETERS if remediation.upload_to else ()
    declared: Sequence[str] = [*uploads, *remediation.parameters, "dryRun"]
    for os_type, name in remediation.scripts.items():
        path = remediation.folder / name
        if not path.is_file():
            continue  # reported by the catalog loader
        text = path.read_text(encoding="utf-8")
        if os_type == "linux":
            strict = "\nset -euo pipefail\n" in text or "\n# @prelude\n" in text  # or the shared prelude's
            if not text.startswith("#!/bin/bash\n") or not strict:
                problems.append(f"{path}: start with '#!/bin/bash' and 'set -euo pipefail' (strict mode)")
            for parameter in declared:
                variable = env_name(parameter)
                if f"${{{variable}-" not in text:
                    problems.append(
                        f"{path}: read parameter {parameter} as {variable} with a default, "
                        f'e.g. {variable}="${{{variable}-...}}" (it arrives as an environment variable)'
                    )
        else:
            block = re.search(r"param\((.*?)\n\)", text, flags=re.DOTALL)
            wanted = [script_parameter_name(p) for p in declared]
            found = re.findall(r"\[string\]\$(\w+)", block.group(1)) if block else []
            if found != wanted:
                problems.append(
                    f"{path}: the param() block must declare, in this order, "
                    + ", ".join(f"[string]${w}" for w in wanted)
                    + (f" (found {', '.join(found)})" if found else " (found none)")
                )
        for check in remediation.verification.get("expect", []):
            leaf = str(check["field"]).split(".")[-1]
            if leaf not in text:
                problems.append(
                    f"{path}: verification expects {check['field']}, but the script never prints {leaf} "
                    "in its REMEDIATION_RESULT"
                )
    return problems


def unrouted(remediations: Mapping[str, Remediation], routes: Sequence[object]) -> list[str]:
    """Remediations no route reaches (only a manual request or a campaign can run them)."""
    reached = {getattr(r, "remediation", None) for r in routes} | {
        getattr(r, "condition", None) for r in routes
    }
    return [
        rid
        for rid, remediation in sorted(remediations.items())
        if rid not in reached and not set(remediation.conditions) & reached
    ]
