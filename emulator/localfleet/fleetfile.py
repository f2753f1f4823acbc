"""The fleet file: a YAML description of the Azure resources the local ARM emulator serves.

::

    subscriptions:
      - id: 00000000-0000-0000-0000-000000000001
        resourceGroups:
          - name: rg-demo
            location: westeurope
            virtualNetworks: [{name: vnet-demo, addressPrefixes: [10.0.0.0/16],
                               subnets: [{name: default, addressPrefix: 10.0.0.0/24, nsg: nsg-demo}]}]
            networkSecurityGroups: [{name: nsg-demo, rules: [{name: deny-ssh, priority: 100, ...}]}]
            networkInterfaces: [{name: vm1-nic, subnet: vnet-demo/default, nsg: nsg-demo}]
            virtualMachines:
              - name: vm1
                os: linux                      # linux | windows
                tags: {autoremediation: enabled}
                nics: [vm1-nic]
                guest: {disks: [{mount: /var, sizeMb: 64, usedPercent: 93}]}   # runs scripts for real
                outcomes: [{exitCode: 0, result: {status: fixed, before: {}, after: {}}}]
              - name: "vm-bench-{index:04d}"   # a compact campaign of many alike VMs
                count: 1000
                outcomes: [{durationSeconds: 2, result: {status: fixed}}]
    faults: [{route: "POST */runCommand", kind: throttle, retryAfter: 1, times: 2}]
    throttling: arm      # ARM's token buckets per subscription; or per kind:
                         # {reads: {capacity: 250, refillPerSecond: 25}, writes: ..., deletes: ...}

Every error names the file and the field, e.g. ``fleet.yaml: subscriptions[0].resourceGroups[0]
.virtualMachines[1].os: must be one of linux, windows``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from autoremediation.errors import InvalidInput

from .throttle import ARM_DEFAULTS, KINDS, BucketSpec

DEMO_FLEET = Path(__file__).resolve().parent / "demo-fleet.yaml"
CAMPAIGN_FLEET = Path(__file__).resolve().parent / "campaign-fleet.yaml"

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._()-]{0,79}$")
_SUBSCRIPTION = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
POWER_STATES = ("running", "stopped", "deallocated", "starting", "stopping", "deallocating")
AGENT_STATUSES = ("Ready", "Not Ready", "Unknown")
SERVICE_STATES = ("active", "inactive", "failed", "broken")
FAULT_KINDS = ("latency", "throttle", "error", "drop", "stuck")
MAX_COUNT = 100_000


class FleetFileError(InvalidInput):
    """The fleet file is malformed; the message names the file and the field."""


@dataclass(frozen=True)
class DiskSpec:
    mount: str
    size_mb: int
    used_percent: float


@dataclass(frozen=True)
class GuestSpec:
    """The guest a Linux VM runs scripts in, when the sandbox is available."""

    disks: tuple[DiskSpec, ...] = ()
    ssh_listening: bool = True
    firewall_drop_ports: tuple[int, ...] = ()
    sshd_stopped: bool = False
    services: tuple[tuple[str, str], ...] = ()  # (unit, state) for the guest's systemctl


@dataclass(frozen=True)
class OutcomeSpec:
    """What a VM answers to a script when it does not run it for real.

    ``match`` picks the outcome by a substring of the script (first match wins, empty matches all).
    ``result`` becomes the ``REMEDIATION_RESULT`` line; after a ``fixed`` run that was not a dry run,
    the VM reports ``already-ok`` with the ``after`` measurements, as a repaired machine would.
    """

    match: str = ""
    exit_code: int = 0
    stdout: str = ""
    stderr: str = ""
    result: Mapping[str, Any] | None = None
    duration_seconds: float = 0.0
    stuck: bool = False


@dataclass(frozen=True)
class VmSpec:
    subscription: str
    resource_group: str
    name: str
    location: str
    os: str
    size: str = "Standard_B2s"
    power_state: str = "running"
    agent_status: str = "Ready"
    tags: Mapping[str, str] = field(default_factory=dict)
    nics: tuple[str, ...] = ()
    guest: GuestSpec | None = None
    outcomes: tuple[OutcomeSpec, ...] = ()


@dataclass(frozen=True)
class SubnetSpec:
    name: str
    address_prefix: str
    nsg: str | None = None
    route_table: str | None = None  # a route table name in the same resource group


@dataclass(frozen=True)
class PeeringSpec:
    name: str
    remote: str  # a VNet name in the same resource group, or a VNet resource id
    remote_prefixes: tuple[str, ...] | None = None  # None: the remote VNet's (when in the fleet)
    state: str = "Connected"
    allow_vnet_access: bool = True
    use_remote_gateways: bool = False


@dataclass(frozen=True)
class VnetSpec:
    subscription: str
    resource_group: str
    name: str
    location: str
    address_prefixes: tuple[str, ...]
    subnets: tuple[SubnetSpec, ...]
    peerings: tuple[PeeringSpec, ...] = ()


@dataclass(frozen=True)
class NsgSpec:
    subscription: str
    resource_group: str
    name: str
    location: str
    rules: tuple[Mapping[str, Any], ...]  # ARM ``properties`` of each rule, plus "name"
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class NicSpec:
    subscription: str
    resource_group: str
    name: str
    location: str
    subnet: str | None  # "vnet/subnet" in the same resource group
    nsg: str | None
    private_ip: str
    asgs: tuple[str, ...] = ()  # application security group names in the same resource group


@dataclass(frozen=True)
class FaultSpec:
    """A fault on every request whose "METHOD path" matches ``route`` (``*`` matches anything)."""

    route: str
    kind: str
    status: int = 503
    retry_after: float = 1.0
    delay_seconds: float = 0.0
    times: int | None = None  # None: every matching call


@dataclass(frozen=True)
class FleetSpec:
    subscriptions: tuple[str, ...]
    resource_groups: tuple[tuple[str, str, str], ...]  # (subscription, name, location)
    vms: tuple[VmSpec, ...]
    vnets: tuple[VnetSpec, ...]
    nsgs: tuple[NsgSpec, ...]
    nics: tuple[NicSpec, ...]
    faults: tuple[FaultSpec, ...] = ()
    now: str | None = None  # the fleet's wall clock at start (default: real time)
    alert_rules: tuple[Any, ...] = ()  # alerting.AlertRuleSpec
    alerts: tuple[Any, ...] = ()  # alerting.AlertSpec
    throttling: Mapping[str, BucketSpec] | None = None  # None: no throttling

    @property
    def subscription(self) -> str:
        return self.subscriptions[0]


class _Reader:
    """Typed access to a YAML node that reports the path of a bad field."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, path: str, message: str) -> FleetFileError:
        return FleetFileError(f"{self.source}: {path}: {message}")

    def mapping(self, value: Any, path: str, allowed: set[str]) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(path, "must be a mapping")
        unknown = sorted(str(k) for k in value if k not in allowed)
        if unknown:
            raise self.fail(path, f"unknown field {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})")
        return value

    def items(self, node: Mapping[str, Any], key: str, path: str) -> list[Any]:
        value = node.get(key, [])
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.fail(f"{path}.{key}", "must be a list")
        return value

    def text(
        self,
        node: Mapping[str, Any],
        key: str,
        path: str,
        default: str | None = None,
        pattern: re.Pattern[str] | None = None,
    ) -> str:
        value = node.get(key, default)
        if value is None:
            raise self.fail(f"{path}.{key}", "is required")
        if not isinstance(value, str):
            raise self.fail(f"{path}.{key}", f"must be a string, not {type(value).__name__}")
        if pattern is not None and not pattern.match(value):
            raise self.fail(f"{path}.{key}", f"{value!r} is not a valid name")
        return value

    def optional_text(self, node: Mapping[str, Any], key: str, path: str) -> str | None:
        if node.get(key) is None:
            return None
        return self.text(node, key, path)

    def choice(
        self, node: Mapping[str, Any], key: str, path: str, default: str, choices: tuple[str, ...]
    ) -> str:
        value = node.get(key, default)
        matched = [c for c in choices if isinstance(value, str) and c.lower() == value.lower()]
        if not matched:
            raise self.fail(f"{path}.{key}", f"must be one of {', '.join(choices)}")
        return matched[0]

    def number(
        self,
        node: Mapping[str, Any],
        key: str,
        path: str,
        default: float,
        minimum: float = 0,
        maximum: float | None = None,
    ) -> float:
        value = node.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(f"{path}.{key}", "must be a number")
        if value < minimum or (maximum is not None and value > maximum):
            bound = f"between {minimum:g} and {maximum:g}" if maximum is not None else f">= {minimum:g}"
            raise self.fail(f"{path}.{key}", f"must be {bound}")
        return float(value)

    def integer(
        self,
        node: Mapping[str, Any],
        key: str,
        path: str,
        default: int,
        minimum: int = 0,
        maximum: int | None = None,
    ) -> int:
        value = node.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(f"{path}.{key}", "must be an integer")
        return int(self.number(node, key, path, default, minimum, maximum))

    def flag(self, node: Mapping[str, Any], key: str, path: str, default: bool) -> bool:
        value = node.get(key, default)
        if not isinstance(value, bool):
            raise self.fail(f"{path}.{key}", "must be true or false")
        return value

    def tags(self, node: Mapping[str, Any], path: str) -> dict[str, str]:
        value = node.get("tags") or {}
        if not isinstance(value, dict):
            raise self.fail(f"{path}.tags", "must be a mapping of names to strings")
        return {str(k): str(v) for k, v in value.items()}


