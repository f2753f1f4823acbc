"""The nsg-lockout detector over in-memory Network and Compute ports."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pytest

from autoremediation.detectors.lockout import (
    SubnetNics,
    check_sources,
    detect_nsg_lockout,
    management_port,
    nsg_ids_of,
)
from autoremediation.errors import InvalidInput, NotFound
from autoremediation.ports import (
    NetworkInterface,
    NetworkSecurityGroup,
    RunRequest,
    RunStatus,
    SecurityRule,
    VmFacts,
)
from autoremediation.signals.model import Signal

SUB = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/prod"
NET = f"{SUB}/providers/Microsoft.Network"
COMPUTE = f"{SUB}/providers/Microsoft.Compute/virtualMachines"
SUBNET = f"{NET}/virtualNetworks/vnet/subnets/web"


def nsg_id(name: str) -> str:
    return f"{NET}/networkSecurityGroups/{name}"


def nic_id(name: str) -> str:
    return f"{NET}/networkInterfaces/{name}"


def vm_id(name: str) -> str:
    return f"{COMPUTE}/{name}"


def rule(name: str, priority: int, access: str = "Deny", **kw: object) -> SecurityRule:
    fields = {
        "source_prefixes": ("*",),
        "destination_ports": ("22",),
        "protocol": "Tcp",
        "direction": "Inbound",
        **kw,
    }
    return SecurityRule(name=name, priority=priority, access=access, **fields)  # type: ignore[arg-type]


@dataclass
class FakeNetwork:
    """ARM's network view, in memory: what the adapter would read and write."""

    nsgs: dict[str, NetworkSecurityGroup] = field(default_factory=dict)
    nics: dict[str, NetworkInterface] = field(default_factory=dict)
    subnet_nsgs: dict[str, str] = field(default_factory=dict)
    subnet_nics: dict[str, tuple[str, ...]] = field(default_factory=dict)
    puts: list[tuple[str, SecurityRule]] = field(default_factory=list)
    reads: list[str] = field(default_factory=list)
    subnet_reads: list[str] = field(default_factory=list)
    drop_writes: bool = False

    def get_nsg(self, nsg_id: str) -> NetworkSecurityGroup:
        self.reads.append(nsg_id)
        try:
            return self.nsgs[nsg_id.lower()]
        except KeyError:
            raise NotFound(nsg_id) from None

    def get_nic(self, nic_id: str) -> NetworkInterface:
        try:
            return self.nics[nic_id.lower()]
        except KeyError:
            raise NotFound(nic_id) from None

    def get_subnet_nsg(self, subnet_id: str) -> str | None:
        self.subnet_reads.append(subnet_id)
        return self.subnet_nsgs.get(subnet_id.lower())

    def put_security_rule(self, nsg_id: str, rule: SecurityRule) -> SecurityRule:
        self.puts.append((nsg_id, rule))
        stored = replace(rule, id=f"{nsg_id}/securityRules/{rule.name}")
        if not self.drop_writes:
            group = self.nsgs[nsg_id.lower()]
            kept = tuple(r for r in group.rules if r.name.lower() != rule.name.lower())
            self.nsgs[nsg_id.lower()] = replace(group, rules=(*kept, stored))
        return stored

    def add_nsg(self, group: NetworkSecurityGroup) -> NetworkSecurityGroup:
        self.nsgs[group.id.lower()] = group
        return group

    def add_nic(self, nic: NetworkInterface) -> NetworkInterface:
        self.nics[nic.id.lower()] = nic
        return nic


@dataclass
class FakeNetworkWithSubnets(FakeNetwork):
    def list_subnet_nic_ids(self, subnet_id: str) -> tuple[str, ...]:
        try:
            return self.subnet_nics[subnet_id.lower()]
        except KeyError:
            raise NotFound(subnet_id) from None


@dataclass
class FakeCompute:
    vms: dict[str, VmFacts] = field(default_factory=dict)

    def get_vm(self, vm_id: str) -> VmFacts:
        try:
            return self.vms[vm_id.lower()]
        except KeyError:
            raise NotFound(vm_id) from None

    def add(self, vm: VmFacts) -> VmFacts:
        self.vms[vm.id.lower()] = vm
        return vm

    def list_vms(self, scope: str) -> list[VmFacts]:
        return list(self.vms.values())

    def start_run(self, request: RunRequest) -> RunStatus:
        raise AssertionError("a detector never runs scripts")

    def get_run(self, vm_id: str, run_name: str) -> RunStatus:
        raise AssertionError("a detector never runs scripts")

    def cancel_run(self, vm_id: str, run_name: str) -> None:
        raise AssertionError("a detector never runs scripts")


