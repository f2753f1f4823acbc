"""The nsg-lockout detector on the real azure-mgmt-network client against the emulator: VirtualNetwork
resolved from the VNet and its peerings, Internet as what lies outside it, ASG rules, unreadable VNets."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from localfleet.fleetfile import parse_fleet
from localfleet.server import FleetServer

from autoremediation.azure import clients
from autoremediation.azure.calls import Retrier
from autoremediation.azure.compute import AzureCompute
from autoremediation.azure.network import AzureNetwork, rule_body
from autoremediation.detectors.lockout import detect_nsg_lockout
from autoremediation.settings import Settings
from autoremediation.signals.model import Signal

pytestmark = pytest.mark.fleet

SUB = "00000000-0000-0000-0000-000000000001"
OTHER_SUB = "00000000-0000-0000-0000-0000000000ff"
RG = f"/subscriptions/{SUB}/resourceGroups/rg-net"
NET = f"{RG}/providers/Microsoft.Network"
HUB_ELSEWHERE = (
    f"/subscriptions/{OTHER_SUB}/resourceGroups/rg-hub/providers/Microsoft.Network/virtualNetworks/hub"
)


def _rule(name: str, priority: int, access: str, source: str | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": name,
        "priority": priority,
        "direction": "Inbound",
        "access": access,
        "protocol": "Tcp",
        "sourcePortRange": "*",
        "destinationAddressPrefix": "*",
        "destinationPortRange": "22",
        **extra,
    }
    if source is not None:
        body["sourceAddressPrefix"] = source
    return body


def _fleet(
    rules: list[dict[str, Any]], *, subnet: dict[str, Any] | None = None, vnet: dict[str, Any] | None = None
) -> Any:
    app_vnet: dict[str, Any] = {
        "name": "vnet-app",
        "addressPrefixes": ["10.1.0.0/16"],
        "subnets": [{"name": "web", "addressPrefix": "10.1.0.0/24", **(subnet or {})}],
        "peerings": [
            {"name": "to-ops", "remoteVirtualNetwork": "vnet-ops"},
            {
                "name": "to-hub",
                "remoteVirtualNetwork": HUB_ELSEWHERE,
                "remoteAddressPrefixes": ["10.50.0.0/16"],
            },
        ],
        **(vnet or {}),
    }
    return parse_fleet(
        {
            "subscriptions": [
                {
                    "id": SUB,
                    "resourceGroups": [
                        {
                            "name": "rg-net",
                            "location": "westeurope",
                            "virtualMachines": [
                                {"name": "web1", "os": "linux", "nics": ["web1-nic"]},
                            ],
                            "networkSecurityGroups": [{"name": "nsg-web", "rules": rules}],
                            "virtualNetworks": [
                                app_vnet,
                                {"name": "vnet-ops", "addressPrefixes": ["10.2.0.0/16"], "subnets": []},
                            ],
                            "networkInterfaces": [
                                {
                                    "name": "web1-nic",
                                    "subnet": "vnet-app/web",
                                    "nsg": "nsg-web",
                                    "privateIp": "10.1.0.4",
                                    "applicationSecurityGroups": ["asg-web"],
                                }
                            ],
                        }
                    ],
                }
            ]
        },
        "servicetags-fleet.yaml",
    )


@pytest.fixture(autouse=True)
def _fresh_clients() -> Iterator[None]:
    yield
    clients.clear_cache()


class Net:
    def __init__(self, server: FleetServer) -> None:
        self.server = server
        settings = Settings(arm_endpoint=server.base_url, arm_ca_bundle=server.ca_bundle)
        self.network = AzureNetwork(settings, polling_interval=0, retrier=Retrier(sleep=lambda s: None))
        self.compute = AzureCompute(settings, polling_interval=0, retrier=Retrier(sleep=lambda s: None))

    def detect(self, *sources: str) -> Any:
        signal = Signal(
            id="evt-1",
            source="event",
            type="Microsoft.Resources.ResourceWriteSuccess",
            resource_id=f"{NET}/networkSecurityGroups/nsg-web",
            resources=(f"{NET}/networkSecurityGroups/nsg-web",),
        )
        return detect_nsg_lockout(signal, self.network, self.compute, sources)


def run(rules: list[dict[str, Any]], *sources: str, inject: str | None = None, **shape: Any) -> Any:
    with FleetServer(_fleet(rules, **shape), sandbox=False) as server:
        net = Net(server)
        if inject:
            server.inject(inject, "error", status=403)
        return net.detect(*sources)


def test_the_adapter_reads_address_space_and_peerings_from_arm() -> None:
    with FleetServer(_fleet([]), sandbox=False) as server:
        vnet = Net(server).network.get_virtual_network(f"{NET}/virtualNetworks/vnet-app")
    assert vnet.address_prefixes == ("10.1.0.0/16",)
    assert [(p.name, p.state, p.remote_prefixes) for p in vnet.peerings] == [
        ("to-ops", "Connected", ("10.2.0.0/16",)),
        ("to-hub", "Connected", ("10.50.0.0/16",)),
    ]
    assert vnet.peerings[1].remote_vnet_id == HUB_ELSEWHERE
    assert (vnet.gateway_subnet, vnet.routed_subnets) == (False, ())


def test_deny_from_virtual_network_blocks_a_source_in_a_peered_vnet_for_certain() -> None:
    result = run([_rule("deny-vnet", 100, "Deny", "VirtualNetwork")], "10.2.3.0/24")
    (finding,) = result.findings
    assert finding.evidence["rule"] == "deny-vnet" and finding.evidence["assumed"] is False
    assert finding.evidence["level"] == "nic" and finding.evidence["priority"] == 100
    assert finding.evidence["nsg_id"].endswith("/networkSecurityGroups/nsg-web")
    assert finding.evidence["uncertain"] == []


def test_deny_from_virtual_network_spares_a_public_source_when_the_tag_is_complete() -> None:
    rules = [
        _rule("deny-vnet", 100, "Deny", "VirtualNetwork"),
        _rule("allow-ops", 200, "Allow", "198.51.100.0/24"),
    ]
    result = run(rules, "198.51.100.0/24")
    assert result.findings == ()
    assert "allow-ops" in result.notes[0]


def test_peer_in_another_subscription_is_known_from_the_local_peering() -> None:
    rules = [_rule("allow-vnet", 100, "Allow", "VirtualNetwork"), _rule("deny-all", 200, "Deny", "*")]
    assert run(rules, "10.50.7.0/24").findings == ()


def test_deny_from_internet_hits_a_documentation_range_source() -> None:
    result = run(
        [_rule("deny-internet", 100, "Deny", "Internet"), _rule("a", 200, "Allow", "*")], "203.0.113.0/24"
    )
    (finding,) = result.findings
    assert finding.evidence["rule"] == "deny-internet" and finding.evidence["assumed"] is False


def test_deny_from_internet_spares_the_vnet_and_its_peers() -> None:
    rules = [_rule("deny-internet", 100, "Deny", "Internet")]
    assert run(rules, "10.1.0.0/24", "10.2.0.0/24", "VirtualNetwork").findings == ()


def test_a_route_table_on_the_subnet_makes_internet_uncertain_and_says_why() -> None:
    rules = [_rule("allow-internet", 100, "Allow", "Internet"), _rule("deny-all", 200, "Deny", "*")]
    assert run(rules, "198.51.100.0/24").findings == ()
    result = run(rules, "198.51.100.0/24", subnet={"routeTable": "rt-web"})
    (finding,) = result.findings
    assert finding.evidence["rule"] == "deny-all" and finding.evidence["assumed"] is True
    assert any("route table" in u for u in finding.evidence["uncertain"])


def test_a_gateway_subnet_makes_virtual_network_incomplete() -> None:
    rules = [_rule("deny-vnet", 100, "Deny", "VirtualNetwork"), _rule("a", 200, "Allow", "*")]
    gateway = {
        "subnets": [
            {"name": "web", "addressPrefix": "10.1.0.0/24"},
            {"name": "GatewaySubnet", "addressPrefix": "10.1.255.0/27"},
        ]
    }
    (finding,) = run(rules, "198.51.100.0/24", vnet=gateway).findings
    assert finding.evidence["assumed"] is True
    assert any("GatewaySubnet" in u for u in finding.evidence["uncertain"])


def test_an_unreadable_vnet_is_reported_and_treated_as_uncertain() -> None:
    rules = [_rule("deny-vnet", 100, "Deny", "VirtualNetwork"), _rule("a", 200, "Allow", "*")]
    result = run(rules, "198.51.100.0/24", inject="GET */virtualNetworks/vnet-app")
    (finding,) = result.findings
    assert finding.evidence["assumed"] is True
    assert any("403" in n for n in result.notes)
    assert any("vnet-app" in u and "403" in u for u in finding.evidence["uncertain"])


def test_a_disconnected_peering_is_not_counted_and_is_uncertain() -> None:
    rules = [_rule("allow-vnet", 100, "Allow", "VirtualNetwork"), _rule("deny-all", 200, "Deny", "*")]
    peering = {
        "peerings": [{"name": "to-ops", "remoteVirtualNetwork": "vnet-ops", "peeringState": "Disconnected"}]
    }
    (finding,) = run(rules, "10.2.0.0/24", vnet=peering).findings
    assert finding.evidence["rule"] == "deny-all" and finding.evidence["assumed"] is True
    assert any("Disconnected" in u for u in finding.evidence["uncertain"])


def test_asg_rules_round_trip_through_arm_and_stay_groups() -> None:
    asg = f"{NET}/applicationSecurityGroups/asg-web"
    deny_to_asg = _rule(
        "deny-ssh-to-web", 100, "Deny", "*", destinationApplicationSecurityGroups=[{"id": asg}]
    )
    del deny_to_asg["destinationAddressPrefix"]
    with FleetServer(_fleet([deny_to_asg]), sandbox=False) as server:
        net = Net(server)
        nsg = net.network.get_nsg(f"{NET}/networkSecurityGroups/nsg-web")
        (rule,) = nsg.rules
        assert rule.destination_asgs == (asg,) and rule.destination_prefixes == ()
        props = rule_body(rule)["properties"]
        assert props["destinationApplicationSecurityGroups"] == [{"id": asg}]
        assert "destinationAddressPrefix" not in props and "destinationAddressPrefixes" not in props
        written = net.network.put_security_rule(nsg.id, rule)
        assert written.destination_asgs == (asg,) and written.destination_prefixes == ()
        nic = net.network.get_nic(f"{NET}/networkInterfaces/web1-nic")
        assert nic.asg_ids == (asg,)
        # The NIC is in the group, so the Deny applies for certain.
        (finding,) = net.detect("10.2.0.0/24").findings
        assert finding.evidence["rule"] == "deny-ssh-to-web" and finding.evidence["assumed"] is False


def test_allow_from_an_asg_source_is_not_counted_and_says_why() -> None:
    asg = f"{NET}/applicationSecurityGroups/asg-jump"
    allow = _rule("allow-jump", 100, "Allow", None, sourceApplicationSecurityGroups=[{"id": asg}])
    (finding,) = run([allow, _rule("deny-all", 200, "Deny", "*")], "10.2.0.0/24").findings
    assert finding.evidence["rule"] == "deny-all" and finding.evidence["assumed"] is True
    assert any("asg-jump" in u for u in finding.evidence["uncertain"])


def test_an_unreadable_subnet_on_the_path_is_reported_and_blocks_by_assumption() -> None:
    rules = [_rule("allow-vnet", 100, "Allow", "VirtualNetwork")]
    assert run(rules, "10.2.0.0/24").findings == ()
    result = run(rules, "10.2.0.0/24", inject="GET */virtualNetworks/vnet-app/subnets/web")
    (finding,) = result.findings
    assert finding.evidence["assumed"] is True and finding.evidence["rule"] is None
    assert any("subnet web cannot be read (HTTP 403" in u for u in finding.evidence["uncertain"])
    assert any("subnet web cannot be read" in n for n in result.notes)


def test_an_unreadable_triggering_nsg_is_a_note() -> None:
    result = run([], "10.2.0.0/24", inject="GET */networkSecurityGroups/nsg-web")
    assert result.findings == ()
    assert result.notes[0].startswith("NSG nsg-web cannot be read (HTTP 403")