def _outcome(r: _Reader, node: Any, path: str) -> OutcomeSpec:
    allowed = {"match", "exitCode", "stdout", "stderr", "result", "durationSeconds", "stuck"}
    data = r.mapping(node, path, allowed)
    result = data.get("result")
    if result is not None:
        if not isinstance(result, dict):
            raise r.fail(f"{path}.result", "must be a mapping with at least 'status'")
        if result.get("status") not in ("fixed", "already-ok", "not-fixed", "error"):
            raise r.fail(f"{path}.result.status", "must be one of fixed, already-ok, not-fixed, error")
    return OutcomeSpec(
        match=r.text(data, "match", path, ""),
        exit_code=r.integer(data, "exitCode", path, 0, 0, 255),
        stdout=r.text(data, "stdout", path, ""),
        stderr=r.text(data, "stderr", path, ""),
        result=dict(result) if result is not None else None,
        duration_seconds=r.number(data, "durationSeconds", path, 0.0, 0, 5400),
        stuck=r.flag(data, "stuck", path, False),
    )


def _guest(r: _Reader, node: Any, path: str) -> GuestSpec:
    data = r.mapping(node, path, {"disks", "sshListening", "firewallDropPorts", "sshdStopped", "services"})
    disks = []
    for i, item in enumerate(r.items(data, "disks", path)):
        dpath = f"{path}.disks[{i}]"
        disk = r.mapping(item, dpath, {"mount", "sizeMb", "usedPercent"})
        mount = r.text(disk, "mount", dpath)
        if not re.match(r"^(/[A-Za-z0-9._-]+)+$", mount) or ".." in mount.split("/"):
            raise r.fail(f"{dpath}.mount", f"{mount!r} must be an absolute path of plain segments")
        disks.append(
            DiskSpec(
                mount,
                r.integer(disk, "sizeMb", dpath, 64, 8, 4096),
                r.number(disk, "usedPercent", dpath, 50.0, 0, 100),
            )
        )
    ports = r.items(data, "firewallDropPorts", path)
    if not all(isinstance(p, int) and not isinstance(p, bool) and 0 < p < 65536 for p in ports):
        raise r.fail(f"{path}.firewallDropPorts", "must be a list of TCP port numbers")
    services = []
    for i, item in enumerate(r.items(data, "services", path)):
        spath = f"{path}.services[{i}]"
        unit = r.mapping(item, spath, {"name", "state"})
        name = r.text(unit, "name", spath)
        if not re.match(r"^[A-Za-z0-9@._-]{1,64}$", name):
            raise r.fail(f"{spath}.name", f"{name!r} is not a unit name")
        services.append((name, r.choice(unit, "state", spath, "active", SERVICE_STATES)))
    return GuestSpec(
        disks=tuple(disks),
        ssh_listening=r.flag(data, "sshListening", path, True),
        firewall_drop_ports=tuple(ports),
        sshd_stopped=r.flag(data, "sshdStopped", path, False),
        services=tuple(services),
    )


