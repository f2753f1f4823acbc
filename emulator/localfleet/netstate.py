"""The emulated network: NSGs with their rules, NICs, virtual networks and subnets, in ARM's JSON."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .arm import COMPUTE, NETWORK, ArmError, Scope, guid, rg_id
from .fleetfile import FleetSpec, NsgSpec, VnetSpec


class NetworkResources:
    """Network resources of a fleet, kept as the JSON ARM returns and updated in place by PUTs."""

    def __init__(self, spec: FleetSpec, scope: Scope) -> None:
        self.scope = scope
        self.nsgs: dict[str, dict[str, Any]] = {}
        for nsg_spec in spec.nsgs:
            nsg = self._nsg_json(nsg_spec)
            self.nsgs[nsg["id"].lower()] = nsg
        self.vnets: dict[str, dict[str, Any]] = {}
        for vnet in spec.vnets:
            base = rg_id(vnet.subscription, vnet.resource_group)
            vnet_id = f"{base}/providers/{NETWORK}/virtualNetworks/{vnet.name}"
            subnets = []
            for subnet in vnet.subnets:
                props: dict[str, Any] = {
                    "addressPrefix": subnet.address_prefix,
                    "provisioningState": "Succeeded",
                    "ipConfigurations": [],
                }
                if subnet.route_table:
                    props["routeTable"] = {
                        "id": f"{base}/providers/{NETWORK}/routeTables/{subnet.route_table}"
                    }
                if subnet.nsg:
                    nsg_id = f"{base}/providers/{NETWORK}/networkSecurityGroups/{subnet.nsg}"
                    props["networkSecurityGroup"] = {"id": self.nsgs[nsg_id.lower()]["id"]}
                    self.nsgs[nsg_id.lower()]["properties"]["subnets"].append(
                        {"id": f"{vnet_id}/subnets/{subnet.name}"}
                    )
                subnets.append(
                    {
                        "name": subnet.name,
                        "id": f"{vnet_id}/subnets/{subnet.name}",
                        "type": f"{NETWORK}/virtualNetworks/subnets",
                        "etag": 'W/"1"',
                        "properties": props,
                    }
                )
            self.vnets[vnet_id.lower()] = {
                "name": vnet.name,
                "id": vnet_id,
                "type": f"{NETWORK}/virtualNetworks",
                "location": vnet.location,
                "etag": 'W/"1"',
                "tags": {},
                "properties": {
                    "addressSpace": {"addressPrefixes": list(vnet.address_prefixes)},
                    "subnets": subnets,
                    "provisioningState": "Succeeded",
                    "resourceGuid": guid(vnet_id),
                    "virtualNetworkPeerings": [],
                },
            }
        for vnet in spec.vnets:
            self._add_peerings(vnet)
        self.nics: dict[str, dict[str, Any]] = {}
        owners = {
            f"{rg_id(v.subscription, v.resource_group)}/providers/{NETWORK}/networkInterfaces/{n}".lower(): (
                f"{rg_id(v.subscription, v.resource_group)}/providers/{COMPUTE}/virtualMachines/{v.name}"
            )
            for v in spec.vms
            for n in v.nics
        }
        for nic in spec.nics:
            base = rg_id(nic.subscription, nic.resource_group)
            nic_id = f"{base}/providers/{NETWORK}/networkInterfaces/{nic.name}"
            ipconfig: dict[str, Any] = {
                "privateIPAddress": nic.private_ip,
                "privateIPAllocationMethod": "Dynamic",
                "primary": True,
                "provisioningState": "Succeeded",
            }
            if nic.asgs:
                ipconfig["applicationSecurityGroups"] = [
                    {"id": f"{base}/providers/{NETWORK}/applicationSecurityGroups/{name}"}
                    for name in nic.asgs
                ]
            if nic.subnet:
                vnet_name, _, subnet_name = nic.subnet.partition("/")
                subnet_json = self.find_subnet(
                    f"{base}/providers/{NETWORK}/virtualNetworks/{vnet_name}/subnets/{subnet_name}"
                )
                ipconfig["subnet"] = {"id": subnet_json["id"]}
                subnet_json["properties"]["ipConfigurations"].append(
                    {"id": f"{nic_id}/ipConfigurations/ipconfig1"}
                )
            props = {
                "ipConfigurations": [
                    {
                        "name": "ipconfig1",
                        "id": f"{nic_id}/ipConfigurations/ipconfig1",
                        "type": f"{NETWORK}/networkInterfaces/ipConfigurations",
                        "properties": ipconfig,
                    }
                ],
                "provisioningState": "Succeeded",
                "resourceGuid": guid(nic_id),
                "primary": True,
            }
            if nic.nsg:
                nsg = self.nsgs[f"{base}/providers/{NETWORK}/networkSecurityGroups/{nic.nsg}".lower()]
                props["networkSecurityGroup"] = {"id": nsg["id"]}
                nsg["properties"]["networkInterfaces"].append({"id": nic_id})
            owner = owners.get(nic_id.lower())
            if owner is not None:
                props["virtualMachine"] = {"id": owner}
            self.nics[nic_id.lower()] = {
                "name": nic.name,
                "id": nic_id,
                "type": f"{NETWORK}/networkInterfaces",
                "location": nic.location,
                "etag": 'W/"1"',
                "tags": {},
                "properties": props,
            }

    def _add_peerings(self, spec: VnetSpec) -> None:
        """Peerings as ARM lists them inline in the VNet, with the remote VNet's address space."""
        base = rg_id(spec.subscription, spec.resource_group)
        vnet = self.vnets[f"{base}/providers/{NETWORK}/virtualNetworks/{spec.name}".lower()]
        for peering in spec.peerings:
            remote_id = (
                peering.remote
                if peering.remote.startswith("/")
                else f"{base}/providers/{NETWORK}/virtualNetworks/{peering.remote}"
            )
            remote = self.vnets.get(remote_id.lower())
            prefixes = peering.remote_prefixes
            if prefixes is None and remote is not None:
                prefixes = tuple(remote["properties"]["addressSpace"]["addressPrefixes"])
            props: dict[str, Any] = {
                "peeringState": peering.state,
                "peeringSyncLevel": "FullyInSync",
                "remoteVirtualNetwork": {"id": remote["id"] if remote is not None else remote_id},
                "allowVirtualNetworkAccess": peering.allow_vnet_access,
                "allowForwardedTraffic": False,
                "allowGatewayTransit": False,
                "useRemoteGateways": peering.use_remote_gateways,
                "provisioningState": "Succeeded",
            }
            if prefixes is not None:
                props["remoteAddressSpace"] = {"addressPrefixes": list(prefixes)}
                props["remoteVirtualNetworkAddressSpace"] = {"addressPrefixes": list(prefixes)}
            vnet["properties"]["virtualNetworkPeerings"].append(
                {
                    "name": peering.name,
                    "id": f"{vnet['id']}/virtualNetworkPeerings/{peering.name}",
                    "etag": 'W/"1"',
                    "type": f"{NETWORK}/virtualNetworks/virtualNetworkPeerings",
                    "properties": props,
                }
            )

    def find_subnet(self, subnet_id: str) -> dict[str, Any]:
        vnet_id, _, name = subnet_id.rpartition("/subnets/")
        vnet = self.vnets.get(vnet_id.lower())
        if vnet is not None:
            for subnet in vnet["properties"]["subnets"]:
                if subnet["name"].lower() == name.lower():
                    return subnet
        raise ArmError(404, "NotFound", f"Resource {subnet_id} not found.")

    def _get(
        self, table: dict[str, dict[str, Any]], sub: str, rg: str, kind: str, name: str
    ) -> dict[str, Any]:
        self.scope.check_group(sub, rg)
        key = f"{rg_id(sub, rg)}/providers/{NETWORK}/{kind}/{name}".lower()
        resource = table.get(key)
        if resource is None:
            raise ArmError(
                404,
                "ResourceNotFound",
                f"The Resource '{NETWORK}/{kind}/{name}' under resource group '{rg}' was not found.",
            )
        return resource

    def _nsg_json(self, spec: NsgSpec) -> dict[str, Any]:
        base = rg_id(spec.subscription, spec.resource_group)
        nsg_id = f"{base}/providers/{NETWORK}/networkSecurityGroups/{spec.name}"
        rules = [self._rule_json(nsg_id, dict(rule)) for rule in spec.rules]
        return {
            "name": spec.name,
            "id": nsg_id,
            "type": f"{NETWORK}/networkSecurityGroups",
            "location": spec.location,
            "etag": 'W/"1"',
            "tags": dict(spec.tags),
            "properties": {
                "securityRules": rules,
                "defaultSecurityRules": _default_rules(nsg_id),
                "networkInterfaces": [],
                "subnets": [],
                "provisioningState": "Succeeded",
                "resourceGuid": guid(nsg_id),
            },
        }

    @staticmethod
    def _rule_json(nsg_id: str, props: dict[str, Any], kind: str = "securityRules") -> dict[str, Any]:
        name = props.pop("name")
        props.setdefault("provisioningState", "Succeeded")
        for single, plural in (
            ("sourceAddressPrefix", "sourceAddressPrefixes"),
            ("destinationAddressPrefix", "destinationAddressPrefixes"),
            ("sourcePortRange", "sourcePortRanges"),
            ("destinationPortRange", "destinationPortRanges"),
        ):
            props.setdefault(plural, [])
            groups = single.replace("AddressPrefix", "ApplicationSecurityGroups")
            if not props[plural] and not props.get(groups):
                props.setdefault(single, "*")
        return {
            "name": name,
            "id": f"{nsg_id}/{kind}/{name}",
            "etag": 'W/"1"',
            "type": f"{NETWORK}/networkSecurityGroups/{kind}",
            "properties": props,
        }

    def nsg(self, sub: str, rg: str, name: str) -> dict[str, Any]:
        return self._get(self.nsgs, sub, rg, "networkSecurityGroups", name)

    def nic(self, sub: str, rg: str, name: str) -> dict[str, Any]:
        return self._get(self.nics, sub, rg, "networkInterfaces", name)

    def vnet(self, sub: str, rg: str, name: str) -> dict[str, Any]:
        return self._get(self.vnets, sub, rg, "virtualNetworks", name)

    def put_rule(
        self, nsg: dict[str, Any], name: str, body: Mapping[str, Any]
    ) -> tuple[dict[str, Any], bool]:
        props = body.get("properties")
        if not isinstance(props, dict):
            raise ArmError(400, "InvalidRequestFormat", "Cannot parse the request: 'properties' is missing.")
        rule_props = {k: v for k, v in props.items() if k != "provisioningState"}
        checks = (("priority", int), ("direction", str), ("access", str), ("protocol", str))
        for key, kind in checks:
            if not isinstance(rule_props.get(key), kind) or isinstance(rule_props.get(key), bool):
                raise ArmError(
                    400,
                    "SecurityRuleInvalidParameter" if key != "priority" else "SecurityRuleInvalidPriority",
                    f"Security rule {name} has an invalid or missing '{key}'.",
                )
        if not 100 <= rule_props["priority"] <= 4096:
            raise ArmError(
                400,
                "SecurityRuleInvalidPriority",
                f"Security rule {name} has invalid Priority. Value provided: {rule_props['priority']}. "
                "Allowed range 100-4096.",
            )
        if rule_props["direction"] not in ("Inbound", "Outbound") or rule_props["access"] not in (
            "Allow",
            "Deny",
        ):
            raise ArmError(
                400,
                "SecurityRuleInvalidParameter",
                f"Security rule {name} has an invalid direction or access.",
            )
        rules: list[dict[str, Any]] = nsg["properties"]["securityRules"]
        for other in rules:
            same_slot = (
                other["properties"]["priority"] == rule_props["priority"]
                and other["properties"]["direction"] == rule_props["direction"]
            )
            if same_slot and other["name"].lower() != name.lower():
                raise ArmError(
                    400,
                    "SecurityRuleConflict",
                    f"Security rule {name} conflicts with rule {other['name']}. Rules cannot have the "
                    "same Priority and Direction.",
                )
        rule = self._rule_json(nsg["id"], {"name": name, **rule_props})
        created = True
        for index, other in enumerate(rules):
            if other["name"].lower() == name.lower():
                rules[index] = rule
                created = False
                break
        else:
            rules.append(rule)
        nsg["etag"] = f'W/"{int(nsg["etag"][3:-1]) + 1}"'
        return rule, created

    def put_nsg(self, sub: str, rg: str, name: str, body: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
        self.scope.check_group(sub, rg)
        key = f"{rg_id(sub, rg)}/providers/{NETWORK}/networkSecurityGroups/{name}".lower()
        nsg = self.nsgs.get(key)
        created = nsg is None
        if nsg is None:
            location = body.get("location") or self.scope.location(sub, rg)
            nsg = self._nsg_json(NsgSpec(sub, rg, name, str(location), ()))
            self.nsgs[key] = nsg
        props = body.get("properties") or {}
        if "securityRules" in props:
            previous = list(nsg["properties"]["securityRules"])
            nsg["properties"]["securityRules"] = []
            try:
                for rule in props.get("securityRules") or []:
                    if not isinstance(rule, dict) or not isinstance(rule.get("name"), str):
                        raise ArmError(400, "InvalidRequestFormat", "Each security rule needs a name.")
                    self.put_rule(nsg, rule["name"], rule)
            except ArmError:
                nsg["properties"]["securityRules"] = previous
                raise
        if isinstance(body.get("tags"), dict):
            nsg["tags"] = {str(k): str(v) for k, v in body["tags"].items()}
        return nsg, created


def _default_rules(nsg_id: str) -> list[dict[str, Any]]:
    rows = (
        (
            "AllowVnetInBound",
            65000,
            "Inbound",
            "Allow",
            "VirtualNetwork",
            "VirtualNetwork",
            "Allow inbound traffic from all VMs in VNET",
        ),
        (
            "AllowAzureLoadBalancerInBound",
            65001,
            "Inbound",
            "Allow",
            "AzureLoadBalancer",
            "*",
            "Allow inbound traffic from azure load balancer",
        ),
        ("DenyAllInBound", 65500, "Inbound", "Deny", "*", "*", "Deny all inbound traffic"),
        (
            "AllowVnetOutBound",
            65000,
            "Outbound",
            "Allow",
            "VirtualNetwork",
            "VirtualNetwork",
            "Allow outbound traffic from all VMs to all VMs in VNET",
        ),
        (
            "AllowInternetOutBound",
            65001,
            "Outbound",
            "Allow",
            "*",
            "Internet",
            "Allow outbound traffic from all VMs to Internet",
        ),
        ("DenyAllOutBound", 65500, "Outbound", "Deny", "*", "*", "Deny all outbound traffic"),
    )
    return [
        NetworkResources._rule_json(
            nsg_id,
            {
                "name": name,
                "priority": priority,
                "direction": direction,
                "access": access,
                "protocol": "*",
                "sourceAddressPrefix": source,
                "destinationAddressPrefix": dest,
                "sourcePortRange": "*",
                "destinationPortRange": "*",
                "description": text,
            },
            kind="defaultSecurityRules",
        )
        for name, priority, direction, access, source, dest, text in rows
    ]
