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


HOOK_NAMES = ("preprovision", "postdeploy", "predown")


@pytest.mark.parametrize("name", HOOK_NAMES)
def test_hooks_exist(azure_yaml: dict, name: str) -> None:
    hook = azure_yaml["hooks"][name]
    for platform, shell, suffix in (("posix", "sh", ".sh"), ("windows", "pwsh", ".ps1")):
        assert hook[platform]["shell"] == shell
        assert hook[platform]["run"] == f"infra/hooks/{name}{suffix}"
        assert (bicep.REPO_ROOT / hook[platform]["run"]).is_file()
        # A failing check or clean-up stops azd: provisioning without the CLI the hooks need, or deleting
        # the resource group while the role outside it remains, is what these hooks exist to prevent.
        assert hook[platform]["continueOnError"] is False


def _azd_references(value: str) -> list[tuple[str, str | None]]:
    """`${NAME}` / `${NAME=default}` references of a parameters-file value: (name, default or None)."""
    return [
        (name, default[1:] if default else None)
        for name, default in re.findall(r"\$\{([A-Z_][A-Z0-9_]*)(=[^}]*)?\}", value)
    ]


def test_every_parameter_resolves_without_a_prompt() -> None:
    """`azd up --no-prompt` on a fresh environment: each value is azd's own or has a default."""
    parameters = json.loads((bicep.INFRA / "main.parameters.json").read_text())["parameters"]
    for name, entry in parameters.items():
        for variable, default in _azd_references(str(entry["value"])):
            assert variable in AZD_BUILT_IN or variable == "AZURE_PRINCIPAL_ID" or default is not None, (
                f"{name} needs {variable} set or a default"
            )
    assert _azd_references("${A}") == [("A", None)] and _azd_references("${B=}") == [("B", "")]


def test_the_deployer_principal_is_mapped() -> None:
    parameters = json.loads((bicep.INFRA / "main.parameters.json").read_text())["parameters"]
    assert parameters["principalId"]["value"] == "${AZURE_PRINCIPAL_ID=}"
    main = bicep.parse(bicep.INFRA / "main.bicep")
    assert bicep.text(bicep.declaration(main, "param", "principalId").value) == "''"
    # The deployer's roles are skipped when azd has no principal (a pipeline may not set it).
    roles = bicep.declaration(main, "module", "deployerRoles")
    assert bicep.text(roles.value).startswith("if (!empty(principalId))")


def test_target_scopes_default_to_the_app_resource_group() -> None:
    parameters = json.loads((bicep.INFRA / "main.parameters.json").read_text())["parameters"]
    assert parameters["targetScopes"]["value"] == "${REMEDIATION_TARGET_SCOPES=}"
    main = bicep.parse(bicep.INFRA / "main.bicep")
    assert bicep.text(bicep.declaration(main, "param", "targetScopes").value) == "''"
    default = bicep.text(bicep.declaration(main, "var", "defaultTargetScope").value)
    assert default == "'${subscription().id}/resourceGroups/${resourceGroupNameResolved}'"
    assert "defaultTargetScope" in bicep.text(bicep.declaration(main, "var", "scopeList").value)
    names = bicep.properties(bicep.declaration(main, "var", "names").value)
    assert bicep.text(names["resourceGroup"]) == "resourceGroupNameResolved"


def test_location_carries_azd_location_metadata() -> None:
    main = bicep.parse(bicep.INFRA / "main.bicep")
    node = bicep.declaration(main, "param", "location").node.prev_sibling  # the decorators block
    assert node is not None and node.type == "decorators"
    decorators = [bicep.text(child) for child in node.children if child.type == "decorator"]
    metadata = [text for text in decorators if text.startswith("@metadata(")]
    assert len(metadata) == 1
    assert re.sub(r"\s+", " ", metadata[0]) == "@metadata({ azd: { type: 'location' } })"


def test_storage_defaults_to_a_sku_every_region_offers() -> None:
    parameters = json.loads((bicep.INFRA / "main.parameters.json").read_text())["parameters"]
    assert parameters["storageSku"]["value"] == "${AZURE_STORAGE_SKU=Standard_LRS}"
    main = bicep.parse(bicep.INFRA / "main.bicep")
    assert bicep.literal(bicep.declaration(main, "param", "storageSku").value) == "Standard_LRS"
    storage = bicep.parse(bicep.INFRA / "modules" / "storage.bicep")
    assert bicep.literal(bicep.declaration(storage, "param", "skuName").value) == "Standard_LRS"


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


@pytest.mark.parametrize("name", HOOK_NAMES)
def test_sh_hook_passes_shellcheck(name: str) -> None:
    if shutil.which("shellcheck") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("shellcheck is missing (tools/ensure-system-packages.sh installs it)")
        pytest.skip("shellcheck not installed")
    done = subprocess.run(
        ["shellcheck", "-s", "sh", str(HOOKS / f"{name}.sh")], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout


@pytest.mark.parametrize("name", HOOK_NAMES)
def test_ps1_hook_parses(name: str) -> None:
    parser = Parser(Language(tree_sitter_powershell.language()))
    tree = parser.parse((HOOKS / f"{name}.ps1").read_bytes())
    assert not tree.root_node.has_error
    assert parser.parse(b"if ($x { }").root_node.has_error  # the check can fail
