"""The built wheel installs into a fresh virtualenv and works there: catalog included, no dev libraries.

The wheel is built with the project's own setuptools (the PEP 517 hook, no download), installed with
``pip --no-index`` from ``.state/wheelhouse`` (tools/wheelhouse.sh: the pinned runtime dependencies, so
the install also proves pyproject's dependencies resolve to requirements.txt's pins), and driven from a
directory with no checkout around it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
SOURCES = ["autoremediation", "remediations", "setup.py", "pyproject.toml", "README.md"]


def _run(*argv: str | Path, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(arg) for arg in argv], cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=240
    )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = tmp_path_factory.mktemp("source")
    for name in SOURCES:
        origin = REPO_ROOT / name
        if origin.is_dir():
            shutil.copytree(origin, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(origin, source / name)
    out = tmp_path_factory.mktemp("dist")
    built = _run(
        sys.executable,
        "-c",
        f"from setuptools import build_meta; print(build_meta.build_wheel({str(out)!r}))",
        cwd=source,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    return out / built.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    done = _run(
        "bash",
        REPO_ROOT / "tools" / "wheelhouse.sh",
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHON": sys.executable},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    wheelhouse = done.stdout.strip().splitlines()[-1]
    venv = tmp_path_factory.mktemp("venv")
    made = _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=venv)
    assert made.returncode == 0, made.stderr
    # The test environment's pip installs into the fresh interpreter: no index, only the pinned wheels.
    pip = _run(
        sys.executable,
        "-m",
        "pip",
        "--python",
        venv / "bin" / "python",
        "install",
        "-q",
        "--disable-pip-version-check",
        "--no-compile",  # byte-compiling the Azure SDKs' thousands of modules is most of the install time
        "--no-index",
        "--find-links",
        wheelhouse,
        wheel,
        cwd=venv,
    )
    assert pip.returncode == 0, pip.stderr[-3000:]
    return venv


def _clean_env() -> dict[str, str]:
    """No setting from the test session: the installed app must find its catalog on its own."""
    return {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"), "LANG": "C.UTF-8"}


def test_the_wheel_carries_the_whole_catalog(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    catalog = REPO_ROOT / "remediations"
    expected = {
        "autoremediation/remediations/" + path.relative_to(catalog).as_posix()
        for path in catalog.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    assert expected and sorted(expected - names) == []
    # Every data file inside the package too (OpenAPI document, console templates).
    package = REPO_ROOT / "autoremediation"
    data = {
        path.relative_to(REPO_ROOT).as_posix()
        for path in package.rglob("*")
        if path.is_file() and path.suffix not in (".py", ".pyc") and "__pycache__" not in path.parts
    }
    assert "autoremediation/openapi.yaml" in data
    assert sorted(data - names) == []
    # The local ARM emulator is not in it: a development package of its own.
    assert [name for name in names if "localfleet" in name] == []


def test_the_installed_wheel_works_outside_the_checkout(installed: Path, tmp_path: Path) -> None:
    # One test, not four: under pytest-xdist each worker would build its own virtualenv.
    remediate = installed / "bin" / "remediate"
    python = installed / "bin" / "python"

    # `remediate catalog` lists exactly the shipped remediations.
    done = _run(remediate, "catalog", cwd=tmp_path, env=_clean_env())
    assert done.returncode == 0, done.stderr
    # The table's rows: a header, a rule, then one remediation id per line.
    rows = [line.split() for line in done.stdout.splitlines()[1:]]
    listed = {row[0] for row in rows if row and re.fullmatch(r"[a-z][a-z0-9-]*", row[0])}
    files = (REPO_ROOT / "remediations").glob("*/remediation.yaml")
    shipped = {yaml.safe_load(path.read_text())["id"] for path in files}
    assert shipped and listed == shipped

    # It read them from inside the installed package, not from a checkout.
    probe = "from autoremediation import settings; print(settings.DEFAULT_CATALOG_DIR)"
    done = _run(python, "-c", probe, cwd=tmp_path, env=_clean_env())
    assert done.returncode == 0, done.stderr
    where = Path(done.stdout.strip())
    assert where.parts[-2:] == ("autoremediation", "remediations")
    assert str(where).startswith(str(installed))

    # No development library came along, and the local fleet says what it needs in one line.
    probe = "import importlib.metadata as m; print('\\n'.join(d.metadata['Name'] for d in m.distributions()))"
    done = _run(python, "-c", probe, cwd=tmp_path, env=_clean_env())
    assert done.returncode == 0, done.stderr
    names = {line.strip().lower() for line in done.stdout.splitlines()}
    assert "azure-vm-autoremediation" in names
    assert "trustme" not in names
    served = _run(remediate, "fleet", "serve", cwd=tmp_path, env=_clean_env())
    assert served.returncode == 2
    assert served.stderr.count("\n") == 1, served.stderr
    assert "localfleet" in served.stderr and "Traceback" not in served.stderr
    # The wheel carries no emulator at all: it is a distribution of its own.
    assert "localfleet" not in names and "azure-vm-autoremediation-localfleet" not in names
