"""Service tags as Azure documents them, on both levels of the inbound path: VirtualNetwork from the VNet
(address space, peerings, host address), Internet as the public space outside it, ASGs, and what the
evaluator says when it is unsure."""

from __future__ import annotations

import pytest

from autoremediation.detectors.addresses import TagAddresses
from autoremediation.detectors.nsg import Flow, evaluate_nsg, evaluate_path
from autoremediation.detectors.servicetags import virtual_network_tag
from autoremediation.ports import NetworkSecurityGroup, SecurityRule, VirtualNetwork, VirtualNetworkPeering

BASE = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network"
ASG_WEB = f"{BASE}/applicationSecurityGroups/asg-web"
ASG_JUMP = f"{BASE}/applicationSecurityGroups/asg-jump"


def rule(
    name: str,
    priority: int,
    access: str = "Deny",
    src: tuple[str, ...] = ("*",),
    ports: tuple[str, ...] = ("22",),
    proto: str = "Tcp",
    **kw: object,
) -> SecurityRule:
    return SecurityRule(
        name=name,
        priority=priority,
        direction="Inbound",
        access=access,  # type: ignore[arg-type]
        protocol=proto,
        source_prefixes=src,
        destination_ports=ports,
        **kw,  # type: ignore[arg-type]
    )


def nsg(name: str, *rules: SecurityRule) -> NetworkSecurityGroup:
    return NetworkSecurityGroup(f"{BASE}/networkSecurityGroups/{name}", name, "westeurope", rules)


def peering(name: str, prefixes: tuple[str, ...] | None, **kw: object) -> VirtualNetworkPeering:
    return VirtualNetworkPeering(
        name=name, state=kw.pop("state", "Connected"), remote_prefixes=prefixes, **kw
    )  # type: ignore[arg-type]


APP = VirtualNetwork(
    f"{BASE}/virtualNetworks/app",
    "app",
    ("10.1.0.0/16",),
    (peering("to-ops", ("10.2.0.0/16",)),),
)
VNET = {"VirtualNetwork": virtual_network_tag(APP, "web")}


# ------------------------------------------------------------------------- the VirtualNetwork tag itself


def test_virtual_network_is_the_address_space_the_connected_peers_and_the_host() -> None:
    tag = virtual_network_tag(APP, "web")
    assert [str(p) for p in tag.prefixes] == ["168.63.129.16/32", "10.1.0.0/16", "10.2.0.0/16"]
    assert (tag.complete, tag.unknown) == (True, ())


def test_a_peering_without_virtual_network_access_adds_nothing_and_costs_no_certainty() -> None:
    vnet = VirtualNetwork(
        "v", "app", ("10.1.0.0/16",), (peering("p", ("10.9.0.0/16",), allow_vnet_access=False),)
    )
    tag = virtual_network_tag(vnet)
    assert "10.9.0.0/16" not in [str(p) for p in tag.prefixes] and tag.complete


@pytest.mark.parametrize(
    ("vnet", "subnet", "why"),
    [
        (
            VirtualNetwork(
                "v", "app", ("10.1.0.0/16",), (peering("p", ("10.9.0.0/16",), state="Initiated"),)
            ),
            "web",
            "is Initiated",
        ),
        (
            VirtualNetwork("v", "app", ("10.1.0.0/16",), (peering("p", None),)),
            "web",
            "remote address space of peering p",
        ),
        (
            VirtualNetwork(
                "v", "app", ("10.1.0.0/16",), (peering("p", ("10.9.0.0/16",), use_remote_gateways=True),)
            ),
            "web",
            "remote gateway",
        ),
        (VirtualNetwork("v", "app", ("10.1.0.0/16",), gateway_subnet=True), "web", "GatewaySubnet"),
        (
            VirtualNetwork(
                "v", "app", ("10.1.0.0/16",), (peering("p", ("10.9.0.0/16",), sync_level="RemoteNotInSync"),)
            ),
            "web",
            "is RemoteNotInSync",
        ),
        (VirtualNetwork("v", "app", ("10.1.0.0/16",), routed_subnets=("web",)), "web", "route table"),
        (VirtualNetwork("v", "app", ("10.1.0.0/16", "bogus")), "web", "is not a CIDR"),
    ],
)
def test_what_may_add_to_the_tag_makes_it_incomplete_and_says_so(
    vnet: VirtualNetwork, subnet: str, why: str
) -> None:
    tag = virtual_network_tag(vnet, subnet)
    assert tag.complete is False
    assert any(why in text for text in tag.unknown)
    assert "10.1.0.0/16" in [str(p) for p in tag.prefixes]