def vm(
    name: str, os_type: str = "linux", nics: tuple[str, ...] = (), tags: dict[str, str] | None = None
) -> VmFacts:
    return VmFacts(
        id=vm_id(name),
        name=name,
        location="westeurope",
        os_type=os_type,  # type: ignore[arg-type]
        power_state="running",
        agent_ready=True,
        tags=tags or {},
        nic_ids=nics or (nic_id(f"{name}-nic"),),
    )


def event(resource_id: str) -> Signal:
    return Signal(
        id="evt-1",
        source="event",
        type="Microsoft.Resources.ResourceWriteSuccess",
        resource_id=resource_id,
        resources=(resource_id,),
        operation_name="Microsoft.Network/networkSecurityGroups/securityRules/write",
    )


class World:
    """One NSG on the NICs of a few VMs (or on their subnet), the way tests set it up."""

    def __init__(self, *, subnets: bool = True) -> None:
        self.network: FakeNetwork = FakeNetworkWithSubnets() if subnets else FakeNetwork()
        self.compute = FakeCompute()

    def nsg(
        self,
        name: str,
        *rules: SecurityRule,
        nics: tuple[str, ...] = (),
        subnets: tuple[str, ...] = (),
        tags: dict[str, str] | None = None,
    ) -> NetworkSecurityGroup:
        return self.network.add_nsg(
            NetworkSecurityGroup(
                nsg_id(name), name, "westeurope", rules, nic_ids=nics, subnet_ids=subnets, tags=tags or {}
            )
        )

    def vm(
        self,
        name: str,
        os_type: str = "linux",
        *,
        nsg: str | None = None,
        ip: str = "10.0.0.4",
        subnet: str = SUBNET,
        extra_nics: tuple[NetworkInterface, ...] = (),
    ) -> VmFacts:
        nic = self.network.add_nic(
            NetworkInterface(
                nic_id(f"{name}-nic"), vm_id(name), nsg_id(nsg) if nsg else None, (subnet,), (ip,)
            )
        )
        for other in extra_nics:
            self.network.add_nic(other)
        return self.compute.add(replace(vm(name, os_type), nic_ids=(nic.id, *(n.id for n in extra_nics))))

    def detect(self, resource_id: str, sources: tuple[str, ...] = ("VirtualNetwork",)):  # type: ignore[no-untyped-def]
        return detect_nsg_lockout(event(resource_id), self.network, self.compute, sources)


def test_nic_nsg_denying_ssh_locks_the_linux_vm_out() -> None:
    w = World()
    w.nsg("web-nsg", rule("deny-ssh", 110), nics=(nic_id("web1-nic"),))
    w.vm("web1", nsg="web-nsg")
    result = w.detect(f"{nsg_id('web-nsg')}/securityRules/deny-ssh")
    assert len(result.findings) == 1
    finding = result.findings[0]
    assert finding.condition == "nsg-lockout"
    assert finding.target == vm_id("web1")
    assert finding.parameters == {"port": "22"}
    assert finding.evidence["rule"] == "deny-ssh"
    assert finding.evidence["priority"] == 110
    assert finding.evidence["access"] == "Deny"
    assert finding.evidence["nsg_id"] == nsg_id("web-nsg")
    assert finding.evidence["level"] == "nic"
    assert finding.evidence["default_rule"] is False
    assert finding.evidence["port"] == 22
    assert finding.evidence["blocked_sources"] == ["VirtualNetwork"]
    assert finding.evidence["reachable_sources"] == []
    assert finding.evidence["nic_id"] == nic_id("web1-nic")
    assert finding.evidence["trigger_nsg_id"] == nsg_id("web-nsg")
    assert finding.evidence["assumed"] is False
    assert "web1" in finding.reason and "deny-ssh" in finding.reason and "22" in finding.reason
    assert result.notes == ()


