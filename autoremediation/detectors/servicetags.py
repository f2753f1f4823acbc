"""Service tags as the NSG evaluator needs them: ``VirtualNetwork`` of a subnet read from ARM, other
tags from Microsoft's published Service Tags file when the operator configures one.

``VirtualNetwork`` (see :mod:`.addresses` for Azure's definition) is built from one read of the VNet
resource: its ``addressSpace``, and for every peering in the ``Connected`` state that allows virtual
network access its ``remoteAddressSpace`` (the remote VNet itself is never read, so a peer in another
subscription costs nothing). The tag is complete only when nothing else can add to it: no
``GatewaySubnet`` (no on-premises or gateway-connected address space), no peering using the remote
gateway, no route table on the subnet (no user-defined route prefixes), and every peering read. A
VNet that cannot be read (no permission, another subscription, gone) leaves the tag incomplete, with
the reason in the evidence.

The Service Tags file is the JSON Microsoft publishes ("Azure IP Ranges and Service Tags", the same
shape as ``az network list-service-tags``): ``{"values": [{"name": ..., "properties":
{"addressPrefixes": [...]}}]}``. Its tags are taken as complete expansions.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from ..errors import CloudError, InvalidInput, NotFound
from ..ports import Network, VirtualNetwork
from ..resources import normalize
from .addresses import HOST_ADDRESS, VIRTUAL_NETWORK, TagAddresses, network

_VIRTUAL_TAGS = frozenset({"virtualnetwork", "internet", "azureloadbalancer"})


@runtime_checkable
class VirtualNetworks(Protocol):
    """What the network adapter offers beyond ``ports.Network`` to resolve ``VirtualNetwork``."""

    def get_virtual_network(self, vnet_id: str) -> VirtualNetwork:
        """The VNet with its address space and peerings; raises NotFound / CloudError."""
        ...


def virtual_network_tag(vnet: VirtualNetwork, subnet_name: str = "") -> TagAddresses:
    """The VirtualNetwork tag as seen from one subnet of ``vnet``."""
    prefixes = [HOST_ADDRESS]
    unknown: list[str] = []
    for text in vnet.address_prefixes:
        net = network(text)
        if net is None:
            unknown.append(f"VirtualNetwork: address prefix {text[:60]!r} of VNet {vnet.name} is not a CIDR")
        else:
            prefixes.append(net)
    for peering in vnet.peerings:
        if not peering.allow_vnet_access:
            continue  # Azure leaves the peer out of VirtualNetwork when virtual network access is off
        if peering.state.lower() != "connected":
            unknown.append(f"VirtualNetwork: peering {peering.name} of VNet {vnet.name} is {peering.state}")
            continue
        if peering.sync_level and peering.sync_level.lower() != "fullyinsync":
            # The remote address space changed and the peering was not synced: what the peering
            # lists may not be what Azure now counts.
            unknown.append(f"VirtualNetwork: peering {peering.name} is {peering.sync_level}")
        if peering.remote_prefixes is None:
            unknown.append(f"VirtualNetwork: the remote address space of peering {peering.name} is unknown")
            continue
        for text in peering.remote_prefixes:
            net = network(text)
            if net is None:
                unknown.append(f"VirtualNetwork: remote prefix {text[:60]!r} of peering {peering.name}")
            else:
                prefixes.append(net)
        if peering.use_remote_gateways:
            unknown.append(
                f"VirtualNetwork: peering {peering.name} uses the remote gateway, whose connected address "
                "space is not read"
            )
    if vnet.gateway_subnet:
        unknown.append(
            f"VirtualNetwork: VNet {vnet.name} has a GatewaySubnet; address space connected through a "
            "gateway is not read"
        )
    if subnet_name and subnet_name.lower() in vnet.routed_subnets:
        unknown.append(
            f"VirtualNetwork: subnet {subnet_name} has a route table; user-defined route prefixes are "
            "not read"
        )
    return TagAddresses(tuple(dict.fromkeys(prefixes)), not unknown, tuple(unknown))


def load_service_tags(path: str | Path) -> dict[str, TagAddresses]:
    """Tag name (lower case) -> complete expansion, from a Service Tags JSON file. Raises InvalidInput."""
    where = f"service tags file {path}"
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidInput(f"{where} cannot be read: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise InvalidInput(f"{where} is not JSON: {exc}") from None
    values = data.get("values") if isinstance(data, Mapping) else None
    if not isinstance(values, list):
        raise InvalidInput(f"{where} has no 'values' list (expected Microsoft's Service Tags JSON)")
    tags: dict[str, TagAddresses] = {}
    for index, entry in enumerate(values):
        name = entry.get("name") if isinstance(entry, Mapping) else None
        props = entry.get("properties") if isinstance(entry, Mapping) else None
        prefixes = props.get("addressPrefixes") if isinstance(props, Mapping) else None
        if not isinstance(name, str) or not isinstance(prefixes, list):
            raise InvalidInput(f"{where}: values[{index}] needs a name and properties.addressPrefixes")
        if name.lower() in _VIRTUAL_TAGS:
            continue  # these depend on the VNet, never on a file
        tags[name.lower()] = TagAddresses.exact(prefixes, f"tag {name} in {where}")
    return tags


@dataclass
class TagResolver:
    """Service tags per subnet for one detection or one fix, each VNet read once."""

    network: Network
    service_tags: Mapping[str, TagAddresses] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    _vnets: dict[str, TagAddresses | VirtualNetwork] = field(default_factory=dict)

    def for_subnet(self, subnet_id: str | None) -> dict[str, TagAddresses]:
        tags = dict(self.service_tags)
        if subnet_id:
            tags[VIRTUAL_NETWORK] = self._virtual_network(subnet_id)
        return tags

    def _virtual_network(self, subnet_id: str) -> TagAddresses:
        vnet_id, _, subnet_name = subnet_id.rstrip("/").rpartition("/subnets/")
        key = normalize(vnet_id)
        if key not in self._vnets:
            self._vnets[key] = self._read(vnet_id)
        known = self._vnets[key]
        if isinstance(known, TagAddresses):
            return known
        return virtual_network_tag(known, subnet_name)

    def _read(self, vnet_id: str) -> TagAddresses | VirtualNetwork:
        name = vnet_id.rpartition("/")[2]
        if not isinstance(self.network, VirtualNetworks):
            # Not a production path (the Azure adapter reads VNets): uncertain, without a note.
            why = "VirtualNetwork: the network adapter cannot read virtual networks"
            return TagAddresses((HOST_ADDRESS,), False, (why,))
        try:
            return self.network.get_virtual_network(vnet_id)
        except NotFound:
            problem = f"VNet {name} was not found"
        except CloudError as exc:
            if exc.status not in (401, 403):
                raise  # throttling and outages are retried by the caller, not guessed around
            problem = f"VNet {name} cannot be read (HTTP {exc.status}: no permission or another tenant)"
        why = f"VirtualNetwork: {problem}, so only the host address 168.63.129.16 is known to be in it"
        self.notes.append(why)
        return TagAddresses((HOST_ADDRESS,), False, (why,))