def _rule(r: _Reader, node: Any, path: str) -> dict[str, Any]:
    singles = ("sourceAddressPrefix", "destinationAddressPrefix", "sourcePortRange", "destinationPortRange")
    plurals = (
        "sourceAddressPrefixes",
        "destinationAddressPrefixes",
        "sourcePortRanges",
        "destinationPortRanges",
    )
    groups = ("sourceApplicationSecurityGroups", "destinationApplicationSecurityGroups")
    allowed = {
        "name",
        "priority",
        "direction",
        "access",
        "protocol",
        "description",
        *singles,
        *plurals,
        *groups,
    }
    data = r.mapping(node, path, allowed)
    rule: dict[str, Any] = {
        "name": r.text(data, "name", path, pattern=_NAME),
        "priority": r.integer(data, "priority", path, 1000, 100, 4096),
        "direction": r.choice(data, "direction", path, "Inbound", ("Inbound", "Outbound")),
        "access": r.choice(data, "access", path, "Allow", ("Allow", "Deny")),
        "protocol": r.choice(data, "protocol", path, "*", ("Tcp", "Udp", "Icmp", "Esp", "Ah", "*")),
    }
    if data.get("description"):
        rule["description"] = r.text(data, "description", path)
    for key in groups:
        if key in data:
            # As in ARM: [{id: <application security group id>}]; the group replaces the address prefix.
            rule[key] = [
                {"id": r.text(r.mapping(g, f"{path}.{key}", {"id"}), "id", f"{path}.{key}")}
                for g in r.items(data, key, path)
            ]
    for single, plural in zip(singles, plurals, strict=True):
        if single in data and plural in data:
            raise r.fail(path, f"use either {single} or {plural}, not both")
        group_key = single.replace("AddressPrefix", "ApplicationSecurityGroups")
        if group_key in rule and single not in data and plural not in data:
            continue
        if plural in data:
            values = r.items(data, plural, path)
            rule[plural] = [str(v) for v in values]
        else:
            rule[single] = str(data.get(single, "*"))
    return rule


