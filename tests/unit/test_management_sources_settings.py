"""Management sources that defeat the purpose are refused by the settings, naming the setting; the
Service Tags file setting is read and its file parsed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autoremediation.detectors.addresses import TagAddresses
from autoremediation.detectors.nsg import Flow, evaluate_nsg
from autoremediation.detectors.servicetags import load_service_tags
from autoremediation.errors import InvalidInput
from autoremediation.ports import NetworkSecurityGroup, SecurityRule
from autoremediation.settings import MIN_PUBLIC_PREFIX, Settings, check_management_sources


@pytest.mark.parametrize(
    "source",
    ["*", "Any", "any", "Internet", "internet", "AzureCloud", "AzureCloud.WestEurope", "0.0.0.0/0", "::/0"],
)
def test_sources_open_to_the_world_are_refused_naming_the_setting(source: str) -> None:
    with pytest.raises(InvalidInput, match=r"setting REMEDIATION_MANAGEMENT_SOURCES: .* far more"):
        Settings.from_env({"REMEDIATION_MANAGEMENT_SOURCES": f"10.0.0.0/8,{source}"})


@pytest.mark.parametrize("source", ["8.0.0.0/8", "52.0.0.0/15", "2001:db8::/32", "2603::/47"])
def test_public_prefixes_wider_than_the_bound_are_refused(source: str) -> None:
    with pytest.raises(InvalidInput, match="too broad"):
        check_management_sources([source])


@pytest.mark.parametrize(
    "source",
    [
        "52.10.0.0/16",
        "203.0.113.7",
        "2603:1000::/48",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "fd00::/8",
        "VirtualNetwork",
    ],
)
def test_narrow_public_and_any_private_prefix_are_accepted(source: str) -> None:
    assert check_management_sources([source]) == (source,)


def test_the_bound_is_documented_in_one_place() -> None:
    assert MIN_PUBLIC_PREFIX == {4: 16, 6: 48}


def test_service_tags_file_setting_is_read() -> None:
    assert Settings.from_env({}).service_tags_file is None
    settings = Settings.from_env({"REMEDIATION_SERVICE_TAGS_FILE": " tags/ServiceTags_Public.json "})
    assert settings.service_tags_file == "tags/ServiceTags_Public.json"


def _write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "ServiceTags_Public.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_service_tags_file_gives_complete_expansions(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        {
            "changeNumber": 1,
            "cloud": "Public",
            "values": [
                {
                    "name": "AzureBastion",
                    "id": "AzureBastion",
                    "properties": {"addressPrefixes": ["20.1.0.0/16"]},
                },
                {"name": "VirtualNetwork", "properties": {"addressPrefixes": ["0.0.0.0/0"]}},
            ],
        },
    )
    tags = load_service_tags(path)
    assert set(tags) == {"azurebastion"}  # VirtualNetwork depends on the VNet, never on the file
    assert tags["azurebastion"] == TagAddresses.exact(["20.1.0.0/16"])
    group = NetworkSecurityGroup(
        "/subscriptions/s/resourceGroups/r/providers/Microsoft.Network/networkSecurityGroups/n",
        "n",
        "westeurope",
        (
            SecurityRule(
                "allow-bastion", 100, "Inbound", "Allow", "Tcp", ("AzureBastion",), destination_ports=("22",)
            ),
            SecurityRule("deny-all", 200, "Inbound", "Deny", "*"),
        ),
    )
    inside = evaluate_nsg(group, Flow(22, "20.1.2.0/24"), tag_prefixes=tags)
    outside = evaluate_nsg(group, Flow(22, "20.2.0.0/24"), tag_prefixes=tags)
    assert inside.allowed and inside.rule and inside.rule.name == "allow-bastion"
    assert not outside.allowed and outside.assumed is False  # the file says for certain it is not in the tag
    unknown = evaluate_nsg(group, Flow(22, "20.1.2.0/24"))
    assert not unknown.allowed and unknown.assumed is True
    assert "service tag AzureBastion: its addresses are unknown" in unknown.uncertain


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "is not JSON"),
        ("[]", "no 'values' list"),
        ('{"values": [{"name": "X"}]}', r"values\[0\] needs a name"),
        ('{"values": [{"name": "X", "properties": {"addressPrefixes": ["nope"]}}]}', "is not a CIDR"),
    ],
)
def test_bad_service_tags_files_are_clear_errors(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "tags.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InvalidInput, match=message):
        load_service_tags(path)


def test_missing_service_tags_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="cannot be read"):
        load_service_tags(tmp_path / "absent.json")
