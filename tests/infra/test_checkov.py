"""checkov's Bicep checks pass, and every check the project skips says why.

checkov lives in its own virtualenv (.venv-checkov, created by tools/checkov.sh) because it pins an
older pycep-parser and many libraries the project does not want.
"""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest
import yaml

from . import bicep

CHECKOV = bicep.REPO_ROOT / ".venv-checkov" / "bin" / "checkov"
CONFIG = bicep.INFRA / ".checkov.yaml"


def _run_checkov() -> dict:
    if not CHECKOV.exists():
        message = f"checkov is not installed at {CHECKOV}: run tools/checkov.sh --install-only"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    done = subprocess.run(
        [
            str(CHECKOV),
            "-d",
            "infra",
            "--framework",
            "bicep",
            "--skip-download",
            "--config-file",
            str(CONFIG),
            "-o",
            "json",
        ],
        cwd=bicep.REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    # Exit code 1 means failed checks, which the test below lists one by one.
    assert done.returncode in (0, 1), done.stderr[-2000:]
    result = json.loads(done.stdout)
    if isinstance(result, list):  # one report per framework
        (result,) = [item for item in result if item.get("check_type") == "bicep"]
    return result


# One test, one checkov run (about 10 s): pytest-xdist would otherwise run it once per worker.
@pytest.mark.slow
def test_checkov_passes_on_every_template() -> None:
    report = _run_checkov()
    # checkov skips a file it cannot parse and still exits 0: only this count tells.
    assert report["summary"]["parsing_errors"] == 0
    assert report["summary"]["resource_count"] > 0

    failed = [
        f"{item['check_id']} {item['check_name']} ({item['file_path']}: {item['resource']})"
        for item in report["results"]["failed_checks"]
    ]
    assert failed == []

    passed = {item["check_id"] for item in report["results"]["passed_checks"]}
    # The security-critical checks did run: storage HTTPS only, TLS 1.2, private containers; Function App
    # HTTPS only, TLS 1.2. (No FTP is checked by test_flex_consumption.py: checkov's FTP check wants the
    # ftpsState property that Flex Consumption rejects.)
    expected = {
        "CKV_AZURE_3",
        "CKV_AZURE_44",
        "CKV_AZURE_34",
        "CKV_AZURE_70",
        "CKV_AZURE_145",
    }
    assert expected <= passed, sorted(expected - passed)


def test_every_skipped_check_has_a_reason() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    skipped = config.get("skip-check", [])
    lines = {
        match.group(1): match.group(2).strip()
        for match in re.finditer(
            r"^\s*-\s*(CKV2?_[A-Z]+_\d+)\s*(?:#(.*))?$", CONFIG.read_text(), re.MULTILINE
        )
    }
    assert set(skipped) == set(lines)
    for check in skipped:
        reason = lines[check] or ""
        assert len(reason.split()) >= 8, f"{check} is skipped without a reason"
