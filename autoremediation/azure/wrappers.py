"""Classic-mode wrappers around a remediation script.

Action Run Command reports no exit code and passes a Linux script only positional arguments. The wrapper
(1) turns ``NAME=value`` positional arguments into environment variables, as Managed Run Command would,
(2) runs the script unchanged from a temporary file, (3) prints ``REMEDIATION_EXIT_CODE <n>`` as the last
line of stderr. Script text is embedded in a quoted here-document, so nothing in it is expanded; parameter
values never enter the wrapper text at all.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping

from ..errors import InvalidInput
from ..runresult import EXIT_MARKER

_LINUX_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
_WINDOWS_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")


def _token(script: str) -> str:
    return hashlib.sha256(script.encode("utf-8")).hexdigest()[:16].upper()


def linux_wrapper(script: str) -> str:
    delimiter = f"REMEDIATION_SCRIPT_{_token(script)}_EOF"
    if any(line == delimiter for line in script.split("\n")):
        raise InvalidInput("the script contains the wrapper's here-document delimiter")
    body = script if script.endswith("\n") else script + "\n"
    return (
        "#!/bin/bash\n"
        "# Classic Run Command: parameters arrive as NAME=value arguments; export them, run the script,\n"
        "# and report its exit status, which Action Run Command does not.\n"
        'for __arg in "$@"; do\n'
        '  __name="${__arg%%=*}"\n'
        '  case "$__name" in\n'
        "    '' | [!A-Z_]* | *[!A-Z0-9_]*)\n"
        '      echo "invalid parameter name: $__name" >&2\n'
        f'      echo "{EXIT_MARKER} 2" >&2\n'
        "      exit 2\n"
        "      ;;\n"
        "  esac\n"
        '  export "$__arg"\n'
        "done\n"
        '__script="$(mktemp)" || exit 1\n'
        "trap 'rm -f \"$__script\"' EXIT\n"
        f"cat >\"$__script\" <<'{delimiter}'\n"
        f"{body}"
        f"{delimiter}\n"
        'bash "$__script"\n'
        "__rc=$?\n"
        f'echo "{EXIT_MARKER} $__rc" >&2\n'
        'exit "$__rc"\n'
    )


def linux_arguments(parameters: Mapping[str, str]) -> list[dict[str, str]]:
    """Run Command parameters for the Linux wrapper: positional ``NAME=value`` strings."""
    out = []
    for index, (name, value) in enumerate(parameters.items(), 1):
        if not _LINUX_NAME.match(name):
            raise InvalidInput(f"parameter name {name!r} is not an UPPER_SNAKE environment variable name")
        out.append({"name": f"arg{index}", "value": f"{name}={value}"})
    return out


def windows_wrapper(script: str, names: list[str]) -> str:
    if any(line.startswith("'@") for line in script.split("\n")):
        raise InvalidInput(
            "the script contains a line starting with '@, which would end the wrapper's here-string"
        )
    for name in names:
        if not _WINDOWS_NAME.match(name):
            raise InvalidInput(f"parameter name {name!r} is not a PascalCase PowerShell parameter name")
    params = ",\n".join(f"    [string]${name}" for name in names)
    body = script.rstrip("\n")
    return (
        "param(\n"
        f"{params}\n"
        ")\n"
        "# Classic Run Command reports no exit code: run the script from a file and print its status.\n"
        "$__script = Join-Path $env:TEMP ('remediation-' + [guid]::NewGuid().ToString() + '.ps1')\n"
        "Set-Content -LiteralPath $__script -Encoding UTF8 -Value @'\n"
        f"{body}\n"
        "'@\n"
        "$__code = 0\n"
        "try {\n"
        "    $global:LASTEXITCODE = 0\n"
        "    & $__script @PSBoundParameters\n"
        "    if ($LASTEXITCODE) { $__code = $LASTEXITCODE }\n"
        "} catch {\n"
        "    [Console]::Error.WriteLine($_.ToString())\n"
        "    $__code = 1\n"
        "} finally {\n"
        "    Remove-Item -LiteralPath $__script -Force -ErrorAction SilentlyContinue\n"
        "}\n"
        f'[Console]::Error.WriteLine("{EXIT_MARKER} $__code")\n'
        "exit $__code\n"
    )


def windows_arguments(parameters: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"name": name, "value": value} for name, value in parameters.items()]
