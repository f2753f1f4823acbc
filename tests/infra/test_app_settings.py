"""The deployed app settings match what autoremediation/settings.py reads."""

from __future__ import annotations

import pytest

from autoremediation.settings import LOCAL_ONLY_SETTINGS, PLATFORM_SETTINGS, SETTING_NAMES

from . import bicep

FUNCTION_APP = bicep.INFRA / "modules" / "functionapp.bicep"

# Read by the Functions host or its extensions, not by the app's code.
HOST_SETTINGS = {
    "AzureWebJobsStorage__credential",
    "AzureWebJobsStorage__clientId",
    "AzureWebJobsStorage__blobServiceUri",
    "AzureWebJobsStorage__queueServiceUri",
    "AzureWebJobsStorage__tableServiceUri",
    "REMEDIATION_STORAGE__credential",  # the queue trigger's identity-based connection
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
}


@pytest.fixture(scope="module")
def app_settings() -> dict[str, str]:
    """Setting name -> the Bicep expression of its value."""
    tree = bicep.parse(FUNCTION_APP)
    settings = bicep.properties(bicep.declaration(tree, "var", "appSettings").value)
    return {name: bicep.text(value) for name, value in settings.items()}


def test_every_setting_the_code_reads_is_deployed(app_settings: dict[str, str]) -> None:
    not_deployed = set(LOCAL_ONLY_SETTINGS) | set(PLATFORM_SETTINGS)
    missing = sorted(set(SETTING_NAMES) - not_deployed - set(app_settings))
    assert missing == [], f"settings the code reads but the Bicep does not set: {missing}"


def test_local_only_settings_are_not_deployed(app_settings: dict[str, str]) -> None:
    """A connection string in REMEDIATION_STORAGE would win over the identity-based connection."""
    assert sorted(set(LOCAL_ONLY_SETTINGS) & set(app_settings)) == []


def test_platform_settings_are_left_to_the_platform(app_settings: dict[str, str]) -> None:
    """WEBSITE_AUTH_ENABLED set by hand would tell the app that a front end authenticates callers."""
    assert sorted(set(PLATFORM_SETTINGS) & set(app_settings)) == []


def test_every_deployed_setting_has_a_reader(app_settings: dict[str, str]) -> None:
    unread = sorted(set(app_settings) - set(SETTING_NAMES) - HOST_SETTINGS)
    assert unread == [], f"settings the Bicep sets that nothing reads (a typo?): {unread}"


def test_the_appsettings_reach_the_site() -> None:
    """The settings object is what siteConfig.appSettings is built from."""
    tree = bicep.parse(FUNCTION_APP)
    site = bicep.declaration(tree, "resource", "functionApp")
    assert site.type_string.startswith("Microsoft.Web/sites@")
    (app_settings_node,) = list(bicep.object_properties(tree, "appSettings"))
    assert "items(appSettings)" in bicep.text(app_settings_node)


def test_storage_is_identity_based(app_settings: dict[str, str]) -> None:
    assert app_settings["REMEDIATION_JOB_STORE"] == "'table'"
    for prefix in ("AzureWebJobsStorage", "REMEDIATION_STORAGE"):
        assert app_settings[f"{prefix}__credential"] == "'managedidentity'"
        assert app_settings[f"{prefix}__clientId"] == "identityClientId"
    assert "AzureWebJobsStorage" not in app_settings  # no connection string for the host either


def test_telemetry_authenticates_with_the_app_identity(app_settings: dict[str, str]) -> None:
    value = app_settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"]
    assert "ClientId=${identityClientId}" in value and "Authorization=AAD" in value


def test_arm_endpoint_follows_the_cloud(app_settings: dict[str, str]) -> None:
    """Sovereign clouds have their own ARM endpoint; a literal URL would break them."""
    assert app_settings["REMEDIATION_ARM_ENDPOINT"] == "environment().resourceManager"


def test_flex_consumption_runs_python_311() -> None:
    tree = bicep.parse(FUNCTION_APP)
    runtime = bicep.properties(next(bicep.object_properties(tree, "runtime")))
    assert bicep.literal(runtime["name"]) == "python" and bicep.literal(runtime["version"]) == "3.11"
    sku = bicep.properties(next(bicep.object_properties(tree, "sku")))
    assert bicep.literal(sku["name"]) == "FC1" and bicep.literal(sku["tier"]) == "FlexConsumption"
    storage = bicep.properties(next(bicep.object_properties(tree, "authentication")))
    assert bicep.literal(storage["type"]) == "UserAssignedIdentity"


def test_flex_consumption_settings_are_not_set(app_settings: dict[str, str]) -> None:
    """Flex Consumption rejects these: runtime and version come from functionAppConfig."""
    forbidden = {
        "FUNCTIONS_WORKER_RUNTIME",
        "FUNCTIONS_EXTENSION_VERSION",
        "WEBSITE_RUN_FROM_PACKAGE",
        "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
        "WEBSITE_CONTENTSHARE",
    }
    assert sorted(forbidden & set(app_settings)) == []
