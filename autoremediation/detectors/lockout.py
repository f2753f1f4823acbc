"""The ``nsg-lockout`` detector: after an NSG (or NSG rule) write, is any VM it protects cut off from
its management sources on SSH (Linux, TCP 22) or RDP (Windows, TCP 3389)?

Event Grid and activity-log signals only name the NSG, so the detector reads it from ARM, finds the
VMs behind it (NICs it is attached to, and NICs in the subnets it is attached to), and evaluates the
full inbound path of each of their NICs (subnet NSG, then NIC NSG) with :mod:`.nsg`.

A VM is reported when some management source cannot reach its management port through any of its
NICs. Nothing is reported for a VM that is reachable; a note says why.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from ..errors import CloudError, InvalidInput, NotFound
from ..ports import Compute, Network, NetworkInterface, NetworkSecurityGroup, VmFacts
from ..resources import normalize
from ..settings import check_management_sources
from ..signals.model import Signal
from .addresses import TagAddresses
from .findings import DetectionResult, Finding
from .nsg import Flow, Verdict, evaluate_path, source_pieces
from .servicetags import TagResolver

CONDITION = "nsg-lockout"
MANAGEMENT_PORTS: Mapping[str, int] = {"linux": 22, "windows": 3389}

_NSG_ID = re.compile(
    r"^(/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Network/networkSecurityGroups/[^/]+)"
    r"(?:/securityRules/[^/]+)?/?$",
    re.IGNORECASE,
)


@runtime_checkable
class SubnetNics(Protocol):
    """What the network adapter offers beyond ``ports.Network`` to follow a subnet association."""

    def list_subnet_nic_ids(self, subnet_id: str) -> tuple[str, ...]:
        """Ids of the NICs with an IP configuration in the subnet; raises NotFound."""
        ...


def nsg_ids_of(signal: Signal) -> tuple[str, ...]:
    """The NSGs a signal is about (an NSG id or an NSG rule id), first-named first, without repeats."""
    found: dict[str, str] = {}
    for candidate in (signal.resource_id, *signal.resources):
        match = _NSG_ID.match(candidate.strip()) if isinstance(candidate, str) else None
        if match:
            found.setdefault(normalize(match[1]), match[1])
    return tuple(found.values())


def management_port(os_type: str) -> int:
    try:
        return MANAGEMENT_PORTS[os_type]
    except KeyError:
        raise InvalidInput(f"no management port is known for OS type {os_type!r}") from None


def check_sources(sources: Sequence[str]) -> tuple[str, ...]:
    """The management sources, each checked to be ``*``, a CIDR, an address or a service tag."""
    if isinstance(sources, str):
        raise InvalidInput("management sources must be a list, not one string")
    cleaned = tuple(dict.fromkeys(s.strip() for s in sources if isinstance(s, str) and s.strip()))
    if not cleaned:
        raise InvalidInput("no management sources are configured (REMEDIATION_MANAGEMENT_SOURCES)")
    for source in cleaned:
        source_pieces(source)
    check_management_sources(cleaned)
    return cleaned


@dataclass
class _Lookup:
    """Reads of one detection, each made once."""

    network: Network
    tags: TagResolver
    nsgs: dict[str, NetworkSecurityGroup | None] = field(default_factory=dict)
    nics: dict[str, NetworkInterface | None] = field(default_factory=dict)
    subnet_nsg_ids: dict[str, str | None] = field(default_factory=dict)
    # Parts the app may not read (HTTP 401/403: no role there, another tenant): id -> why.
    forbidden: dict[str, str] = field(default_factory=dict)

    def nsg(self, nsg_id: str | None) -> NetworkSecurityGroup | None:
        if not nsg_id:
            return None
        key = normalize(nsg_id)
        if key not in self.nsgs:
            try:
                self.nsgs[key] = self.network.get_nsg(nsg_id)
            except NotFound:
                self.nsgs[key] = None
            except CloudError as error:
                self.nsgs[key] = None
                self.forbidden[key] = _unreadable("NSG", nsg_id, error)
        return self.nsgs[key]

    def nic(self, nic_id: str) -> NetworkInterface | None:
        key = normalize(nic_id)
        if key not in self.nics:
            try:
                self.nics[key] = self.network.get_nic(nic_id)
            except NotFound:
                self.nics[key] = None
        return self.nics[key]

    def subnet_nsg(self, subnet_id: str) -> NetworkSecurityGroup | None:
        key = normalize(subnet_id)
        if key not in self.subnet_nsg_ids:
            try:
                self.subnet_nsg_ids[key] = self.network.get_subnet_nsg(subnet_id)
            except CloudError as error:
                self.subnet_nsg_ids[key] = None
                self.forbidden[key] = _unreadable("subnet", subnet_id, error)
        return self.nsg(self.subnet_nsg_ids[key])

    def unreadable(self, *ids: str | None) -> list[str]:
        return [self.forbidden[normalize(i)] for i in ids if i and normalize(i) in self.forbidden]


def _unreadable(kind: str, resource_id: str, error: CloudError) -> str:
    """Why a part of the path is unknown; anything but a refusal (401/403) is raised for a retry."""
    if error.status not in (401, 403):
        raise error
    name = resource_id.rstrip("/").rsplit("/", 1)[-1]
    return f"{kind} {name} cannot be read (HTTP {error.status}: no permission there or another tenant)"


def _protected_nics(nsg: NetworkSecurityGroup, lookup: _Lookup, notes: list[str]) -> list[NetworkInterface]:
    nic_ids = list(nsg.nic_ids)
    if nsg.subnet_ids:
        if isinstance(lookup.network, SubnetNics):
            for subnet_id in nsg.subnet_ids:
                try:
                    nic_ids += lookup.network.list_subnet_nic_ids(subnet_id)
                except NotFound:
                    notes.append(f"subnet {subnet_id} of NSG {nsg.name} no longer exists")
        else:
            notes.append(
                f"NSG {nsg.name} is attached to {len(nsg.subnet_ids)} subnet(s), but the network adapter "
                "cannot list a subnet's NICs: VMs protected only through the subnet were not evaluated"
            )
    nics: dict[str, NetworkInterface] = {}
    for nic_id in nic_ids:
        nic = lookup.nic(nic_id)
        if nic is None:
            notes.append(f"NIC {nic_id} no longer exists")
        elif not nic.vm_id:
            notes.append(f"NIC {nic_id} is attached to no VM")
        else:
            nics.setdefault(normalize(nic.id or nic_id), nic)
    return list(nics.values())


def _evaluate_nic(
    nic: NetworkInterface,
    port: int,
    source: str,
    lookup: _Lookup,
    tag_prefixes: Mapping[str, Sequence[str]] | None,
) -> Verdict:
    subnet_id = nic.subnet_ids[0] if nic.subnet_ids else None
    subnet_nsg = lookup.subnet_nsg(subnet_id) if subnet_id else None
    destination = nic.private_ips[0] if nic.private_ips else None
    flow = Flow(port=port, source=source, destination=destination, destination_groups=nic.asg_ids)
    tags: dict[str, Any] = dict(lookup.tags.for_subnet(subnet_id))
    tags.update({k.lower(): v for k, v in (tag_prefixes or {}).items()})
    verdict = evaluate_path(flow, subnet_nsg, lookup.nsg(nic.nsg_id), tags)
    unknown = lookup.unreadable(subnet_id, lookup.subnet_nsg_ids.get(normalize(subnet_id or "")), nic.nsg_id)
    if verdict.allowed and unknown:
        # An NSG on the path may hold a Deny: unsure, so the flow is taken as blocked, and said so.
        reason = f"TCP {port} from {source}: assumed blocked, {'; '.join(unknown)}"
        return Verdict(False, None, reason, True, (source,), tuple(unknown))
    return verdict


def _vm_nics(vm: VmFacts, found: list[NetworkInterface], lookup: _Lookup) -> list[NetworkInterface]:
    """The NICs through which the VM is found, then its other NICs: reachability through any counts."""
    nics = {normalize(nic.id): nic for nic in found}
    for nic_id in vm.nic_ids:
        if normalize(nic_id) not in nics:
            nic = lookup.nic(nic_id)
            if nic is not None:
                nics[normalize(nic_id)] = nic
    return list(nics.values())


def detect_nsg_lockout(
    signal: Signal,
    network: Network,
    compute: Compute,
    management_sources: Sequence[str],
    *,
    tag_prefixes: Mapping[str, Sequence[str]] | None = None,
    service_tags: Mapping[str, TagAddresses] | None = None,
) -> DetectionResult:
    """Findings for every VM behind the signal's NSG(s) that a management source cannot reach.

    ``VirtualNetwork`` is resolved per NIC from its VNet (:mod:`.servicetags`); ``service_tags`` are the
    other tags (from the operator's Service Tags file); ``tag_prefixes`` override both (tests).
    Raises InvalidInput for unusable management sources and CloudError when ARM cannot be read; a
    deleted NSG, NIC or VM is a note, not an error (events arrive late and out of order); a VNet the
    app may not read is a note and leaves ``VirtualNetwork`` uncertain.
    """
    sources = check_sources(management_sources)
    nsg_ids = nsg_ids_of(signal)
    if not nsg_ids:
        return DetectionResult(notes=("the signal names no network security group",))
    lookup = _Lookup(network, TagResolver(network, dict(service_tags or {})))
    notes: list[str] = []
    by_vm: dict[str, tuple[str, str, list[NetworkInterface]]] = {}  # key -> (vm id, trigger nsg, nics)
    for nsg_id in nsg_ids:
        nsg = lookup.nsg(nsg_id)
        if nsg is None:
            refused = lookup.unreadable(nsg_id)
            notes.append(
                f"{refused[0]}: nothing to evaluate"
                if refused
                else f"NSG {nsg_id} no longer exists: nothing to evaluate"
            )
            continue
        nics = _protected_nics(nsg, lookup, notes)
        if not nics:
            notes.append(f"NSG {nsg.name} protects no VM")
        for nic in nics:
            vm_id = nic.vm_id or ""
            by_vm.setdefault(normalize(vm_id), (vm_id, nsg.id, []))[2].append(nic)

    findings: list[Finding] = []
    for vm_id, trigger, nics in by_vm.values():
        try:
            vm = compute.get_vm(vm_id)
        except NotFound:
            notes.append(f"VM {vm_id} no longer exists")
            continue
        finding, note = _judge_vm(vm, _vm_nics(vm, nics, lookup), trigger, sources, lookup, tag_prefixes)
        if finding is not None:
            findings.append(finding)
        if note:
            notes.append(note)
    notes += [n for n in dict.fromkeys([*lookup.tags.notes, *lookup.forbidden.values()]) if n not in notes]
    return DetectionResult(tuple(findings), tuple(notes))


def _judge_vm(
    vm: VmFacts,
    nics: list[NetworkInterface],
    trigger_nsg_id: str,
    sources: tuple[str, ...],
    lookup: _Lookup,
    tag_prefixes: Mapping[str, Sequence[str]] | None,
) -> tuple[Finding | None, str]:
    port = management_port(vm.os_type)
    blocked: dict[str, Verdict] = {}
    reachable: dict[str, Verdict] = {}
    for source in sources:
        verdicts = [_evaluate_nic(nic, port, source, lookup, tag_prefixes) for nic in nics]
        allowed = next((v for v in verdicts if v.allowed), None)
        if allowed is not None:
            reachable[source] = allowed
        else:
            blocked[source] = verdicts[0]
    if not blocked:
        via = "; ".join(f"from {s}: {_rule_text(v)}" for s, v in reachable.items())
        return None, f"VM {vm.name} is reachable on {port}: {via}"
    first_source, verdict = next(iter(blocked.items()))
    evidence: dict[str, Any] = {
        "direction": "Inbound",
        "protocol": "Tcp",
        "port": port,
        "source": first_source,
        "blocked_sources": list(blocked),
        "reachable_sources": list(reachable),
        "nic_id": nics[0].id,
        "trigger_nsg_id": trigger_nsg_id,
        "assumed": verdict.assumed,
        "uncovered": list(verdict.uncovered),
        "uncertain": list(dict.fromkeys(u for v in blocked.values() for u in v.uncertain)),
        **(verdict.rule.to_dict() if verdict.rule else {"rule": None, "level": None, "nsg_id": None}),
    }
    reason = f"VM {vm.name} cannot be reached on {port}: {verdict.reason}"
    if len(blocked) > 1:
        reason += f" (also blocked: {', '.join(s for s in blocked if s != first_source)})"
    finding = Finding(CONDITION, vm.id, {"port": str(port)}, evidence, reason)
    return finding, ""


def _rule_text(verdict: Verdict) -> str:
    if verdict.rule is None:
        return "no NSG applies"
    return f"rule {verdict.rule.name} ({verdict.rule.priority})"