def test_a_route_table_on_another_subnet_does_not_matter() -> None:
    vnet = VirtualNetwork("v", "app", ("10.1.0.0/16",), routed_subnets=("db",))
    assert virtual_network_tag(vnet, "web").complete is True


# ----------------------------------------------------------------- both levels, tags resolved and not

# (case, subnet rules or None, NIC rules or None, source, allowed, deciding rule, level)
PATHS = [
    ("no NSG at all", None, None, "198.51.100.0/24", True, None, None),
    ("subnet default lets the VNet in, NIC too", (), (), "10.1.0.0/24", True, "AllowVnetInBound", "nic"),
    ("peer is VirtualNetwork on both levels", (), (), "10.2.0.0/24", True, "AllowVnetInBound", "nic"),
    (
        "outside the VNet meets DenyAllInBound at the subnet",
        (),
        (),
        "10.3.0.0/24",
        False,
        "DenyAllInBound",
        "subnet",
    ),
    (
        "subnet denies before the NIC allows",
        (rule("deny-ssh", 100),),
        (rule("allow", 100, "Allow"),),
        "10.1.0.0/24",
        False,
        "deny-ssh",
        "subnet",
    ),
    (
        "subnet allows, NIC denies",
        (rule("allow", 100, "Allow"),),
        (rule("deny-ssh", 200),),
        "10.1.0.0/24",
        False,
        "deny-ssh",
        "nic",
    ),
    (
        "lower number first",
        (rule("allow", 110, "Allow"), rule("deny", 100)),
        None,
        "10.1.0.0/24",
        False,
        "deny",
        "subnet",
    ),
    (
        "first match wins",
        (rule("allow", 100, "Allow"), rule("deny", 110)),
        None,
        "10.1.0.0/24",
        True,
        "allow",
        "subnet",
    ),
    (
        "deny VirtualNetwork hits a peer",
        None,
        (rule("d", 100, src=("VirtualNetwork",)), rule("a", 200, "Allow")),
        "10.2.5.0/24",
        False,
        "d",
        "nic",
    ),
    (
        "deny VirtualNetwork spares a public source",
        None,
        (rule("d", 100, src=("VirtualNetwork",)), rule("a", 200, "Allow")),
        "198.51.100.0/24",
        True,
        "a",
        "nic",
    ),
    (
        "deny Internet hits TEST-NET-3",
        None,
        (rule("d", 100, src=("Internet",)), rule("a", 200, "Allow")),
        "203.0.113.0/24",
        False,
        "d",
        "nic",
    ),
    (
        "deny Internet spares a peer",
        None,
        (rule("d", 100, src=("Internet",)),),
        "10.2.0.0/24",
        True,
        "AllowVnetInBound",
        "nic",
    ),
    (
        "deny Internet spares private space outside the VNet",
        None,
        (rule("d", 100, src=("Internet",)), rule("a", 200, "Allow")),
        "192.168.7.0/24",
        True,
        "a",
        "nic",
    ),
    (
        "allow Internet admits a public source",
        None,
        (rule("a", 100, "Allow", src=("Internet",)),),
        "198.51.100.0/24",
        True,
        "a",
        "nic",
    ),
    (
        "allow Internet does not admit the VNet's own space",
        None,
        (rule("a", 100, "Allow", src=("Internet",)), rule("d", 200)),
        "10.1.0.0/24",
        False,
        "d",
        "nic",
    ),
    (
        "deny the host address blocks the load balancer tag",
        None,
        (rule("d", 100, src=("168.63.129.16",)),),
        "AzureLoadBalancer",
        False,
        "d",
        "nic",
    ),
    (
        "udp deny does not touch tcp",
        None,
        (rule("d", 100, proto="Udp"),),
        "10.1.0.0/24",
        True,
        "AllowVnetInBound",
        "nic",
    ),
    ("port list", None, (rule("d", 100, ports=("80", "21-23")),), "10.1.0.0/24", False, "d", "nic"),
    (
        "port range missing the port",
        None,
        (rule("d", 100, ports=("23-25",)),),
        "10.1.0.0/24",
        True,
        "AllowVnetInBound",
        "nic",
    ),
    ("any port", None, (rule("d", 100, ports=("*",)),), "10.1.0.0/24", False, "d", "nic"),
    (
        "source list, one CIDR covers",
        None,
        (rule("d", 100, src=("10.9.0.0/16", "10.1.0.0/24")),),
        "10.1.0.0/24",
        False,
        "d",
        "nic",
    ),
]