def test_windows_vm_is_judged_on_rdp() -> None:
    w = World()
    w.nsg("win-nsg", rule("deny-ssh", 110), nics=(nic_id("win1-nic"),))
    w.vm("win1", "windows", nsg="win-nsg")
    result = w.detect(nsg_id("win-nsg"))
    assert result.findings == ()
    assert any("win1" in n and "3389" in n for n in result.notes)

    w.nsg("win-nsg", rule("deny-rdp", 120, destination_ports=("3389",)), nics=(nic_id("win1-nic"),))
    finding = w.detect(nsg_id("win-nsg")).findings[0]
    assert finding.parameters == {"port": "3389"}
    assert finding.evidence["rule"] == "deny-rdp"


def test_linux_vm_is_not_judged_on_rdp() -> None:
    w = World()
    w.nsg("web-nsg", rule("deny-rdp", 120, destination_ports=("3389",)), nics=(nic_id("web1-nic"),))
    w.vm("web1", nsg="web-nsg")
    assert w.detect(nsg_id("web-nsg")).findings == ()


def test_subnet_nsg_locks_out_every_vm_in_the_subnet() -> None:
    w = World()
    w.nsg("subnet-nsg", rule("deny-mgmt", 200, destination_ports=("22", "3389")), subnets=(SUBNET,))
    w.network.subnet_nsgs[SUBNET.lower()] = nsg_id("subnet-nsg")
    w.network.subnet_nics[SUBNET.lower()] = (nic_id("a-nic"), nic_id("b-nic"))
    w.vm("a", ip="10.0.0.4")
    w.vm("b", "windows", ip="10.0.0.5")
    result = w.detect(nsg_id("subnet-nsg"))
    by_vm = {f.target: f for f in result.findings}
    assert sorted(by_vm) == [vm_id("a"), vm_id("b")]
    assert by_vm[vm_id("a")].parameters == {"port": "22"}
    assert by_vm[vm_id("b")].parameters == {"port": "3389"}
    for finding in by_vm.values():
        assert (finding.evidence["rule"], finding.evidence["level"]) == ("deny-mgmt", "subnet")
        assert finding.evidence["nsg_id"] == nsg_id("subnet-nsg")


def test_subnet_blocks_even_when_the_nic_nsg_allows() -> None:
    w = World()
    w.nsg("subnet-nsg", rule("deny-ssh", 200), subnets=(SUBNET,))
    w.nsg("nic-nsg", rule("allow-ssh", 100, "Allow"), nics=(nic_id("a-nic"),))
    w.network.subnet_nsgs[SUBNET.lower()] = nsg_id("subnet-nsg")
    w.vm("a", nsg="nic-nsg")
    # The event is about the NIC's NSG; the lockout comes from the subnet's.
    finding = w.detect(nsg_id("nic-nsg")).findings[0]
    assert (finding.evidence["rule"], finding.evidence["level"]) == ("deny-ssh", "subnet")
    assert finding.evidence["nsg_id"] == nsg_id("subnet-nsg")
    assert finding.evidence["trigger_nsg_id"] == nsg_id("nic-nsg")


def test_subnet_association_without_adapter_support_is_a_note() -> None:
    w = World(subnets=False)
    assert not isinstance(w.network, SubnetNics)
    w.nsg("subnet-nsg", rule("deny-ssh", 200), subnets=(SUBNET,))
    w.network.subnet_nsgs[SUBNET.lower()] = nsg_id("subnet-nsg")
    w.vm("a")
    result = w.detect(nsg_id("subnet-nsg"))
    assert result.findings == ()
    assert (
        "NSG subnet-nsg is attached to 1 subnet(s), but the network adapter cannot list a subnet's NICs: "
        "VMs protected only through the subnet were not evaluated"
    ) in result.notes
    assert any("protects no VM" in n for n in result.notes)


def test_fake_with_subnets_satisfies_the_protocol() -> None:
    assert isinstance(FakeNetworkWithSubnets(), SubnetNics)


def test_only_the_vm_whose_address_is_denied_is_reported() -> None:
    w = World()
    w.nsg(
        "web-nsg",
        rule("deny-one", 110, destination_prefixes=("10.0.0.5/32",)),
        nics=(nic_id("a-nic"), nic_id("b-nic")),
    )
    w.vm("a", nsg="web-nsg", ip="10.0.0.4")
    w.vm("b", nsg="web-nsg", ip="10.0.0.5")
    result = w.detect(nsg_id("web-nsg"))
    assert [f.target for f in result.findings] == [vm_id("b")]
    assert any(
        n.startswith("VM a is reachable on 22") and "AllowVnetInBound (65000)" in n for n in result.notes
    )


