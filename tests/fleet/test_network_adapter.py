"""AzureNetwork on the real NetworkManagementClient against the emulator."""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any

import pytest
from localfleet.server import FleetServer

from autoremediation.azure.network import AzureNetwork
from autoremediation.errors import InvalidInput, NotFound, Permanent
from autoremediation.ports import SecurityRule

from .conftest import RG, nsg_id, vm_id

pytestmark = pytest.mark.fleet

NIC = f"{RG}/providers/Microsoft.Network/networkInterfaces/vm-linux-locked-nic"
SUBNET = f"{RG}/providers/Microsoft.Network/virtualNetworks/vnet-demo/subnets/default"


def test_nsg_rules_fold_single_and_plural_fields(network: AzureNetwork) -> None:
    nsg = network.get_nsg(nsg_id())
    assert nsg.name == "nsg-demo" and nsg.location == "westeurope"
    deny = nsg.rules[0]
    assert (deny.name, deny.priority, deny.direction, deny.access, deny.protocol) == (
        "deny-ssh",
        200,
        "Inbound",
        "Deny",
        "Tcp",
    )
    assert deny.destination_ports == ("22",) and deny.source_prefixes == ("*",)
    assert {r.name for r in nsg.default_rules} == {
        "AllowVnetInBound",
        "AllowAzureLoadBalancerInBound",
        "DenyAllInBound",
        "AllowVnetOutBound",
        "AllowInternetOutBound",
        "DenyAllOutBound",
    }
    assert nsg.nic_ids == (NIC,)


def test_nic_and_subnet_association(network: AzureNetwork) -> None:
    nic = network.get_nic(NIC)
    assert nic.vm_id == vm_id("vm-linux-locked")
    assert nic.nsg_id == nsg_id()
    assert nic.subnet_ids == (SUBNET,)
    assert nic.private_ips == ("10.0.0.5",)
    assert network.get_subnet_nsg(SUBNET) is None


def test_subnet_members_are_found_through_ip_configurations(network: AzureNetwork) -> None:
    nics = network.list_subnet_nic_ids(SUBNET)
    assert NIC in nics
    assert {n.rsplit("/", 1)[-1] for n in nics} == {
        "vm-linux-disk-nic",
        "vm-linux-locked-nic",
        "vm-windows-nic",
        "vm-no-optin-nic",
    }


def test_application_security_groups_are_never_read_as_any() -> None:
    from azure.mgmt.network.models import ApplicationSecurityGroup
    from azure.mgmt.network.models import SecurityRule as SdkRule

    from autoremediation.azure.network import rule_from_model

    asg = f"{RG}/providers/Microsoft.Network/applicationSecurityGroups/bastions"
    sdk = SdkRule(
        name="allow-bastions",
        priority=100,
        direction="Inbound",
        access="Allow",
        protocol="Tcp",
        source_application_security_groups=[ApplicationSecurityGroup(id=asg)],
        destination_address_prefix="*",
        source_port_range="*",
        destination_port_range="22",
    )
    rule = rule_from_model(sdk)
    # Not ("*",): an Allow from an ASG is not an Allow from anywhere. The group stays a group.
    assert (rule.source_prefixes, rule.source_asgs) == ((), (asg,))
    assert (rule.destination_prefixes, rule.destination_asgs) == (("*",), ())
    # The SDK's fallback when it failed to deserialise the group leaves a raw dict: tried again, never
    # read as "no group" (which would fold to an Allow from anywhere).
    from autoremediation.errors import Transient

    half_read = SimpleNamespace(**{**vars_of(sdk), "source_application_security_groups": [{"id": asg}]})
    with pytest.raises(Transient, match="undeserialised"):
        rule_from_model(half_read)


def vars_of(rule: Any) -> dict[str, Any]:
    return {name: getattr(rule, name) for name in RULE_FIELDS}


RULE_FIELDS = (
    "name",
    "priority",
    "direction",
    "access",
    "protocol",
    "source_application_security_groups",
    "destination_application_security_groups",
    "source_address_prefix",
    "source_address_prefixes",
    "destination_address_prefix",
    "destination_address_prefixes",
    "source_port_range",
    "source_port_ranges",
    "destination_port_range",
    "destination_port_ranges",
    "description",
    "id",
)


def test_put_rule_is_idempotent_and_keeps_lists(network: AzureNetwork, fleet: FleetServer) -> None:
    rule = SecurityRule(
        name="allow-mgmt",
        priority=110,
        direction="Inbound",
        access="Allow",
        protocol="Tcp",
        source_prefixes=("10.0.0.0/8", "192.168.0.0/16"),
        destination_ports=("22",),
        description="management access",
    )
    first = network.put_security_rule(nsg_id(), rule)
    second = network.put_security_rule(nsg_id(), rule)
    assert first == second
    assert first.source_prefixes == ("10.0.0.0/8", "192.168.0.0/16")
    assert first.destination_ports == ("22",)
    assert first.id.endswith("/securityRules/allow-mgmt")
    nsg = network.get_nsg(nsg_id())
    assert [r.name for r in nsg.rules] == ["deny-ssh", "allow-mgmt"]
    assert len(fleet.calls_matching("PUT", "*/securityrules/allow-mgmt")) == 2


def test_put_rule_conflict_is_permanent(network: AzureNetwork) -> None:
    rule = SecurityRule(name="clash", priority=200, direction="Inbound", access="Allow", protocol="Tcp")
    with pytest.raises(Permanent, match="SecurityRuleConflict"):
        network.put_security_rule(nsg_id(), rule)


def test_missing_resources_and_wrong_ids(network: AzureNetwork) -> None:
    with pytest.raises(NotFound):
        network.get_nsg(nsg_id("nsg-gone"))
    with pytest.raises(
        InvalidInput, match=re.escape("is not a Microsoft.Network/networkSecurityGroups resource id")
    ):
        network.get_nsg(NIC)
    with pytest.raises(InvalidInput, match="virtualNetworks/subnets"):
        network.get_subnet_nsg(f"{RG}/providers/Microsoft.Network/virtualNetworks/vnet-demo")
    with pytest.raises(InvalidInput, match="needs at least one value"):
        network.put_security_rule(
            nsg_id(),
            SecurityRule(
                name="x", priority=300, direction="Inbound", access="Allow", protocol="Tcp", source_ports=()
            ),
        )
