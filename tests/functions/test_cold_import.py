"""Importing ``function_app`` (what the host does to index the functions) stays cheap: no Azure SDK
beyond ``azure.functions``, no catalog, no store, no telemetry."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.functions.conftest import REPO

HEAVY = ("yaml", "jsonschema", "opentelemetry", "sqlite3", "urllib3", "requests")
ENGINE = (
    "autoremediation.services",
    "autoremediation.catalog",
    "autoremediation.runner",
    "autoremediation.store",
    "autoremediation.azure",
    "autoremediation.telemetry",
)


def modules_after(statement: str) -> set[str]:
    code = f"import json, sys\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("APPLICATIONINSIGHTS_CONNECTION_STRING", None)
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True
    ).stdout
    return set(json.loads(out))


def azure_modules(names: set[str]) -> set[str]:
    return {n for n in names if n == "azure" or n.startswith("azure.")}


def test_importing_the_app_loads_no_azure_module_beyond_azure_functions() -> None:
    functions_alone = modules_after("import azure.functions")
    app = modules_after("import function_app")

    # What azure.functions itself pulls in: only its own modules (no azure.core).
    assert {n for n in azure_modules(functions_alone) if not n.startswith("azure.functions")} == {"azure"}
    assert azure_modules(app) == azure_modules(functions_alone)
    for prefix in (
        "azure.mgmt",
        "azure.identity",
        "azure.data",
        "azure.storage",
        "azure.monitor",
        "azure.core",
    ):
        assert not any(n == prefix or n.startswith(prefix + ".") for n in app), prefix


def test_importing_the_app_builds_no_engine_part() -> None:
    app = modules_after("import function_app")

    loaded = sorted(n for n in app if n.split(".")[0] in HEAVY or n.startswith(ENGINE))
    assert loaded == []
