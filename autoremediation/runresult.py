"""What a run command said: the script's ``REMEDIATION_RESULT`` line, tails and Linux message sections.

Pure text handling shared by the compute adapter and the local ARM emulator. Azure keeps only the last
4,096 bytes of a run command's output, so every tail here is cut the same way, on a UTF-8 boundary.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

RESULT_PREFIX = "REMEDIATION_RESULT"
# The classic-mode wrapper prints this on stderr after the script, because Action Run Command has no
# exit code of its own. It is stripped from what the engine sees.
EXIT_MARKER = "REMEDIATION_EXIT_CODE"
TAIL_BYTES = 4096
# "refused": the script refused its input or a precondition and changed nothing (also said by exit 2).
STATUSES = frozenset({"fixed", "already-ok", "not-fixed", "error", "refused"})

_EXIT_LINE = re.compile(rf"^{EXIT_MARKER} (-?\d+)\s*$")


def tail(text: str, limit: int = TAIL_BYTES) -> str:
    """The last ``limit`` bytes of ``text`` in UTF-8, never splitting a character."""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    return data[-limit:].decode("utf-8", errors="ignore")


def parse_result(stdout: str) -> dict[str, Any] | None:
    """The JSON object of the last ``REMEDIATION_RESULT`` line, or None when there is none or it is bad.

    The contract says it is the last line; trailing blank lines (or a truncated head) are tolerated, but a
    result line that is not a JSON object with a known ``status`` is treated as absent, so that verification
    never trusts a half-written line.
    """
    for line in reversed(stdout.splitlines()):
        text = line.strip()
        if not text:
            continue
        if not text.startswith(RESULT_PREFIX + " ") and text != RESULT_PREFIX:
            continue
        payload = text[len(RESULT_PREFIX) :].strip()
        try:
            value = json.loads(payload)
        except ValueError:
            return None
        if not isinstance(value, dict) or value.get("status") not in STATUSES:
            return None
        return value
    return None


def split_linux_message(message: str) -> tuple[str, str]:
    """(stdout, stderr) from the message of a Linux action run command.

    Azure sends ``Enable succeeded: \\n[stdout]\\n...\\n[stderr]\\n...``; anything without the sections
    is taken as stdout so that no output is lost.
    """
    text = message or ""
    start = text.find("[stdout]")
    if start < 0:
        return text, ""
    body = text[start + len("[stdout]") :].removeprefix("\n")
    # The last marker wins: a script that prints "[stderr]" on stdout must not hide its result line.
    out, found, err = body.rpartition("[stderr]")
    if not found:
        return body, ""
    return out.removesuffix("\n"), err.removeprefix("\n")


def join_linux_message(stdout: str, stderr: str, *, succeeded: bool = True) -> str:
    """The message Azure's Linux agent reports, each section cut to the last 4,096 bytes."""
    verb = "Enable succeeded" if succeeded else "Enable failed"
    return f"{verb}: \n[stdout]\n{tail(stdout)}\n[stderr]\n{tail(stderr)}"


def pop_exit_marker(stderr: str) -> tuple[str, int | None]:
    """Remove the wrapper's exit-code line from ``stderr``; return the rest and the code (None if absent)."""
    lines = stderr.splitlines()
    for index in range(len(lines) - 1, -1, -1):
        match = _EXIT_LINE.match(lines[index].strip())
        if match:
            rest = lines[:index] + lines[index + 1 :]
            text = "\n".join(rest)
            if stderr.endswith("\n") and rest:
                text += "\n"
            return text, int(match[1])
        if lines[index].strip():
            break
    return stderr, None


def windows_statuses(stdout: str, stderr: str) -> list[dict[str, str]]:
    """The two ``ComponentStatus`` entries of a Windows action run command result."""
    return [
        {
            "code": "ComponentStatus/StdOut/succeeded",
            "level": "Info",
            "displayStatus": "Provisioning succeeded",
            "message": tail(stdout),
        },
        {
            "code": "ComponentStatus/StdErr/succeeded",
            "level": "Info",
            "displayStatus": "Provisioning succeeded",
            "message": tail(stderr),
        },
    ]


def outputs_from_statuses(statuses: Sequence[Mapping[str, Any]]) -> tuple[str, str]:
    """(stdout, stderr) from the ``value`` list of an action run command, whichever OS answered."""
    stdout: str | None = None
    stderr: str | None = None
    for status in statuses:
        code = str(status.get("code") or "")
        message = str(status.get("message") or "")
        if code.startswith("ComponentStatus/StdOut"):
            stdout = message
        elif code.startswith("ComponentStatus/StdErr"):
            stderr = message
        elif code.startswith("ProvisioningState") and stdout is None:
            stdout, stderr = split_linux_message(message)
    return stdout or "", stderr or ""
