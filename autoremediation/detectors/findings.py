"""What a detector answers: findings (a condition on a VM, with evidence) and notes saying why not."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Finding:
    """A condition found on one VM. ``parameters`` are raw remediation parameters (validated later)."""

    condition: str
    target: str  # the VM's resource id, as Azure gave it
    parameters: Mapping[str, str] = field(default_factory=dict)
    evidence: Mapping[str, Any] = field(default_factory=dict)
    reason: str = ""


@dataclass(frozen=True)
class DetectionResult:
    findings: tuple[Finding, ...] = ()
    notes: tuple[str, ...] = ()
