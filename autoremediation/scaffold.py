"""``remediate new ID``: the files of a new remediation, from the templates below (the one place they live).

The scaffold is structurally valid (``remediate validate`` accepts it) and does nothing yet: its scripts
report ``not-fixed`` until the checks and the fix are written, and its sandbox test fails until then.
"""

from __future__ import annotations

import re
from pathlib import Path

from .catalog import PRELUDE_FILES, PRELUDE_FOLDER
from .errors import InvalidInput

REMEDIATION_ID = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")

REMEDIATION_YAML = """\
id: {id}
title: {title}
description: >-
  TODO: what this remediation changes on the VM, in two or three sentences an on-call operator reads
  before approving it.
conditions: [{condition}]
risk: low
os:
  linux: {{script: linux.sh}}
  windows: {{script: windows.ps1}}
parameters:
  # Every value reaches a script that runs as root: a string needs a pattern or an enum.
  target:
    type: string
    description: TODO what the script acts on (a unit, a path, ...).
    pattern: '^[A-Za-z0-9_.-]{{1,64}}$'
    default: example
timeoutSeconds: 300
cooldownMinutes: 60
verification:
  successStatuses: [fixed, already-ok]
  exitCodes: [0]
  expect:
    - {{field: after.healthy, op: "==", value: true}}
"""

# The shared top of every Linux script: result line, error trap, strict mode. Kept apart from the body so
# it can follow the catalog's shared prelude when scripts get one.
LINUX_PRELUDE = """\
#!/bin/bash
# {title}.
# Parameters (environment): TARGET (example), DRY_RUN (0).
# The last line of stdout is `REMEDIATION_RESULT {{json}}`.
set -euo pipefail
export LC_ALL=C

result_printed=0
emit() {{
  result_printed=1
  printf 'REMEDIATION_RESULT %s\\n' "$1"
}}
on_exit() {{
  local code=$?
  if [ "$result_printed" = 0 ]; then
    emit '{{"status":"error","reason":"unexpected failure (exit '"$code"')","before":{{}},"after":{{}}}}'
    [ "$code" = 0 ] && code=1
  fi
  exit "$code"
}}
trap on_exit EXIT
fail() {{
  echo "error: $1" >&2
  emit "{{\\"status\\":\\"error\\",\\"reason\\":\\"$1\\",\\"before\\":{{}},\\"after\\":{{}}}}"
  exit 2
}}
"""

# With the catalog's shared prelude (remediations/_prelude/): the header and the marker line the catalog
# loader replaces with it.
LINUX_HEADER = """\
#!/bin/bash
# {title}.
# Parameters (environment): TARGET (example), DRY_RUN (0).
# The last line of stdout is `REMEDIATION_RESULT {{json}}`.
# @prelude
"""

LINUX_BODY = """
TARGET="${TARGET-example}"
DRY_RUN="${DRY_RUN-0}"
[[ "$DRY_RUN" =~ ^(0|1)$ ]] || fail "DRY_RUN must be 0 or 1"
[[ "$TARGET" =~ ^[A-Za-z0-9_.-]{1,64}$ ]] || fail "TARGET is not a plain name"

# TODO: measure the condition. Print what you see; never print a secret parameter.
healthy() { false; }
before="{\\"healthy\\":false}"
healthy && before="{\\"healthy\\":true}"
if healthy; then
  emit "{\\"status\\":\\"already-ok\\",\\"before\\":$before,\\"after\\":$before}"
  exit 0
fi
if [ "$DRY_RUN" = 1 ]; then
  echo "dry run: would fix $TARGET; nothing was changed"
  would="\\"actions\\":[\\"TODO\\"]"
  emit "{\\"status\\":\\"not-fixed\\",\\"dryRun\\":true,$would,\\"before\\":$before,\\"after\\":$before}"
  exit 1 # the contract: exit 0 only for fixed / already-ok
fi

# TODO: the fix (idempotent: a second run finds nothing to do).

after="{\\"healthy\\":false}"
healthy && after="{\\"healthy\\":true}"
status=not-fixed
healthy && status=fixed
emit "{\\"status\\":\\"$status\\",\\"before\\":$before,\\"after\\":$after}"
[ "$status" = fixed ]
"""