def _expand_names(r: _Reader, data: Mapping[str, Any], path: str) -> list[str]:
    name = r.text(data, "name", path)
    if "count" not in data:
        if not _NAME.match(name):
            raise r.fail(f"{path}.name", f"{name!r} is not a valid name")
        return [name]
    count = r.integer(data, "count", path, 1, 1, MAX_COUNT)
    if "{index" not in name:
        raise r.fail(f"{path}.name", "with count, the name must hold an {index} pattern, e.g. vm-{index:04d}")
    try:
        names = [name.format(index=i) for i in range(1, count + 1)]
    except (ValueError, KeyError, IndexError) as exc:
        raise r.fail(f"{path}.name", f"bad name pattern: {exc}") from None
    for expanded in names[:1] + names[-1:]:
        if not _NAME.match(expanded):
            raise r.fail(f"{path}.name", f"{expanded!r} is not a valid name")
    return names


def parse_fleet(data: Any, source: str = "fleet file") -> FleetSpec:
    """Validate a loaded fleet document; raise FleetFileError naming the bad field."""
    r = _Reader(source)
    root = r.mapping(
        data, "(top level)", {"subscriptions", "faults", "now", "alertRules", "alerts", "throttling"}
    )
    subs: list[str] = []
    groups: list[tuple[str, str, str]] = []
    vms: list[VmSpec] = []
    vnets: list[VnetSpec] = []
    nsgs: list[NsgSpec] = []
    nics: list[NicSpec] = []
    seen: set[str] = set()

    def unique(kind: str, sub: str, rg: str, name: str, path: str) -> None:
        key = f"{sub}/{rg}/{kind}/{name}".lower()
        if key in seen:
            raise r.fail(path, f"{kind} {name!r} is declared twice in resource group {rg!r}")
        seen.add(key)

    sub_nodes = r.items(root, "subscriptions", "(top level)")
    if not sub_nodes:
        raise r.fail("subscriptions", "declare at least one subscription")
    for si, sub_node in enumerate(sub_nodes):
        spath = f"subscriptions[{si}]"
        sdata = r.mapping(sub_node, spath, {"id", "resourceGroups"})
        sub = r.text(sdata, "id", spath)
        if not _SUBSCRIPTION.match(sub):
            raise r.fail(f"{spath}.id", f"{sub!r} is not a subscription GUID")
        subs.append(sub)
        for gi, group_node in enumerate(r.items(sdata, "resourceGroups", spath)):
            gpath = f"{spath}.resourceGroups[{gi}]"
            allowed = {
                "name",
                "location",
                "virtualMachines",
                "virtualNetworks",
                "networkSecurityGroups",
                "networkInterfaces",
            }
            gdata = r.mapping(group_node, gpath, allowed)
            rg = r.text(gdata, "name", gpath, pattern=_NAME)
            location = r.text(gdata, "location", gpath, "westeurope").replace(" ", "").lower()
            unique("resourceGroup", sub, "", rg, gpath)
            groups.append((sub, rg, location))
            for ni, node in enumerate(r.items(gdata, "networkSecurityGroups", gpath)):
                npath = f"{gpath}.networkSecurityGroups[{ni}]"
                ndata = r.mapping(node, npath, {"name", "rules", "tags", "location"})
                name = r.text(ndata, "name", npath, pattern=_NAME)
                unique("networkSecurityGroup", sub, rg, name, npath)
                rules = tuple(
                    _rule(r, item, f"{npath}.rules[{i}]")
                    for i, item in enumerate(r.items(ndata, "rules", npath))
                )
                names = [rule["name"].lower() for rule in rules]
                if len(set(names)) != len(names):
                    raise r.fail(f"{npath}.rules", "rule names must be unique")
                pairs = [(rule["priority"], rule["direction"]) for rule in rules]
                if len(set(pairs)) != len(pairs):
                    raise r.fail(f"{npath}.rules", "two rules share a priority and direction")
                nsgs.append(
                    NsgSpec(
                        sub, rg, name, r.text(ndata, "location", npath, location), rules, r.tags(ndata, npath)
                    )
                )
            for vi, node in enumerate(r.items(gdata, "virtualNetworks", gpath)):
                vpath = f"{gpath}.virtualNetworks[{vi}]"
                vdata = r.mapping(node, vpath, {"name", "addressPrefixes", "subnets", "location", "peerings"})
                name = r.text(vdata, "name", vpath, pattern=_NAME)
                unique("virtualNetwork", sub, rg, name, vpath)
                subnets = []
                for bi, snode in enumerate(r.items(vdata, "subnets", vpath)):
                    bpath = f"{vpath}.subnets[{bi}]"
                    bdata = r.mapping(snode, bpath, {"name", "addressPrefix", "nsg", "routeTable"})
                    subnets.append(
                        SubnetSpec(
                            r.text(bdata, "name", bpath, pattern=_NAME),
                            r.text(bdata, "addressPrefix", bpath, "10.0.0.0/24"),
                            r.optional_text(bdata, "nsg", bpath),
                            r.optional_text(bdata, "routeTable", bpath),
                        )
                    )
                peerings = []
                for pi, pnode in enumerate(r.items(vdata, "peerings", vpath)):
                    ppath = f"{vpath}.peerings[{pi}]"
                    pdata = r.mapping(
                        pnode,
                        ppath,
                        {
                            "name",
                            "remoteVirtualNetwork",
                            "remoteAddressPrefixes",
                            "peeringState",
                            "allowVirtualNetworkAccess",
                            "useRemoteGateways",
                        },
                    )
                    remote_prefixes = (
                        tuple(str(p) for p in r.items(pdata, "remoteAddressPrefixes", ppath))
                        if "remoteAddressPrefixes" in pdata
                        else None
                    )
                    peerings.append(
                        PeeringSpec(
                            r.text(pdata, "name", ppath, pattern=_NAME),
                            r.text(pdata, "remoteVirtualNetwork", ppath),
                            remote_prefixes,
                            r.choice(
                                pdata,
                                "peeringState",
                                ppath,
                                "Connected",
                                ("Connected", "Initiated", "Disconnected"),
                            ),
                            r.flag(pdata, "allowVirtualNetworkAccess", ppath, True),
                            r.flag(pdata, "useRemoteGateways", ppath, False),
                        )
                    )
                prefixes = tuple(str(p) for p in r.items(vdata, "addressPrefixes", vpath)) or ("10.0.0.0/16",)
                vnets.append(
                    VnetSpec(
                        sub,
                        rg,
                        name,
                        r.text(vdata, "location", vpath, location),
                        prefixes,
                        tuple(subnets),
                        tuple(peerings),
                    )
                )
            for ni, node in enumerate(r.items(gdata, "networkInterfaces", gpath)):
                npath = f"{gpath}.networkInterfaces[{ni}]"
                ndata = r.mapping(
                    node,
                    npath,
                    {"name", "subnet", "nsg", "privateIp", "location", "applicationSecurityGroups"},
                )
                name = r.text(ndata, "name", npath, pattern=_NAME)
                unique("networkInterface", sub, rg, name, npath)
                nics.append(
                    NicSpec(
                        sub,
                        rg,
                        name,
                        r.text(ndata, "location", npath, location),
                        r.optional_text(ndata, "subnet", npath),
                        r.optional_text(ndata, "nsg", npath),
                        r.text(ndata, "privateIp", npath, f"10.0.0.{4 + ni}"),
                        tuple(str(a) for a in r.items(ndata, "applicationSecurityGroups", npath)),
                    )
                )
            for vi, node in enumerate(r.items(gdata, "virtualMachines", gpath)):
                vpath = f"{gpath}.virtualMachines[{vi}]"
                allowed = {
                    "name",
                    "count",
                    "os",
                    "size",
                    "powerState",
                    "agentStatus",
                    "tags",
                    "location",
                    "nics",
                    "guest",
                    "outcomes",
                }
                vdata = r.mapping(node, vpath, allowed)
                os_type = r.choice(vdata, "os", vpath, "linux", ("linux", "windows"))
                guest = _guest(r, vdata["guest"], f"{vpath}.guest") if vdata.get("guest") else None
                if guest is not None and os_type == "windows":
                    raise r.fail(f"{vpath}.guest", "only Linux VMs run scripts in a guest sandbox")
                outcomes = tuple(
                    _outcome(r, item, f"{vpath}.outcomes[{i}]")
                    for i, item in enumerate(r.items(vdata, "outcomes", vpath))
                )
                nic_names = tuple(str(n) for n in r.items(vdata, "nics", vpath))
                base: dict[str, Any] = {
                    "subscription": sub,
                    "resource_group": rg,
                    "location": r.text(vdata, "location", vpath, location),
                    "os": os_type,
                    "size": r.text(vdata, "size", vpath, "Standard_B2s"),
                    "power_state": r.choice(vdata, "powerState", vpath, "running", POWER_STATES),
                    "agent_status": r.choice(vdata, "agentStatus", vpath, "Ready", AGENT_STATUSES),
                    "tags": r.tags(vdata, vpath),
                    "guest": guest,
                    "outcomes": outcomes,
                }
                names = _expand_names(r, vdata, vpath)
                if nic_names and len(names) > 1:
                    raise r.fail(f"{vpath}.nics", "VMs declared with count cannot share NICs")
                for name in names:
                    unique("virtualMachine", sub, rg, name, vpath)
                    vms.append(VmSpec(name=name, nics=nic_names, **base))
    _check_references(r, vms, vnets, nsgs, nics)
    faults = tuple(
        _fault(r, node, f"faults[{i}]") for i, node in enumerate(r.items(root, "faults", "(top level)"))
    )
    from .alerting import parse_alerting

    now, alert_rules, alerts = parse_alerting(r, root, subs)
    return FleetSpec(
        tuple(subs),
        tuple(groups),
        tuple(vms),
        tuple(vnets),
        tuple(nsgs),
        tuple(nics),
        faults,
        now,
        alert_rules,
        alerts,
        _throttling(r, root.get("throttling")),
    )


