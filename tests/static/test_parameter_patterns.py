"""Every string parameter's pattern keeps shell and PowerShell syntax out.

Values are matched the way the catalog matches them (``re.fullmatch``), each hostile fragment alone
and inside an otherwise valid value.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import FOLDERS

# Valid examples per parameter: a pattern that rejects everything would pass the hostile test.
GOOD = {
    ("free-disk-space", "mountPoint"): ["/", "/var", "/data/logs", "/mnt/disk_1.a", "C:", "d:"],
    ("restart-service", "serviceName"): [
        "nginx",
        "nginx.service",
        "getty@tty1",
        "getty@tty1.service",
        "my-app_2.service",
        "W3SVC",
        "php8.2-fpm",
    ],
    ("restore-management-access", "managementSources"): ["10.1.0.0/24", "10.1.0.5,192.168.0.0/16"],
    ("restart-service", "allowedUnits"): ["nginx", "getty@tty1,nginx.service", "W3SVC,sshd,php8.2-fpm"],
}
FRAGMENTS = [
    ";",
    "|",
    "&",
    "$",
    "`",
    "(",
    ")",
    "<",
    ">",
    "'",
    '"',
    "\n",
    "\r",
    "\t",
    " ",
    "\\",
    "\0",
    "..",
    "../",
    "/..",
    "$(id)",
    "`id`",
    "${IFS}",
    "$env:windir",
    "@(1)",
    "{0}",
    "*",
    "?",
    "!",
    "#",
    "~",
    ",",
    "\u2028",
    "\uff1b",
    "%0a",
]
# List separators of the comma-separated list parameters.
ALLOWED_IN = {
    ("restart-service", "allowedUnits"): {","},
    ("restore-management-access", "managementSources"): {","},
}
WHOLE_HOSTILE = [
    "",
    "-rf",
    "--help",
    "/var/../etc",
    "../../etc/passwd",
    "C:\\Windows",
    "C:/",
    "/var/",
    "http://diagstore01.blob.core.windows.net/c01/x?sig=a",
    "https://diagstore01.blob.core.windows.net.evil.example/c01/x?sig=a",
    "https://evil.example/c01/x?sig=a",
]


def string_parameters() -> list[tuple[str, str, dict[str, Any]]]:
    found = []
    for folder in FOLDERS:
        data = yaml.safe_load((folder / "remediation.yaml").read_text())
        for name, spec in (data.get("parameters") or {}).items():
            if spec["type"] == "string":
                found.append((folder.name, name, spec))
    return found


PARAMS = string_parameters()


def accepts(spec: dict[str, Any], value: str) -> bool:
    if "maxLength" in spec and len(value) > spec["maxLength"]:
        return False
    if "enum" in spec and value not in [str(v) for v in spec["enum"]]:
        return False
    return "pattern" not in spec or re.fullmatch(spec["pattern"], value) is not None


def test_every_string_parameter_has_examples() -> None:
    assert {(rid, name) for rid, name, _ in PARAMS} == set(GOOD)


@pytest.mark.parametrize(
    ("remediation_id", "name", "spec"), PARAMS, ids=lambda v: v if isinstance(v, str) else ""
)
def test_pattern_accepts_the_examples(remediation_id: str, name: str, spec: dict[str, Any]) -> None:
    for value in GOOD[(remediation_id, name)]:
        assert accepts(spec, value), value


@pytest.mark.parametrize(
    ("remediation_id", "name", "spec"), PARAMS, ids=lambda v: v if isinstance(v, str) else ""
)
def test_pattern_rejects_hostile_values(remediation_id: str, name: str, spec: dict[str, Any]) -> None:
    allowed = ALLOWED_IN.get((remediation_id, name), set())
    for fragment in FRAGMENTS:
        candidates = [fragment, "a" + fragment + "b"]
        for good in GOOD[(remediation_id, name)]:
            candidates += [good + fragment, fragment + good, good[:1] + fragment + good[1:]]
        for value in candidates:
            if fragment in allowed and accepts(spec, value):
                continue
            assert not accepts(spec, value), f"{remediation_id}.{name} accepts {value!r}"
    for value in WHOLE_HOSTILE:
        assert not accepts(spec, value), f"{remediation_id}.{name} accepts {value!r}"


def test_no_remediation_folder_is_skipped() -> None:
    assert len({Path(f).name for f in FOLDERS}) >= 5