WINDOWS_PS1 = """\
# {title}.
# The last line of output is `REMEDIATION_RESULT {{json}}`.
param(
    [string]$Target = 'example',
    [string]$DryRun = '0'
)
@PRELUDE@
if ($Target -notmatch '^[A-Za-z0-9_.-]{{1,64}}$') {{
    Write-Result @{{ status = 'error'; reason = 'Target is not a plain name'; before = @{{}}; after = @{{}} }}
    exit 2
}}

# TODO: measure, fix unless $DryRun -eq '1', measure again.
$healthy = $false
$before = @{{ healthy = $healthy }}
Write-Result @{{ status = 'not-fixed'; dryRun = ($DryRun -eq '1'); before = $before; after = $before }}
exit 1
"""

WINDOWS_OWN_PRELUDE = """$ErrorActionPreference = 'Stop'

function Write-Result([hashtable]$Result) {
    Write-Output ('REMEDIATION_RESULT ' + ($Result | ConvertTo-Json -Compress -Depth 5))
}
"""

README = """\
# {id}

{title}.

## What it does

TODO: the steps, in order, and when it stops.

## What it never does

TODO: what it leaves alone (data, configuration, access, the machine's power state).

## Risks

TODO: what could go wrong, and why the risk level in remediation.yaml fits.

## How it verifies

The script prints `REMEDIATION_RESULT` with `before` and `after`; the job succeeds when the status is
`fixed` or `already-ok` and `after.healthy` is true.

## How to test

`tests/sandbox/test_{module}.py` runs the Linux script in a sandbox; `remediate validate` checks the files.
"""

SANDBOX_TEST = '''\
"""{id} in the sandbox's guest. Fails until the script is written: fill in the TODOs, then this."""

from __future__ import annotations

from localfleet.sandbox import GuestSpec

from .conftest import MakeSandbox, run_script


def test_{module}_fixes_the_condition(make_sandbox: MakeSandbox) -> None:
    box = make_sandbox(GuestSpec())  # TODO: a guest that has the condition

    run = run_script(box, "{id}", {{"target": "example"}})

    assert run.status == "fixed"
    assert run.result["after"] == {{"healthy": True}}


def test_{module}_dry_run_changes_nothing(make_sandbox: MakeSandbox) -> None:
    box = make_sandbox(GuestSpec())

    run = run_script(box, "{id}", {{"target": "example"}}, dry_run=True)

    assert run.status == "not-fixed" and run.result["dryRun"] is True
'''


def scaffold(
    catalog: Path, remediation_id: str, *, tests: Path | None = None, condition: str = ""
) -> list[Path]:
    """Write the files of a new remediation; InvalidInput if the id is not usable or already taken."""
    if len(remediation_id) > 48 or not REMEDIATION_ID.match(remediation_id):
        raise InvalidInput(
            f"{remediation_id!r} is not a remediation id (lowercase words joined by -, like clear-tmp)"
        )
    folder = catalog / remediation_id
    if folder.exists():
        raise InvalidInput(f"{folder} exists already: pick another id")
    if not (catalog / "remediation.schema.json").is_file():
        raise InvalidInput(f"{catalog} is not a catalog folder (no remediation.schema.json)")
    # A catalog with a shared prelude joins it in at the marker line; one without gets the scripts' own.
    shared = {os_type: (catalog / PRELUDE_FOLDER / name).is_file() for os_type, name in PRELUDE_FILES.items()}
    values = {
        "id": remediation_id,
        "title": remediation_id.replace("-", " ").capitalize(),
        "condition": condition or remediation_id,
        "module": remediation_id.replace("-", "_"),
    }
    files = {
        folder / "remediation.yaml": REMEDIATION_YAML.format(**values),
        folder / "linux.sh": (LINUX_HEADER if shared["linux"] else LINUX_PRELUDE).format(**values)
        + LINUX_BODY,
        folder / "windows.ps1": WINDOWS_PS1.format(**values).replace(
            "@PRELUDE@", "# @prelude\n" if shared["windows"] else WINDOWS_OWN_PRELUDE
        ),
        folder / "README.md": README.format(**values),
    }
    if tests is not None and tests.is_dir():
        test_file = tests / f"test_{values['module']}.py"
        if not test_file.exists():
            files[test_file] = SANDBOX_TEST.format(**values)
    folder.mkdir(parents=True)
    for path, text in files.items():
        path.write_text(text, encoding="utf-8")
    return list(files)