def _throttling(r: _Reader, node: Any) -> Mapping[str, BucketSpec] | None:
    if node is None:
        return None
    if node == "arm":
        return dict(ARM_DEFAULTS)
    path = "throttling"
    data = r.mapping(node, path, set(KINDS))
    limits = {}
    for kind in KINDS:
        if kind not in data:
            continue
        spec = r.mapping(data[kind], f"{path}.{kind}", {"capacity", "refillPerSecond"})
        default = ARM_DEFAULTS[kind]
        limits[kind] = BucketSpec(
            capacity=r.integer(spec, "capacity", f"{path}.{kind}", default.capacity, 1, 1_000_000),
            refill_per_second=r.number(
                spec, "refillPerSecond", f"{path}.{kind}", default.refill_per_second, 0.001, 1_000_000
            ),
        )
    return limits


def _check_references(
    r: _Reader, vms: list[VmSpec], vnets: list[VnetSpec], nsgs: list[NsgSpec], nics: list[NicSpec]
) -> None:
    nsg_keys = {(n.subscription, n.resource_group.lower(), n.name.lower()) for n in nsgs}
    subnet_keys = {
        (v.subscription, v.resource_group.lower(), f"{v.name}/{s.name}".lower())
        for v in vnets
        for s in v.subnets
    }
    nic_keys = {(n.subscription, n.resource_group.lower(), n.name.lower()) for n in nics}
    for vnet in vnets:
        for subnet in vnet.subnets:
            if (
                subnet.nsg
                and (vnet.subscription, vnet.resource_group.lower(), subnet.nsg.lower()) not in nsg_keys
            ):
                raise r.fail(
                    f"virtualNetwork {vnet.name}.subnets.{subnet.name}.nsg",
                    f"no network security group {subnet.nsg!r} in resource group {vnet.resource_group!r}",
                )
    for nic in nics:
        key = (nic.subscription, nic.resource_group.lower())
        if nic.nsg and (*key, nic.nsg.lower()) not in nsg_keys:
            raise r.fail(
                f"networkInterface {nic.name}.nsg",
                f"no network security group {nic.nsg!r} in resource group {nic.resource_group!r}",
            )
        if nic.subnet and (*key, nic.subnet.lower()) not in subnet_keys:
            raise r.fail(
                f"networkInterface {nic.name}.subnet",
                f"no subnet {nic.subnet!r} (write it as vnet/subnet) in resource group "
                f"{nic.resource_group!r}",
            )
    owners: dict[tuple[str, str, str], str] = {}
    for vm in vms:
        for nic_name in vm.nics:
            nic_key = (vm.subscription, vm.resource_group.lower(), nic_name.lower())
            if nic_key not in nic_keys:
                raise r.fail(
                    f"virtualMachine {vm.name}.nics",
                    f"no network interface {nic_name!r} in resource group {vm.resource_group!r}",
                )
            if nic_key in owners:
                raise r.fail(
                    f"virtualMachine {vm.name}.nics",
                    f"network interface {nic_name!r} is attached to {owners[nic_key]!r} already",
                )
            owners[nic_key] = vm.name


