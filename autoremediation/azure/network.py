"""``ports.Network`` on ``azure-mgmt-network``: NSGs and their rules, NICs, subnet associations."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import InvalidInput, Transient
from ..ports import (
    NetworkInterface,
    NetworkSecurityGroup,
    SecurityRule,
    VirtualNetwork,
    VirtualNetworkPeering,
)
from ..settings import Settings
from . import clients
from .calls import Retrier, parse_id

_NS = "Microsoft.Network"


def _text(value: Any) -> str:
    if value is None:
        return ""
    return str(getattr(value, "value", value))


def _fold(single: Any, plural: Any) -> tuple[str, ...]:
    """ARM keeps a prefix or port range in a single field or a list; the port keeps a tuple."""
    if plural:
        return tuple(str(v) for v in plural)
    if single:
        return (str(single),)
    return ("*",)


def _groups(groups: Any) -> tuple[str, ...]:
    if any(type(g) is dict for g in groups or []):
        # The SDK's silent fallback when it failed to deserialise (see ``modelrace``): read as "no
        # group", an Allow from an ASG would fold to an Allow from anywhere. Tried again instead.
        raise Transient("the SDK left an application security group undeserialised")
    return tuple(i for i in (str(getattr(g, "id", None) or "") for g in groups or []) if i)


def _prefixes(single: Any, plural: Any, groups: tuple[str, ...]) -> tuple[str, ...]:
    """Address prefixes; none when the rule names application security groups instead.

    An ASG rule has no address prefix at all; folding it to ``*`` would make an Allow from one ASG
    look like an Allow from anywhere. Its groups are kept as groups (``SecurityRule.source_asgs``),
    so the rule can be evaluated conservatively and written back as it was.
    """
    if groups and not single and not plural:
        return ()
    return _fold(single, plural)


def rule_from_model(rule: Any) -> SecurityRule:
    direction = _text(rule.direction) or "Inbound"
    access = _text(rule.access) or "Deny"
    source_groups = _groups(rule.source_application_security_groups)
    destination_groups = _groups(rule.destination_application_security_groups)
    return SecurityRule(
        name=str(rule.name),
        priority=int(rule.priority or 0),
        direction="Outbound" if direction.lower() == "outbound" else "Inbound",
        access="Allow" if access.lower() == "allow" else "Deny",
        protocol=_text(rule.protocol) or "*",
        source_prefixes=_prefixes(rule.source_address_prefix, rule.source_address_prefixes, source_groups),
        destination_prefixes=_prefixes(
            rule.destination_address_prefix, rule.destination_address_prefixes, destination_groups
        ),
        source_asgs=source_groups,
        destination_asgs=destination_groups,
        source_ports=_fold(rule.source_port_range, rule.source_port_ranges),
        destination_ports=_fold(rule.destination_port_range, rule.destination_port_ranges),
        description=str(rule.description or ""),
        id=str(rule.id or ""),
    )


def rule_body(rule: SecurityRule) -> dict[str, Any]:
    """The ARM ``properties`` of a rule; one value goes in the single field, several in the list."""
    props: dict[str, Any] = {
        "priority": rule.priority,
        "direction": rule.direction,
        "access": rule.access,
        "protocol": rule.protocol,
    }
    if rule.description:
        props["description"] = rule.description
    for groups, key in (
        (rule.source_asgs, "sourceApplicationSecurityGroups"),
        (rule.destination_asgs, "destinationApplicationSecurityGroups"),
    ):
        if groups:
            props[key] = [{"id": group} for group in groups]
    for values, single, plural, groups in (
        (rule.source_prefixes, "sourceAddressPrefix", "sourceAddressPrefixes", rule.source_asgs),
        (
            rule.destination_prefixes,
            "destinationAddressPrefix",
            "destinationAddressPrefixes",
            rule.destination_asgs,
        ),
        (rule.source_ports, "sourcePortRange", "sourcePortRanges", ()),
        (rule.destination_ports, "destinationPortRange", "destinationPortRanges", ()),
    ):
        if not values and groups:
            continue  # the application security groups stand in for the address prefixes
        if not values:
            raise InvalidInput(f"security rule {rule.name!r} needs at least one value for {single}")
        if len(values) == 1:
            props[single] = values[0]
        else:
            props[plural] = list(values)
    return {"properties": props}


class AzureNetwork:
    """``ports.Network`` on the real ``NetworkManagementClient``."""

    def __init__(
        self,
        settings: Settings,
        *,
        polling_interval: float = 2.0,
        retrier: Retrier | None = None,
        client_for: Callable[[str], Any] | None = None,
    ) -> None:
        self.settings = settings
        self.polling_interval = polling_interval
        self.retrier = retrier or Retrier()
        self._client_for = client_for or (lambda sub: clients.network_client(settings, sub))

    def get_nsg(self, nsg_id: str) -> NetworkSecurityGroup:
        ref = parse_id(nsg_id, _NS, "networkSecurityGroups")
        client = self._client_for(ref.subscription)
        nsg = self.retrier.call(
            f"read NSG {ref.name}", lambda: client.network_security_groups.get(ref.resource_group, ref.name)
        )
        return NetworkSecurityGroup(
            id=str(nsg.id),
            name=str(nsg.name),
            location=str(nsg.location or ""),
            rules=tuple(rule_from_model(r) for r in nsg.security_rules or []),
            default_rules=tuple(rule_from_model(r) for r in nsg.default_security_rules or []),
            tags=dict(nsg.tags or {}),
            nic_ids=tuple(str(n.id) for n in nsg.network_interfaces or [] if n.id),
            subnet_ids=tuple(str(s.id) for s in nsg.subnets or [] if s.id),
        )

    def get_nic(self, nic_id: str) -> NetworkInterface:
        ref = parse_id(nic_id, _NS, "networkInterfaces")
        client = self._client_for(ref.subscription)
        nic = self.retrier.call(
            f"read NIC {ref.name}", lambda: client.network_interfaces.get(ref.resource_group, ref.name)
        )
        configs = nic.ip_configurations or []
        return NetworkInterface(
            id=str(nic.id),
            vm_id=str(nic.virtual_machine.id) if nic.virtual_machine is not None else None,
            nsg_id=str(nic.network_security_group.id) if nic.network_security_group is not None else None,
            subnet_ids=tuple(str(c.subnet.id) for c in configs if c.subnet is not None and c.subnet.id),
            private_ips=tuple(str(c.private_ip_address) for c in configs if c.private_ip_address),
            asg_ids=tuple(dict.fromkeys(g for c in configs for g in _groups(c.application_security_groups))),
        )

    def get_virtual_network(self, vnet_id: str) -> VirtualNetwork:
        """The VNet's address space, peerings (with their remote address space) and what else may add
        to its VirtualNetwork tag (``detectors.servicetags.VirtualNetworks``)."""
        ref = parse_id(vnet_id, _NS, "virtualNetworks")
        client = self._client_for(ref.subscription)
        vnet = self.retrier.call(
            f"read virtual network {ref.name}",
            lambda: client.virtual_networks.get(ref.resource_group, ref.name),
        )
        space = vnet.address_space
        peerings = []
        for peering in vnet.virtual_network_peerings or []:
            remote = peering.remote_address_space
            remote_vnet = peering.remote_virtual_network
            peerings.append(
                VirtualNetworkPeering(
                    name=str(peering.name or ""),
                    state=_text(peering.peering_state),
                    remote_prefixes=tuple(str(p) for p in remote.address_prefixes or [])
                    if remote is not None
                    else None,
                    allow_vnet_access=peering.allow_virtual_network_access is not False,
                    use_remote_gateways=bool(peering.use_remote_gateways),
                    remote_vnet_id=str(remote_vnet.id) if remote_vnet is not None and remote_vnet.id else "",
                    sync_level=_text(getattr(peering, "peering_sync_level", None)),
                )
            )
        subnets = list(vnet.subnets or [])
        return VirtualNetwork(
            id=str(vnet.id),
            name=str(vnet.name),
            address_prefixes=tuple(str(p) for p in getattr(space, "address_prefixes", None) or []),
            peerings=tuple(peerings),
            gateway_subnet=any(str(s.name or "").lower() == "gatewaysubnet" for s in subnets),
            routed_subnets=tuple(str(s.name or "").lower() for s in subnets if s.route_table is not None),
        )

    def get_subnet_nsg(self, subnet_id: str) -> str | None:
        ref = parse_id(subnet_id, _NS, "virtualNetworks", "subnets")
        client = self._client_for(ref.subscription)
        subnet = self.retrier.call(
            f"read subnet {ref.name}/{ref.child}",
            lambda: client.subnets.get(ref.resource_group, ref.name, ref.child),
        )
        nsg = subnet.network_security_group
        return str(nsg.id) if nsg is not None and nsg.id else None

    def list_subnet_nic_ids(self, subnet_id: str) -> tuple[str, ...]:
        """The NICs with an IP configuration in the subnet (``detectors.lockout.SubnetNics``)."""
        ref = parse_id(subnet_id, _NS, "virtualNetworks", "subnets")
        client = self._client_for(ref.subscription)
        subnet = self.retrier.call(
            f"read subnet {ref.name}/{ref.child}",
            lambda: client.subnets.get(ref.resource_group, ref.name, ref.child),
        )
        found: dict[str, str] = {}
        for config in subnet.ip_configurations or []:
            config_id = str(getattr(config, "id", "") or "")
            marker = config_id.lower().find("/ipconfigurations/")
            if marker > 0 and "/networkinterfaces/" in config_id.lower():
                nic_id = config_id[:marker]
                found.setdefault(nic_id.lower(), nic_id)
        return tuple(found.values())

    def put_security_rule(self, nsg_id: str, rule: SecurityRule) -> SecurityRule:
        ref = parse_id(nsg_id, _NS, "networkSecurityGroups")
        client = self._client_for(ref.subscription)
        body = rule_body(rule)

        def put() -> Any:
            return client.security_rules.begin_create_or_update(
                ref.resource_group, ref.name, rule.name, body, polling_interval=self.polling_interval
            ).result()

        # A PUT of a named rule is idempotent, so retrying after a dropped connection is safe.
        return rule_from_model(self.retrier.call(f"write rule {rule.name} in NSG {ref.name}", put))
