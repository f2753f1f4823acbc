"""What the deployed app carries: runtime dependencies, and no import of the development-only emulator."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

from autoremediation import settings

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGE = REPO_ROOT / "autoremediation"
# Development entry points allowed to reach the local fleet: the demo, and the one lazy door the CLI uses
# (it turns a missing emulator into one clear line).
DEV_MODULES = {"demo.py", "devfleet.py"}
DEV_ONLY_DISTRIBUTIONS = {"trustme"}


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every module ``path`` imports, absolute, with its line (relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package_parts = ["autoremediation", *path.relative_to(PACKAGE).parent.parts]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package_parts[: len(package_parts) - node.level + 1] if node.level else []
            module = ".".join([*base, node.module] if node.module else base)
            found.append((node.lineno, module))
            found.extend((node.lineno, f"{module}.{alias.name}") for alias in node.names)
    return found


def _production_modules() -> list[Path]:
    return [
        path
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.relative_to(PACKAGE).as_posix() not in DEV_MODULES
    ]


def test_the_import_scan_resolves_relative_imports() -> None:
    clients = PACKAGE / "azure" / "clients.py"
    imported = {name for _, name in _imports(clients)}
    assert "autoremediation.settings" in imported  # `from ..settings import Settings`
    assert "autoremediation.azure.loopback" in imported  # `from .loopback import LoopbackCredential`


def test_no_production_module_imports_the_local_fleet() -> None:
    offenders = [
        f"{path.relative_to(REPO_ROOT)}:{line}: {name}"
        for path in _production_modules()
        for line, name in _imports(path)
        if name == "localfleet"
        or name.startswith("localfleet.")
        or name.split(".")[0] in DEV_ONLY_DISTRIBUTIONS
    ]
    assert offenders == []


def test_the_functions_deployment_leaves_the_emulator_out() -> None:
    ignored = (REPO_ROOT / ".funcignore").read_text(encoding="utf-8").split()
    assert {"emulator", "autoremediation/demo.py", "setup.py"} <= set(ignored)
    # ... which is safe only because nothing deployed imports what is left out.
    offenders = [
        f"{path.relative_to(REPO_ROOT)}:{line}: {name}"
        for path in _production_modules()
        for line, name in _imports(path)
        if name == "autoremediation.demo" or name.startswith("autoremediation.demo.")
    ]
    assert offenders == []


def test_function_app_does_not_import_the_local_fleet() -> None:
    source = (REPO_ROOT / "function_app.py").read_text(encoding="utf-8")
    assert "localfleet" not in source and "trustme" not in source


def _requirement_names(lines: list[str]) -> set[str]:
    names = set()
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if line:
            names.add(re.split(r"[<>=!~\[; ]", line, maxsplit=1)[0].lower())
    return names


def test_dev_only_libraries_are_not_runtime_dependencies() -> None:
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    declared = _requirement_names(pyproject["project"]["dependencies"])
    deployed = _requirement_names((REPO_ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines())
    dev = _requirement_names((REPO_ROOT / "requirements-dev.txt").read_text(encoding="utf-8").splitlines())
    assert declared & DEV_ONLY_DISTRIBUTIONS == set()
    assert deployed & DEV_ONLY_DISTRIBUTIONS == set()
    assert dev >= DEV_ONLY_DISTRIBUTIONS  # tests and the demo still get them
    # The emulator is a distribution of its own, which brings them to whoever installs it.
    emulator = tomllib.loads((REPO_ROOT / "emulator" / "pyproject.toml").read_text(encoding="utf-8"))
    assert _requirement_names(emulator["project"]["dependencies"]) >= DEV_ONLY_DISTRIBUTIONS


def test_the_emulator_is_its_own_package_outside_the_product() -> None:
    assert not (PACKAGE / "localfleet").exists()
    assert (REPO_ROOT / "emulator" / "localfleet" / "server.py").is_file()
    # It depends on the product, never the other way round (see the import scan above).
    emulator = tomllib.loads((REPO_ROOT / "emulator" / "pyproject.toml").read_text(encoding="utf-8"))
    assert "azure-vm-autoremediation" in _requirement_names(emulator["project"]["dependencies"])


def test_runtime_dependencies_are_pinned_for_the_functions_build() -> None:
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    declared = _requirement_names(pyproject["project"]["dependencies"])
    deployed = _requirement_names((REPO_ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines())
    assert declared == deployed


def test_checkout_finds_the_catalog_next_to_the_package() -> None:
    assert settings.DEFAULT_CATALOG_DIR == REPO_ROOT / "remediations"
    assert (settings.DEFAULT_CATALOG_DIR / "routes.yaml").is_file()
