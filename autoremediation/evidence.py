"""What a detector saw, said to a person: one line for an approval request, a few for ``show``.

Pure; reads the ``evidence`` mapping a finding carries into the plan and the job record (for
``nsg-lockout``: the deciding rule, its priority, NSG and level, direction, port, source, what was
assumed and why).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _short(resource_id: object) -> str:
    return str(resource_id or "").rstrip("/").rsplit("/", 1)[-1] or "-"


def evidence_summary(evidence: Mapping[str, Any] | None) -> str:
    """One line: the blocking rule and where it sits, and what was uncertain; empty without evidence."""
    if not evidence:
        return ""
    if evidence.get("rule"):
        where = f"{evidence.get('level', '?')} NSG {_short(evidence.get('nsg_id'))}"
        text = (
            f"{evidence.get('direction', 'Inbound')} TCP {evidence.get('port', '?')} from "
            f"{evidence.get('source', '?')} is denied by rule {evidence['rule']} (priority "
            f"{evidence.get('priority', '?')}) of {where}"
        )
    elif evidence.get("reason"):
        text = str(evidence["reason"])
    else:
        return ""
    uncertain = [str(u) for u in evidence.get("uncertain") or []]
    if evidence.get("assumed") or uncertain:
        text += " (assumed where uncertain" + (f": {'; '.join(uncertain)}" if uncertain else "") + ")"
    return text


def evidence_lines(evidence: Mapping[str, Any] | None) -> list[str]:
    """The evidence as ``key  value`` lines, the summary first."""
    if not evidence:
        return []
    lines = [summary] if (summary := evidence_summary(evidence)) else []
    for key in ("rule", "priority", "level", "nsg_id", "direction", "port", "source", "blocked_sources"):
        if evidence.get(key) not in (None, "", []):
            value = evidence[key]
            lines.append(f"{key:<16} {', '.join(map(str, value)) if isinstance(value, list) else value}")
    for item in evidence.get("uncertain") or []:
        lines.append(f"{'uncertain':<16} {item}")
    return lines