def test_nsg_protecting_nothing() -> None:
    w = World()
    w.nsg("lonely-nsg", rule("deny-ssh", 110))
    result = w.detect(nsg_id("lonely-nsg"))
    assert result.findings == ()
    assert result.notes == ("NSG lonely-nsg protects no VM",)


def test_already_reachable_says_through_which_rule() -> None:
    w = World()
    w.nsg(
        "web-nsg",
        rule("allow-ssh", 110, "Allow", source_prefixes=("10.0.0.0/8",)),
        rule("deny-ssh", 200),
        nics=(nic_id("web1-nic"),),
    )
    w.vm("web1", nsg="web-nsg")
    result = w.detect(nsg_id("web-nsg"), sources=("10.1.0.0/16",))
    assert result.findings == ()
    assert result.notes == ("VM web1 is reachable on 22: from 10.1.0.0/16: rule allow-ssh (110)",)


def test_vm_without_any_nsg_in_its_path_is_reachable() -> None:
    w = World()
    w.nsg("other-nsg", rule("deny-ssh", 110), nics=(nic_id("web1-nic"),))
    w.vm("web1")  # the NIC itself carries no NSG any more (the event is stale)
    result = w.detect(nsg_id("other-nsg"))
    assert result.findings == ()
    assert result.notes == ("VM web1 is reachable on 22: from VirtualNetwork: no NSG applies",)


def test_several_sources_some_blocked() -> None:
    w = World()
    w.nsg(
        "web-nsg",
        rule("allow-corp", 100, "Allow", source_prefixes=("10.0.0.0/8",)),
        rule("deny-public", 110, source_prefixes=("52.0.0.0/8",)),
        nics=(nic_id("web1-nic"),),
    )
    w.vm("web1", nsg="web-nsg")
    finding = w.detect(nsg_id("web-nsg"), sources=("10.1.0.0/16", "52.10.1.0/24", "52.20.0.0/16")).findings[0]
    assert finding.evidence["blocked_sources"] == ["52.10.1.0/24", "52.20.0.0/16"]
    assert finding.evidence["reachable_sources"] == ["10.1.0.0/16"]
    assert finding.evidence["rule"] == "deny-public"
    assert finding.evidence["assumed"] is False
    assert "also blocked: 52.20.0.0/16" in finding.reason


def test_vnet_source_against_a_cidr_deny_is_an_assumed_finding() -> None:
    # The VirtualNetwork tag can hold on-premises and user-defined-route prefixes: a Deny on any CIDR
    # may cut part of it off. Without the tag's addresses the detector reports it, marked assumed.
    w = World()
    w.nsg("web-nsg", rule("deny-range", 110, source_prefixes=("52.10.0.0/16",)), nics=(nic_id("web1-nic"),))
    w.vm("web1", nsg="web-nsg")
    finding = w.detect(nsg_id("web-nsg")).findings[0]
    assert (finding.evidence["rule"], finding.evidence["assumed"]) == ("deny-range", True)
    assert "assumed" in finding.reason


def test_known_vnet_prefixes_clear_the_assumption() -> None:
    w = World()
    w.nsg("web-nsg", rule("deny-range", 110, source_prefixes=("52.10.0.0/16",)), nics=(nic_id("web1-nic"),))
    w.vm("web1", nsg="web-nsg")
    result = detect_nsg_lockout(
        event(nsg_id("web-nsg")),
        w.network,
        w.compute,
        ("VirtualNetwork",),
        tag_prefixes={"VirtualNetwork": ("10.0.0.0/16", "168.63.129.16/32")},
    )
    assert result.findings == ()
    assert result.notes == ("VM web1 is reachable on 22: from VirtualNetwork: rule AllowVnetInBound (65000)",)


def test_vm_reachable_through_another_nic_is_not_locked_out() -> None:
    w = World()
    w.nsg("web-nsg", rule("deny-ssh", 110), nics=(nic_id("web1-nic"),))
    second = NetworkInterface(nic_id("web1-nic2"), vm_id("web1"), None, (SUBNET,), ("10.0.0.9",))
    w.vm("web1", nsg="web-nsg", extra_nics=(second,))
    result = w.detect(nsg_id("web-nsg"))
    assert result.findings == ()
    assert any("reachable" in n for n in result.notes)


