"""Windows parameters never carry cmd.exe metacharacters, twice over.

Run Command has been reported to pass Windows script parameters through cmd.exe
(Azure/azure-powershell#19087): ``& % ^ | < > "`` or a line break in a value could run a command.
Every parameter of every Windows script is refused such a value by the catalog (the same validation
the intake and the runner use), and the joined script refuses it again in the shared prelude, before
any script logic reads it.
"""

from __future__ import annotations

import re

import pytest

from autoremediation.catalog import UPLOAD_PARAMETERS, ParameterError, script_parameter_name
from autoremediation.catalog_load import load_catalog

from .conftest import REMEDIATIONS

CATALOG = load_catalog(REMEDIATIONS)
CMD_METACHARACTERS = ["&", "%", "^", "|", "<", ">", '"', "\n", "\r", "\r\n"]
# A valid value per parameter, so a refusal is for the metacharacter, not for the rest of the value.
GOOD = {
    "mountPoint": "C:",
    "targetFreePercent": "20",
    "olderThanDays": "7",
    "pruneContainerImages": "false",
    "serviceName": "W3SVC",
    "allowedUnits": "W3SVC,sshd",
    "port": "3389",
    "managementSources": "10.1.0.0/24",
    "maxLogLines": "2000",
}
WINDOWS_PARAMETERS = [
    (remediation.id, name)
    for remediation in sorted(CATALOG.remediations.values(), key=lambda r: r.id)
    if "windows" in remediation.scripts
    for name in remediation.parameters
]


def test_every_windows_parameter_has_a_valid_example() -> None:
    assert WINDOWS_PARAMETERS
    for remediation_id, name in WINDOWS_PARAMETERS:
        assert name in GOOD, f"{remediation_id}.{name}: add a valid example"
        CATALOG.get(remediation_id).parameters[name].validate(GOOD[name])


@pytest.mark.parametrize(("remediation_id", "name"), WINDOWS_PARAMETERS, ids=lambda v: v)
@pytest.mark.parametrize("character", CMD_METACHARACTERS, ids=repr)
def test_the_catalog_refuses_cmd_metacharacters(remediation_id: str, name: str, character: str) -> None:
    parameter = CATALOG.get(remediation_id).parameters[name]
    good = GOOD[name]
    for value in (
        character,
        good + character,
        character + good,
        good[:1] + character + good[1:],
        f"{good}{character}calc.exe",
    ):
        try:
            sent = parameter.validate(value)
        except ParameterError:
            continue
        # Integers and booleans are sent in their normal form ("20\n" goes out as "20"): what the
        # script receives must hold none of the metacharacters.
        assert parameter.type in ("integer", "boolean"), f"{remediation_id}.{name} accepts {value!r}"
        assert not set(sent) & set("".join(CMD_METACHARACTERS)), (value, sent)


def prelude_check() -> str:
    return (REMEDIATIONS / "_prelude" / "windows.ps1").read_text()


def test_the_prelude_refuses_every_metacharacter_in_every_bound_parameter() -> None:
    text = prelude_check()
    loop = re.search(
        r"foreach \(\$entry in \$PSBoundParameters\.GetEnumerator\(\)\) \{\n(.*?)\n\}", text, re.S
    )
    assert loop, "the prelude checks every bound parameter"
    pattern = re.search(r"-match '(\[[^']+\])'", loop.group(1))
    assert pattern and "Exit-WithError" in loop.group(1)
    # .NET and Python agree on this character class: each metacharacter matches, a plain value does not.
    character_class = re.compile(pattern.group(1).replace("\\r", "\r").replace("\\n", "\n"))
    for character in CMD_METACHARACTERS:
        assert character_class.search(f"a{character}b"), repr(character)
    for value in GOOD.values():
        assert not character_class.search(value), value


@pytest.mark.parametrize(
    "remediation_id", sorted(r.id for r in CATALOG.remediations.values() if "windows" in r.scripts)
)
def test_each_joined_windows_script_checks_its_parameters_before_anything_else(remediation_id: str) -> None:
    remediation = CATALOG.get(remediation_id)
    script = remediation.script("windows")
    check = script.index("foreach ($entry in $PSBoundParameters.GetEnumerator())")
    param_block = re.search(r"param\((.*?)\n\)", script, re.S)
    assert param_block and param_block.end() < check
    names = [*(UPLOAD_PARAMETERS if remediation.upload_to else ()), *remediation.parameters, "dryRun"]
    for name in names:
        windows_name = script_parameter_name(name)
        assert f"[string]${windows_name}" in param_block.group(1)
        # ... and the script's own pattern check for it comes after the prelude's.
        own = re.search(
            rf"(\${windows_name} -c?notmatch "
            rf"|in \${windows_name}\.Split\(','\)\) \{{\n\s+if \(\$\w+ -c?notmatch )",
            script,
        )
        assert own and own.start() > check, f"{remediation_id}: {windows_name} is not validated again"