@pytest.mark.parametrize(
    ("subnet", "nic", "source", "allowed", "decider", "level"),
    [c[1:] for c in PATHS],
    ids=[c[0] for c in PATHS],
)
def test_inbound_path_with_a_resolved_virtual_network(
    subnet: tuple[SecurityRule, ...] | None,
    nic: tuple[SecurityRule, ...] | None,
    source: str,
    allowed: bool,
    decider: str | None,
    level: str | None,
) -> None:
    verdict = evaluate_path(
        Flow(22, source, destination="10.1.0.4"),
        None if subnet is None else nsg("nsg-subnet", *subnet),
        None if nic is None else nsg("nsg-nic", *nic),
        VNET,
    )
    assert verdict.allowed is allowed
    assert (verdict.rule.name if verdict.rule else None) == decider
    assert (verdict.rule.level if verdict.rule else None) == level
    assert verdict.assumed is False and verdict.uncertain == ()


def test_an_incomplete_virtual_network_turns_an_internet_allow_into_an_assumed_block() -> None:
    incomplete = {
        "VirtualNetwork": TagAddresses(
            VNET["VirtualNetwork"].prefixes, False, ("VirtualNetwork: route table",)
        )
    }
    group = nsg("n", rule("a", 100, "Allow", src=("Internet",)), rule("d", 200))
    verdict = evaluate_nsg(group, Flow(22, "198.51.100.0/24"), tag_prefixes=incomplete)
    assert (verdict.allowed, verdict.rule and verdict.rule.name, verdict.assumed) == (False, "d", True)
    assert verdict.uncertain == ("VirtualNetwork: route table",)
    # A Deny from VirtualNetwork is then assumed to catch a public source: it might be in the tag.
    deny = nsg("n", rule("d", 100, src=("VirtualNetwork",)), rule("a", 200, "Allow"))
    verdict = evaluate_nsg(deny, Flow(22, "198.51.100.0/24"), tag_prefixes=incomplete)
    assert (verdict.allowed, verdict.assumed, verdict.uncertain) == (
        False,
        True,
        ("VirtualNetwork: route table",),
    )


def test_an_unknown_tag_deny_is_assumed_and_named() -> None:
    verdict = evaluate_nsg(
        nsg("n", rule("d", 100, src=("Sql.WestEurope",))), Flow(22, "10.1.0.0/24"), tag_prefixes=VNET
    )
    assert (verdict.allowed, verdict.assumed) == (False, True)
    assert verdict.uncertain == ("service tag Sql.WestEurope: its addresses are unknown",)


# ------------------------------------------------------------------------ application security groups


@pytest.mark.parametrize(
    ("groups", "allowed", "assumed"),
    [((ASG_WEB,), False, False), ((ASG_JUMP,), True, False), ((), True, False), (None, False, True)],
    ids=["NIC in the group", "NIC in another group", "NIC in no group", "groups unknown"],
)
def test_a_deny_to_an_asg_applies_exactly_to_its_members(
    groups: tuple[str, ...] | None, allowed: bool, assumed: bool
) -> None:
    deny = rule("deny-web", 100, destination_prefixes=(), destination_asgs=(ASG_WEB,))
    verdict = evaluate_nsg(
        nsg("n", deny), Flow(22, "10.1.0.0/24", destination_groups=groups), tag_prefixes=VNET
    )
    assert (verdict.allowed, verdict.assumed) == (allowed, assumed)


def test_an_allow_from_an_asg_is_never_counted_and_a_deny_from_one_always_is() -> None:
    allow = rule("allow-jump", 100, "Allow", src=(), source_asgs=(ASG_JUMP,))
    verdict = evaluate_nsg(nsg("n", allow, rule("d", 200)), Flow(22, "10.3.0.0/24"), tag_prefixes=VNET)
    assert (verdict.allowed, verdict.rule and verdict.rule.name, verdict.assumed) == (False, "d", True)
    assert verdict.uncertain == (
        "application security group asg-jump: the addresses of its members are not read",
    )
    deny = rule("deny-jump", 100, src=(), source_asgs=(ASG_JUMP,))
    verdict = evaluate_nsg(nsg("n", deny), Flow(22, "10.1.0.0/24"), tag_prefixes=VNET)
    assert (verdict.allowed, verdict.rule and verdict.rule.name, verdict.assumed) == (
        False,
        "deny-jump",
        True,
    )