def test_vm_with_every_nic_blocked_is_reported_once() -> None:
    w = World()
    second = NetworkInterface(nic_id("web1-nic2"), vm_id("web1"), nsg_id("web-nsg"), (SUBNET,), ("10.0.0.9",))
    w.nsg("web-nsg", rule("deny-ssh", 110), nics=(nic_id("web1-nic"), second.id))
    w.vm("web1", nsg="web-nsg", extra_nics=(second,))
    result = w.detect(nsg_id("web-nsg"))
    assert [f.target for f in result.findings] == [vm_id("web1")]


def test_same_nsg_named_twice_is_evaluated_once() -> None:
    w = World()
    w.nsg("web-nsg", rule("deny-ssh", 110), nics=(nic_id("web1-nic"),))
    w.vm("web1", nsg="web-nsg")
    signal = replace(
        event(nsg_id("web-nsg")), resources=(f"{nsg_id('web-nsg')}/securityRules/x", nsg_id("WEB-NSG"))
    )
    result = detect_nsg_lockout(signal, w.network, w.compute, ("VirtualNetwork",))
    assert len(result.findings) == 1
    assert len(w.network.reads) == 1  # the NSG is read once and reused for the NIC's path


def test_unknown_source_tag_makes_a_conservative_finding() -> None:
    w = World()
    w.nsg("web-nsg", rule("deny-cloud", 110, source_prefixes=("AzureCloud",)), nics=(nic_id("web1-nic"),))
    w.vm("web1", nsg="web-nsg")
    finding = w.detect(nsg_id("web-nsg"), sources=("52.10.0.0/16",)).findings[0]
    assert finding.evidence["assumed"] is True


class TestGoneResources:
    def test_deleted_nsg_is_a_note(self) -> None:
        w = World()
        result = w.detect(nsg_id("gone-nsg"))
        assert result.findings == ()
        assert result.notes == (f"NSG {nsg_id('gone-nsg')} no longer exists: nothing to evaluate",)

    def test_deleted_nic_is_a_note(self) -> None:
        w = World()
        w.nsg("web-nsg", rule("deny-ssh", 110), nics=(nic_id("gone-nic"),))
        result = w.detect(nsg_id("web-nsg"))
        assert f"NIC {nic_id('gone-nic')} no longer exists" in result.notes

    def test_detached_nic_is_a_note(self) -> None:
        w = World()
        w.nsg("web-nsg", rule("deny-ssh", 110), nics=(nic_id("spare-nic"),))
        w.network.add_nic(NetworkInterface(nic_id("spare-nic"), None, nsg_id("web-nsg"), (SUBNET,)))
        result = w.detect(nsg_id("web-nsg"))
        assert result.findings == ()
        assert f"NIC {nic_id('spare-nic')} is attached to no VM" in result.notes

    def test_deleted_vm_is_a_note(self) -> None:
        w = World()
        w.nsg("web-nsg", rule("deny-ssh", 110), nics=(nic_id("web1-nic"),))
        w.vm("web1", nsg="web-nsg")
        del w.compute.vms[vm_id("web1").lower()]
        result = w.detect(nsg_id("web-nsg"))
        assert result.findings == ()
        assert f"VM {vm_id('web1')} no longer exists" in result.notes

    def test_deleted_subnet_is_a_note(self) -> None:
        w = World()
        w.nsg("subnet-nsg", rule("deny-ssh", 110), subnets=(SUBNET,))
        result = w.detect(nsg_id("subnet-nsg"))
        assert any("no longer exists" in n and SUBNET in n for n in result.notes)


