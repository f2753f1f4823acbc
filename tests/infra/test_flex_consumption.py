"""Flex Consumption rejects site properties and app settings older plans take: none may come back.

ARM refuses the whole Function App when one of them is present, so `azd provision` fails on the first
run. The property list is the Flex Consumption docs' (FTP(S) is unsupported; the runtime lives in
functionAppConfig.runtime); the settings are those the platform owns or dropped on Flex (the Azure CLI's
flex-migration leaves the same names behind).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from . import bicep

FUNCTION_APP = bicep.INFRA / "modules" / "functionapp.bicep"

REJECTED_SITE_CONFIG = {"ftpsState", "linuxFxVersion"}
REJECTED_APP_SETTINGS = {
    "FUNCTIONS_EXTENSION_VERSION",
    "FUNCTIONS_WORKER_RUNTIME",
    "FUNCTIONS_WORKER_RUNTIME_VERSION",
    "FUNCTIONS_MAX_HTTP_CONCURRENCY",
    "FUNCTIONS_WORKER_PROCESS_COUNT",
    "FUNCTIONS_WORKER_DYNAMIC_CONCURRENCY_ENABLED",
    "SCM_DO_BUILD_DURING_DEPLOYMENT",
    "ENABLE_ORYX_BUILD",
    "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
    "WEBSITE_CONTENTOVERVNET",
    "WEBSITE_CONTENTSHARE",
    "WEBSITE_DNS_SERVER",
    "WEBSITE_MAX_DYNAMIC_APPLICATION_SCALE_OUT",
    "WEBSITE_NODE_DEFAULT_VERSION",
    "WEBSITE_RUN_FROM_PACKAGE",
    "WEBSITE_SKIP_CONTENTSHARE_VALIDATION",
    "WEBSITE_VNET_ROUTE_ALL",
    "WEBSITE_USE_PLACEHOLDER_DOTNETISOLATED",
    "WEBSITE_MOUNT_ENABLED",
    "AzureWebJobsDashboard",
}


def _flex_sites(tree: bicep.Tree) -> list[bicep.Declaration]:
    """The Microsoft.Web/sites resources of a file that declares a FlexConsumption plan."""
    plans = [
        item
        for item in bicep.declarations(tree, "resource")
        if item.type_string.lower().startswith("microsoft.web/serverfarms@")
        and "'FlexConsumption'" in bicep.text(item.value)
    ]
    if not plans:
        return []
    return [
        item
        for item in bicep.declarations(tree, "resource")
        if item.type_string.lower().startswith("microsoft.web/sites@")
    ]


def _site_config_keys(site: bicep.Declaration) -> set[str]:
    keys: set[str] = set()
    for node in bicep.walk(site.value):
        if node.type == "object_property" and bicep.text(node.children[0]) == "siteConfig":
            keys |= set(bicep.properties(node.children[-1]))
    return keys


def _app_setting_names(tree: bicep.Tree) -> set[str]:
    """Names in every `appSettings` object variable and every `{ name: ..., value: ... }` literal."""
    names: set[str] = set()
    for item in bicep.declarations(tree, "var"):
        if item.name.lower().endswith("appsettings") and item.value.type == "object":
            names |= set(bicep.properties(item.value))
    for node in bicep.object_properties(tree, "name"):
        literal = bicep.literal(node)
        if literal and re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", literal):
            names.add(literal)
    return names


def _violations(tree: bicep.Tree) -> list[str]:
    found = []
    for site in _flex_sites(tree):
        properties = sorted(_site_config_keys(site) & REJECTED_SITE_CONFIG)
        found += [f"{site.name}: siteConfig.{key}" for key in properties]
        rejected = {name.upper() for name in REJECTED_APP_SETTINGS}
        found += [
            f"{site.name}: app setting {name}"
            for name in sorted(_app_setting_names(tree))
            if name.upper() in rejected
        ]
    return found


def test_the_function_app_is_on_flex_consumption() -> None:
    assert _flex_sites(bicep.parse(FUNCTION_APP)), "functionapp.bicep declares a Flex Consumption site"


@pytest.mark.parametrize("path", bicep.bicep_files(), ids=lambda p: p.relative_to(bicep.INFRA).as_posix())
def test_no_property_or_setting_flex_consumption_rejects(path: Path) -> None:
    assert _violations(bicep.parse(path)) == []


def test_the_check_sees_ftps_state_and_a_rejected_setting() -> None:
    source = FUNCTION_APP.read_text()
    with_ftps = source.replace("minTlsVersion: '1.2'", "minTlsVersion: '1.2'\n      ftpsState: 'Disabled'", 1)
    assert "functionApp: siteConfig.ftpsState" in _violations(bicep.parse_text(with_ftps))
    with_runtime = source.replace(
        "var appSettings = {", "var appSettings = {\n  FUNCTIONS_WORKER_RUNTIME: 'python'", 1
    )
    assert "functionApp: app setting FUNCTIONS_WORKER_RUNTIME" in _violations(bicep.parse_text(with_runtime))


def test_runtime_and_publishing_are_set_the_flex_way() -> None:
    tree = bicep.parse(FUNCTION_APP)
    text = FUNCTION_APP.read_text()
    # The runtime lives in functionAppConfig, and publishing credentials (FTP and SCM) are off.
    (runtime,) = list(bicep.object_properties(tree, "runtime"))
    assert {k: bicep.literal(v) for k, v in bicep.properties(runtime).items()} == {
        "name": "python",
        "version": "3.11",
    }
    policies = {
        item.name: item
        for item in bicep.declarations(tree, "resource")
        if item.type_string.startswith("Microsoft.Web/sites/basicPublishingCredentialsPolicies@")
    }
    names = {bicep.literal(bicep.properties(item.value)["name"]) for item in policies.values()}
    assert names == {"ftp", "scm"}
    for item in policies.values():
        allow = bicep.properties(bicep.properties(item.value)["properties"])["allow"]
        assert bicep.text(allow) == "false"
    assert "ftpsState" not in "\n".join(line.split("//")[0] for line in text.splitlines())
