"""azure.yaml, main.parameters.json and the postdeploy hooks agree with the templates they drive."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest
import tree_sitter_powershell
import yaml
from tree_sitter import Language, Parser

from . import bicep

AZURE_YAML = bicep.REPO_ROOT / "azure.yaml"
HOOKS = bicep.INFRA / "hooks"
# Set by azd itself in every environment, not by main.bicep outputs.
AZD_BUILT_IN = {"AZURE_ENV_NAME", "AZURE_SUBSCRIPTION_ID", "AZURE_LOCATION"}


@pytest.fixture(scope="module")
def azure_yaml() -> dict:
    return yaml.safe_load(AZURE_YAML.read_text())


def _params(path: str) -> dict[str, bicep.Declaration]:
    return {item.name: item for item in bicep.declarations(bicep.parse(bicep.INFRA / path), "param")}


def _outputs(path: str) -> set[str]:
    return {item.name for item in bicep.declarations(bicep.parse(bicep.INFRA / path), "output")}


def test_azure_yaml_points_at_the_bicep_entry_point(azure_yaml: dict) -> None:
    infra = azure_yaml["infra"]
    assert infra["provider"] == "bicep"
    assert (bicep.REPO_ROOT / infra["path"] / f"{infra['module']}.bicep").is_file()
    assert (bicep.REPO_ROOT / infra["path"] / f"{infra['module']}.parameters.json").is_file()


def test_the_service_is_the_tagged_python_function_app(azure_yaml: dict) -> None:
    ((name, service),) = azure_yaml["services"].items()
    assert service["host"] == "function" and service["language"] == "python"
    assert (bicep.REPO_ROOT / service["project"] / "requirements.txt").is_file()
    main = bicep.parse(bicep.INFRA / "main.bicep")
    params = bicep.properties(
        bicep.properties(bicep.declaration(main, "module", "functionApp").value)["params"]
    )
    # azd finds the app to deploy by its azd-service-name tag.
    assert bicep.literal(params["serviceName"]) == name


def test_hooks_exist(azure_yaml: dict) -> None:
    hook = azure_yaml["hooks"]["postdeploy"]
    for platform in ("posix", "windows"):
        assert (bicep.REPO_ROOT / hook[platform]["run"]).is_file()
        assert hook[platform]["continueOnError"] is False


def test_parameters_file_matches_main_bicep() -> None:
    parameters = json.loads((bicep.INFRA / "main.parameters.json").read_text())["parameters"]
    declared = _params("main.bicep")
    assert sorted(set(parameters) - set(declared)) == []
    required = {name for name, item in declared.items() if not item.has_default}
    assert sorted(required - set(parameters)) == []
    assert parameters["environmentName"]["value"] == "${AZURE_ENV_NAME}"
    assert parameters["location"]["value"] == "${AZURE_LOCATION}"


def _sh_hook_parameters() -> set[str]:
    script = (HOOKS / "postdeploy.sh").read_text()
    block = script.split("--parameters", 1)[1].split("--output", 1)[0]
    return set(re.findall(r"^\s*([A-Za-z]+)=", block, re.MULTILINE))


def _ps_hook_parameters() -> set[str]:
    script = (HOOKS / "postdeploy.ps1").read_text()
    block = script.split("--parameters", 1)[1].split("--output", 1)[0]
    return set(re.findall(r'"([A-Za-z]+)=', block))


def test_hooks_pass_every_required_wiring_parameter() -> None:
    params = _params("wiring.bicep")
    required = {name for name, item in params.items() if not item.has_default}
    for passed in (_sh_hook_parameters(), _ps_hook_parameters()):
        assert sorted(required - passed) == []
        assert sorted(passed - set(params)) == []


def test_hooks_only_read_values_main_bicep_outputs() -> None:
    available = _outputs("main.bicep") | AZD_BUILT_IN
    sh = (HOOKS / "postdeploy.sh").read_text()
    required_sh = set(re.search(r"for name in (.*?); do", sh, re.DOTALL).group(1).replace("\\", " ").split())
    ps = (HOOKS / "postdeploy.ps1").read_text()
    required_ps = set(
        re.findall(r"'([A-Z_]+)'", re.search(r"\$required = @\((.*?)\)", ps, re.DOTALL).group(1))
    )
    assert required_sh == required_ps
    assert sorted(required_sh - available) == []


def test_postdeploy_sh_passes_shellcheck() -> None:
    if shutil.which("shellcheck") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("shellcheck is missing (tools/ensure-system-packages.sh installs it)")
        pytest.skip("shellcheck not installed")
    done = subprocess.run(
        ["shellcheck", "-s", "sh", str(HOOKS / "postdeploy.sh")], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout


def test_postdeploy_ps1_parses() -> None:
    parser = Parser(Language(tree_sitter_powershell.language()))
    tree = parser.parse((HOOKS / "postdeploy.ps1").read_bytes())
    assert not tree.root_node.has_error
    assert parser.parse(b"if ($x { }").root_node.has_error  # the check can fail