class TestSignals:
    @pytest.mark.parametrize(
        "resource",
        [
            nsg_id("web-nsg"),
            f"{nsg_id('web-nsg')}/",
            f"{nsg_id('web-nsg')}/securityRules/deny-ssh",
            f"{nsg_id('web-nsg')}/securityRules/deny-ssh/",
            nsg_id("web-nsg")
            .replace("Microsoft.Network", "microsoft.network")
            .replace("networkSecurityGroups", "NETWORKSECURITYGROUPS"),
        ],
    )
    def test_nsg_and_rule_ids_name_the_nsg(self, resource: str) -> None:
        assert [n.lower() for n in nsg_ids_of(event(resource))] == [nsg_id("web-nsg").lower()]

    @pytest.mark.parametrize(
        "resource",
        [
            vm_id("web1"),
            f"{NET}/virtualNetworks/vnet",
            f"{nsg_id('web-nsg')}/securityRules/deny-ssh/extra",
            f"{NET}/networkSecurityGroups",
            "not an id",
        ],
    )
    def test_other_resources_name_no_nsg(self, resource: str) -> None:
        assert nsg_ids_of(event(resource)) == ()

    def test_signal_without_nsg_is_a_note(self) -> None:
        w = World()
        result = w.detect(vm_id("web1"))
        assert result == type(result)(notes=("the signal names no network security group",))

    def test_resource_id_comes_first_then_resources(self) -> None:
        signal = Signal(
            id="a",
            source="alert",
            type="Activity Log - Administrative",
            resource_id=nsg_id("b"),
            resources=(nsg_id("a"), nsg_id("b")),
        )
        assert nsg_ids_of(signal) == (nsg_id("b"), nsg_id("a"))

    def test_signal_without_any_resource(self) -> None:
        assert nsg_ids_of(Signal(id="a", source="event", type="x")) == ()


class TestSources:
    def test_no_sources_is_a_clear_error(self) -> None:
        w = World()
        with pytest.raises(
            InvalidInput, match=r"^no management sources are configured \(REMEDIATION_MANAGEMENT_SOURCES\)$"
        ):
            w.detect(nsg_id("web-nsg"), sources=())

    def test_blank_sources_are_no_sources(self) -> None:
        with pytest.raises(InvalidInput, match="no management sources"):
            check_sources(["", "  "])

    def test_bad_source_is_a_clear_error(self) -> None:
        with pytest.raises(InvalidInput, match=r"10\.0\.0\.300/24"):
            check_sources(["VirtualNetwork", "10.0.0.300/24"])

    def test_one_string_is_not_a_list(self) -> None:
        with pytest.raises(InvalidInput, match=r"^management sources must be a list, not one string$"):
            check_sources("VirtualNetwork")  # type: ignore[arg-type]

    def test_sources_are_trimmed_and_deduplicated_in_order(self) -> None:
        assert check_sources([" 10.0.0.0/8", "VirtualNetwork", "10.0.0.0/8 "]) == (
            "10.0.0.0/8",
            "VirtualNetwork",
        )


def test_management_ports() -> None:
    assert (management_port("linux"), management_port("windows")) == (22, 3389)
    with pytest.raises(InvalidInput, match="solaris"):
        management_port("solaris")


def test_nsg_on_nics_and_on_a_subnet_finds_both_kinds_of_vm() -> None:
    w = World()
    w.nsg("both-nsg", rule("deny-ssh", 110), nics=(nic_id("a-nic"),), subnets=(SUBNET,))
    w.network.subnet_nsgs[SUBNET.lower()] = nsg_id("both-nsg")
    w.network.subnet_nics[SUBNET.lower()] = (nic_id("b-nic"),)
    w.vm("a", nsg="both-nsg", subnet=f"{SUBNET}-other")
    w.vm("b")
    result = w.detect(nsg_id("both-nsg"))
    assert sorted(f.target for f in result.findings) == [vm_id("a"), vm_id("b")]


def test_subnet_nsg_is_looked_up_once_per_subnet() -> None:
    w = World()
    w.nsg("web-nsg", rule("deny-ssh", 110), nics=(nic_id("a-nic"), nic_id("b-nic")))
    w.vm("a", nsg="web-nsg", ip="10.0.0.4")
    w.vm("b", nsg="web-nsg", ip="10.0.0.5")
    assert len(w.detect(nsg_id("web-nsg")).findings) == 2
    assert w.network.subnet_reads == [SUBNET]


def test_nic_without_subnet_or_address_is_still_judged() -> None:
    w = World()
    w.nsg("web-nsg", rule("deny-ssh", 110), nics=(nic_id("web1-nic"),))
    w.network.add_nic(NetworkInterface(nic_id("web1-nic"), vm_id("web1"), nsg_id("web-nsg"), ()))
    w.compute.add(vm("web1"))
    finding = w.detect(nsg_id("web-nsg")).findings[0]
    assert finding.evidence["rule"] == "deny-ssh"
    assert w.network.subnet_reads == []


