"""Small catalogs written to a temporary folder, for tests that must not depend on the shipped one."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "remediations"
# Engine tests use routes of their own: a route added to the shipped catalog must not break them.
FIXTURE_ROUTES = Path(__file__).resolve().parents[1] / "fixtures" / "catalog" / "routes.yaml"


def write_remediation(root: Path, data: dict[str, Any], scripts: bool = True, readme: bool = True) -> Path:
    folder = root / data["id"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "remediation.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    if scripts:
        for entry in data.get("os", {}).values():
            (folder / entry["script"]).write_text("#!/bin/sh\necho 'REMEDIATION_RESULT {}'\n")
    if readme:
        (folder / "README.md").write_text(f"# {data['id']}\n")
    return folder


def base_remediation(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": "free-disk-space",
        "title": "Free disk space",
        "description": "Reclaims space on one mount point.",
        "conditions": ["disk-full"],
        "risk": "low",
        "os": {"linux": {"script": "linux.sh"}, "windows": {"script": "windows.ps1"}},
        "parameters": {
            "mountPoint": {
                "type": "string",
                "description": "mount",
                "pattern": r"^(/|(/(?!\.\.?(/|$))[A-Za-z0-9._-]+)+|[A-Za-z]:)$",
                "default": "/",
                "sources": ["alert", "operator"],
            },
            "targetFreePercent": {
                "type": "integer",
                "description": "target",
                "minimum": 5,
                "maximum": 90,
                "default": 20,
            },
        },
        "timeoutSeconds": 900,
        "cooldownMinutes": 60,
        "verification": {
            "successStatuses": ["fixed", "already-ok"],
            "exitCodes": [0],
            "expect": [{"field": "after.freePercent", "op": ">=", "parameter": "targetFreePercent"}],
        },
    }
    data.update(overrides)
    return data


def access_remediation(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": "restore-management-access",
        "title": "Restore access",
        "description": "Restores SSH or RDP access.",
        "conditions": ["nsg-lockout"],
        "risk": "high",
        "approval": "required",
        "os": {"linux": {"script": "linux.sh"}},
        "parameters": {
            "port": {
                "type": "integer",
                "description": "port",
                "enum": [22, 3389],
                "osDefault": {"linux": 22, "windows": 3389},
                "sources": ["alert", "operator"],
            },
        },
        "controlPlane": ["nsg-allow-management"],
        "timeoutSeconds": 600,
        "cooldownMinutes": 30,
        "verification": {"successStatuses": ["fixed", "already-ok"]},
    }
    data.update(overrides)
    return data


def make_catalog(root: Path, *remediations: dict[str, Any], routes: str | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(SHIPPED / "remediation.schema.json", root)
    shutil.copy(SHIPPED / "routes.schema.json", root)
    for data in remediations or (base_remediation(), access_remediation()):
        write_remediation(root, data)
    (root / "routes.yaml").write_text(routes if routes is not None else FIXTURE_ROUTES.read_text())
    return root