def _fault(r: _Reader, node: Any, path: str) -> FaultSpec:
    data = r.mapping(node, path, {"route", "kind", "status", "retryAfter", "delaySeconds", "times"})
    kind = r.choice(data, "kind", path, "error", FAULT_KINDS)
    times = data.get("times")
    if times is not None:
        times = r.integer(data, "times", path, 1, 1)
    default_status = 429 if kind == "throttle" else 503
    status = r.integer(data, "status", path, default_status, 400, 599)
    if kind == "throttle" and status != 429:
        raise r.fail(f"{path}.status", "a throttle fault answers 429")
    return FaultSpec(
        route=r.text(data, "route", path),
        kind=kind,
        status=status,
        retry_after=r.number(data, "retryAfter", path, 1.0, 0, 3600),
        delay_seconds=r.number(data, "delaySeconds", path, 0.0, 0, 60),
        times=times,
    )


def parse_fault(data: Any, source: str = "fault") -> FaultSpec:
    """One fault in the fleet file's spelling (``route``, ``kind``, ``status``, ``retryAfter``, ...)."""
    return _fault(_Reader(source), data, source)


def load_fleet(path: str | Path | None = None) -> FleetSpec:
    """Read and validate a fleet file; the demo fleet when ``path`` is None."""
    target = Path(path) if path is not None else DEMO_FLEET
    try:
        text = target.read_text(encoding="utf-8")
    except OSError as exc:
        raise FleetFileError(f"{target}: cannot read the fleet file: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise FleetFileError(f"{target}: not valid YAML: {exc}") from None
    return parse_fleet(data, target.name)