def test_a_deleted_nsg_does_not_stop_the_next_one() -> None:
    w = World()
    w.nsg("web-nsg", rule("deny-ssh", 110), nics=(nic_id("web1-nic"),))
    w.vm("web1", nsg="web-nsg")
    signal = replace(event(nsg_id("gone-nsg")), resources=(nsg_id("gone-nsg"), nsg_id("web-nsg")))
    result = detect_nsg_lockout(signal, w.network, w.compute, ("VirtualNetwork",))
    assert [f.target for f in result.findings] == [vm_id("web1")]
    assert result.notes == (f"NSG {nsg_id('gone-nsg')} no longer exists: nothing to evaluate",)


def test_a_deleted_vm_does_not_stop_the_next_one() -> None:
    w = World()
    w.nsg("web-nsg", rule("deny-ssh", 110), nics=(nic_id("a-nic"), nic_id("b-nic")))
    w.vm("a", nsg="web-nsg")
    w.vm("b", nsg="web-nsg")
    del w.compute.vms[vm_id("a").lower()]
    result = w.detect(nsg_id("web-nsg"))
    assert [f.target for f in result.findings] == [vm_id("b")]
    assert result.notes == (f"VM {vm_id('a')} no longer exists",)


def test_reachable_note_lists_every_source() -> None:
    w = World()
    w.nsg(
        "web-nsg",
        rule("allow-ssh", 110, "Allow", source_prefixes=("10.0.0.0/8",)),
        nics=(nic_id("web1-nic"),),
    )
    w.vm("web1", nsg="web-nsg")
    result = w.detect(nsg_id("web-nsg"), sources=("10.1.0.0/16", "VirtualNetwork"))
    assert result.notes == (
        "VM web1 is reachable on 22: from 10.1.0.0/16: rule allow-ssh (110); "
        "from VirtualNetwork: rule AllowVnetInBound (65000)",
    )


def test_single_blocked_source_reason_is_exact() -> None:
    w = World()
    w.nsg("web-nsg", rule("deny-ssh", 110), nics=(nic_id("web1-nic"),))
    w.vm("web1", nsg="web-nsg")
    finding = w.detect(nsg_id("web-nsg")).findings[0]
    assert finding.reason == (
        "VM web1 cannot be reached on 22: TCP 22 from VirtualNetwork is denied by rule deny-ssh "
        "(priority 110) of nic NSG web-nsg"
    )
    assert finding.evidence["uncovered"] == [
        "168.63.129.16/32",
        "VirtualNetwork (IPv4)",
        "VirtualNetwork (IPv6)",
    ]


def test_three_blocked_sources_are_all_named() -> None:
    w = World()
    w.nsg("web-nsg", rule("deny-ssh", 110), nics=(nic_id("web1-nic"),))
    w.vm("web1", nsg="web-nsg")
    finding = w.detect(nsg_id("web-nsg"), sources=("10.1.0.0/16", "10.2.0.0/16", "10.3.0.0/16")).findings[0]
    assert finding.reason.startswith("VM web1 cannot be reached on 22: TCP 22 from 10.1.0.0/16 is denied")
    assert finding.reason.endswith(" (also blocked: 10.2.0.0/16, 10.3.0.0/16)")


def test_blocked_without_a_deciding_rule_has_no_rule_evidence() -> None:
    w = World()
    odd = tuple(
        rule(name, priority, access, destination_ports=("80",))
        for name, priority, access in (
            ("AllowVnetInBound", 65000, "Allow"),
            ("AllowAzureLoadBalancerInBound", 65001, "Allow"),
            ("DenyAllInBound", 65500, "Deny"),
        )
    )
    w.network.add_nsg(
        NetworkSecurityGroup(
            nsg_id("odd-nsg"), "odd-nsg", "westeurope", (), default_rules=odd, nic_ids=(nic_id("web1-nic"),)
        )
    )
    w.vm("web1", nsg="odd-nsg")
    finding = w.detect(nsg_id("odd-nsg")).findings[0]
    assert finding.evidence["rule"] is None and "priority" not in finding.evidence
    assert finding.evidence["blocked_sources"] == ["VirtualNetwork"]
