"""Inbound NSG evaluation: the question "can this management source reach TCP <port>?"."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoremediation.detectors.addresses import TagAddresses
from autoremediation.detectors.nsg import (
    DEFAULT_INBOUND_RULES,
    Flow,
    effective_inbound_rules,
    evaluate_nsg,
    evaluate_path,
    parse_port_spec,
    ports_cover,
    source_pieces,
)
from autoremediation.errors import InvalidInput
from autoremediation.ports import NetworkSecurityGroup, SecurityRule

NSG_ID = "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Network/networkSecurityGroups/web-nsg"


def rule(
    name: str,
    priority: int,
    access: str = "Deny",
    *,
    src: tuple[str, ...] = ("*",),
    ports: tuple[str, ...] = ("22",),
    proto: str = "Tcp",
    dst: tuple[str, ...] = ("*",),
    src_ports: tuple[str, ...] = ("*",),
    direction: str = "Inbound",
) -> SecurityRule:
    return SecurityRule(
        name=name,
        priority=priority,
        direction=direction,  # type: ignore[arg-type]
        access=access,  # type: ignore[arg-type]
        protocol=proto,
        source_prefixes=src,
        destination_prefixes=dst,
        source_ports=src_ports,
        destination_ports=ports,
    )


def nsg(*rules: SecurityRule, name: str = "web-nsg", nsg_id: str = NSG_ID) -> NetworkSecurityGroup:
    return NetworkSecurityGroup(id=nsg_id, name=name, location="westeurope", rules=rules)


# The VirtualNetwork tag as the detector resolves it from a VNet 10.200.0.0/16 with nothing that could add
# to it (no gateway, no route table, no peering): complete.
VNET = {"VirtualNetwork": TagAddresses.exact(["10.200.0.0/16", "168.63.129.16/32"])}


def decide(
    group: NetworkSecurityGroup, source: str, port: int = 22, tags: object = VNET, **flow: str
) -> tuple[bool, str | None]:
    verdict = evaluate_nsg(group, Flow(port=port, source=source, **flow), tag_prefixes=tags)  # type: ignore[arg-type]
    return verdict.allowed, verdict.rule.name if verdict.rule else None


ALLOW_ANY = ("Allow",)


# (case, rules, source, port, allowed, deciding rule)
CASES = [
    ("empty NSG: the VNet gets in by default", (), "VirtualNetwork", 22, True, "AllowVnetInBound"),
    ("empty NSG: Internet hits DenyAllInBound", (), "Internet", 22, False, "DenyAllInBound"),
    ("empty NSG: a CIDR is not known to be in the VNet", (), "10.0.0.0/24", 22, False, "DenyAllInBound"),
    ("empty NSG: the load balancer gets in", (), "AzureLoadBalancer", 22, True, "AllowVnetInBound"),
    ("allow any", (rule("allow-ssh", 100, "Allow"),), "Internet", 22, True, "allow-ssh"),
    (
        "lowest priority number wins (deny first)",
        (rule("allow-ssh", 200, "Allow"), rule("deny-ssh", 100)),
        "VirtualNetwork",
        22,
        False,
        "deny-ssh",
    ),
    (
        "lowest priority number wins (allow first)",
        (rule("deny-ssh", 200), rule("allow-ssh", 100, "Allow")),
        "VirtualNetwork",
        22,
        True,
        "allow-ssh",
    ),
    ("range covers the port", (rule("deny", 100, ports=("20-25",)),), "VirtualNetwork", 22, False, "deny"),
    ("range ends at the port", (rule("deny", 100, ports=("10-22",)),), "VirtualNetwork", 22, False, "deny"),
    ("range starts at the port", (rule("deny", 100, ports=("22-30",)),), "VirtualNetwork", 22, False, "deny"),
    (
        "range misses the port",
        (rule("deny", 100, ports=("23-25",)),),
        "VirtualNetwork",
        22,
        True,
        "AllowVnetInBound",
    ),
    (
        "range below the port",
        (rule("deny", 100, ports=("1-21",)),),
        "VirtualNetwork",
        22,
        True,
        "AllowVnetInBound",
    ),
    (
        "list misses",
        (rule("deny", 100, ports=("80", "443")),),
        "VirtualNetwork",
        22,
        True,
        "AllowVnetInBound",
    ),
    ("list hits", (rule("deny", 100, ports=("80", "20-22")),), "VirtualNetwork", 22, False, "deny"),
    ("any port", (rule("deny", 100, ports=("*",)),), "VirtualNetwork", 3389, False, "deny"),
    ("0-65535", (rule("deny", 100, ports=("0-65535",)),), "VirtualNetwork", 3389, False, "deny"),
    ("other port", (rule("deny", 100, ports=("22",)),), "VirtualNetwork", 3389, True, "AllowVnetInBound"),
    ("protocol *", (rule("deny", 100, proto="*"),), "VirtualNetwork", 22, False, "deny"),
    ("protocol tcp any case", (rule("deny", 100, proto="TCP"),), "VirtualNetwork", 22, False, "deny"),
    ("protocol Udp", (rule("deny", 100, proto="Udp"),), "VirtualNetwork", 22, True, "AllowVnetInBound"),
    (
        "protocol All (effective rules)",
        (rule("deny", 100, proto="All"),),
        "VirtualNetwork",
        22,
        False,
        "deny",
    ),
    ("protocol Icmp", (rule("deny", 100, proto="Icmp"),), "VirtualNetwork", 22, True, "AllowVnetInBound"),
    (
        "an allow for UDP does not let TCP in",
        (rule("allow-udp", 100, "Allow", proto="Udp"),),
        "Internet",
        22,
        False,
        "DenyAllInBound",
    ),
    # sources: CIDRs
    (
        "deny overlaps half the source",
        (rule("deny", 100, src=("10.0.0.128/25",)),),
        "10.0.0.0/24",
        22,
        False,
        "deny",
    ),
    (
        "deny elsewhere",
        (rule("deny", 100, src=("10.9.0.0/16",)), rule("allow", 200, "Allow", src=("10.0.0.0/16",))),
        "10.0.0.0/24",
        22,
        True,
        "allow",
    ),
    (
        "allow covers the source",
        (rule("allow", 100, "Allow", src=("10.0.0.0/16",)),),
        "10.0.0.0/24",
        22,
        True,
        "allow",
    ),
    (
        "allow covers half: the other half meets DenyAll",
        (rule("allow", 100, "Allow", src=("10.0.0.0/25",)),),
        "10.0.0.0/24",
        22,
        False,
        "DenyAllInBound",
    ),
    (
        "two allows cover both halves",
        (rule("a1", 100, "Allow", src=("10.0.0.0/25",)), rule("a2", 110, "Allow", src=("10.0.0.128/25",))),
        "10.0.0.0/24",
        22,
        True,
        "a2",
    ),
    (
        "one allow with both halves in its list",
        (rule("a", 100, "Allow", src=("10.0.0.128/25", "10.0.0.0/25")),),
        "10.0.0.0/24",
        22,
        True,
        "a",
    ),
    (
        "allowed half, then a deny on the allowed half only",
        (rule("a1", 100, "Allow", src=("10.0.0.0/25",)), rule("d", 110, src=("10.0.0.0/26",))),
        "10.0.0.0/24",
        22,
        False,
        "DenyAllInBound",
    ),
    (
        "allowed half, then a deny on the other half",
        (rule("a1", 100, "Allow", src=("10.0.0.0/25",)), rule("d", 110, src=("10.0.0.200/32",))),
        "10.0.0.0/24",
        22,
        False,
        "d",
    ),
    ("plain IP source", (rule("allow", 100, "Allow", src=("10.1.2.0/24",)),), "10.1.2.3", 22, True, "allow"),
    ("plain IP rule", (rule("deny", 100, src=("10.1.2.3",)),), "10.1.2.0/24", 22, False, "deny"),
    (
        "plain IP rule misses",
        (rule("deny", 100, src=("10.1.2.3",)),),
        "10.1.3.0/24",
        22,
        False,
        "DenyAllInBound",
    ),
    # IPv6
    (
        "IPv6 source: an IPv4 deny does not touch it",
        (rule("deny-v4", 100, src=("0.0.0.0/0",)), rule("allow-v6", 200, "Allow", src=("2603:1000::/48",))),
        "2603:1000:0:1::/64",
        22,
        True,
        "allow-v6",
    ),
    (
        "IPv6 deny overlaps",
        (rule("deny-v6", 100, src=("2603:1000::/32",)),),
        "2603:1000::1",
        22,
        False,
        "deny-v6",
    ),
    (
        "IPv6 allow too narrow",
        (rule("allow-v6", 100, "Allow", src=("2603:1000::/64",)),),
        "2603:1000::/48",
        22,
        False,
        "DenyAllInBound",
    ),
    # service tags
    (
        "deny Internet spares the VNet",
        (rule("deny", 100, src=("Internet",)),),
        "VirtualNetwork",
        22,
        True,
        "AllowVnetInBound",
    ),
    (
        "deny VirtualNetwork spares Internet",
        (rule("deny", 100, src=("VirtualNetwork",)), rule("allow", 200, "Allow", src=("Internet",))),
        "Internet",
        22,
        True,
        "allow",
    ),
    (
        "tag names are case-insensitive",
        (rule("deny", 100, src=("virtualnetwork",)),),
        "VirtualNetwork",
        22,
        False,
        "deny",
    ),
    (
        "deny VirtualNetwork blocks the load balancer",
        (rule("deny", 100, src=("VirtualNetwork",)),),
        "AzureLoadBalancer",
        22,
        False,
        "deny",
    ),
    (
        "deny load balancer touches the VNet",
        (rule("deny", 100, src=("AzureLoadBalancer",)),),
        "VirtualNetwork",
        22,
        False,
        "deny",
    ),
    (
        "allow load balancer does not cover the VNet",
        (rule("allow", 100, "Allow", src=("AzureLoadBalancer",)), rule("deny", 200)),
        "VirtualNetwork",
        22,
        False,
        "deny",
    ),
    (
        "load balancer as a CIDR",
        (rule("deny", 100, src=("168.63.129.16/32",)),),
        "AzureLoadBalancer",
        22,
        False,
        "deny",
    ),
    (
        "CIDR rule misses the load balancer",
        (rule("deny", 100, src=("10.0.0.0/8",)),),
        "AzureLoadBalancer",
        22,
        True,
        "AllowVnetInBound",
    ),
    (
        "private deny spares Internet",
        (rule("deny", 100, src=("10.0.0.0/8",)), rule("a", 200, "Allow")),
        "Internet",
        22,
        True,
        "a",
    ),
    (
        "public deny hits Internet",
        (rule("deny", 100, src=("52.0.0.0/8",)), rule("a", 200, "Allow")),
        "Internet",
        22,
        False,
        "deny",
    ),
    (
        "public IPv6 deny hits Internet",
        (rule("deny", 100, src=("2603::/16",)), rule("a", 200, "Allow")),
        "Internet",
        22,
        False,
        "deny",
    ),
    (
        "Internet rule covers a public source",
        (rule("allow", 100, "Allow", src=("Internet",)),),
        "52.10.0.0/16",
        22,
        True,
        "allow",
    ),
    (
        "Internet rule misses a private source",
        (rule("deny", 100, src=("Internet",)),),
        "10.0.0.0/24",
        22,
        False,
        "DenyAllInBound",
    ),
    (
        "Internet rule covers only the public part",
        (rule("allow", 100, "Allow", src=("Internet",)), rule("d", 200, src=("10.0.0.0/8",))),
        "0.0.0.0/0",
        22,
        False,
        "d",
    ),
    (
        "IPv4-only allow leaves Internet over IPv6 uncovered",
        (rule("allow", 100, "Allow", src=("0.0.0.0/0",)),),
        "Internet",
        22,
        False,
        "DenyAllInBound",
    ),
    (
        "IPv4 and IPv6 /0 cover Internet",
        (rule("a4", 100, "Allow", src=("0.0.0.0/0",)), rule("a6", 110, "Allow", src=("::/0",))),
        "Internet",
        22,
        True,
        "a6",
    ),
    ("any source, any allow", (rule("allow", 100, "Allow"),), "*", 22, True, "allow"),
    ("Any spelled out", (rule("allow", 100, "Allow", src=("Any",)),), "any", 22, True, "allow"),
    (
        "any source is more than the VNet and Internet",
        (rule("a", 100, "Allow", src=("VirtualNetwork",)), rule("b", 110, "Allow", src=("Internet",))),
        "*",
        22,
        False,
        "DenyAllInBound",
    ),
    # unknown service tags, both ways
    (
        "deny with an unknown tag is assumed to match",
        (rule("deny", 100, src=("AzureCloud",)),),
        "52.1.1.0/24",
        22,
        False,
        "deny",
    ),
    (
        "deny with an unknown tag blocks a tag source",
        (rule("deny", 100, src=("AzureCloud",)),),
        "VirtualNetwork",
        22,
        False,
        "deny",
    ),
    (
        "allow with an unknown tag is assumed not to match",
        (rule("allow", 100, "Allow", src=("AzureCloud",)),),
        "52.1.1.0/24",
        22,
        False,
        "DenyAllInBound",
    ),
    (
        "same unknown tag on both sides matches",
        (rule("allow", 100, "Allow", src=("AzureCloud",)),),
        "AzureCloud",
        22,
        True,
        "allow",
    ),
    # outbound rules never decide inbound traffic
    (
        "outbound deny is ignored",
        (rule("deny-out", 100, direction="Outbound"),),
        "VirtualNetwork",
        22,
        True,
        "AllowVnetInBound",
    ),
]


@pytest.mark.parametrize(
    ("rules", "source", "port", "allowed", "decider"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_inbound_verdict(
    rules: tuple[SecurityRule, ...], source: str, port: int, allowed: bool, decider: str
) -> None:
    assert decide(nsg(*rules), source, port) == (allowed, decider)


def test_verdict_names_the_rule_its_nsg_and_level() -> None:
    verdict = evaluate_nsg(nsg(rule("deny-ssh", 120)), Flow(port=22, source="VirtualNetwork"), level="subnet")
    assert verdict.allowed is False
    assert verdict.rule is not None
    assert (verdict.rule.name, verdict.rule.priority, verdict.rule.access) == ("deny-ssh", 120, "Deny")
    assert (verdict.rule.nsg_id, verdict.rule.level, verdict.rule.default) == (NSG_ID, "subnet", False)
    assert verdict.assumed is False
    assert "deny-ssh" in verdict.reason and "120" in verdict.reason and "subnet NSG web-nsg" in verdict.reason
    assert verdict.rule.to_dict() == {
        "rule": "deny-ssh",
        "priority": 120,
        "access": "Deny",
        "direction": "Inbound",
        "nsg_id": NSG_ID,
        "level": "subnet",
        "default_rule": False,
    }


def test_default_rule_is_flagged_as_default() -> None:
    verdict = evaluate_nsg(nsg(), Flow(port=22, source="Internet"))
    assert verdict.rule is not None and verdict.rule.default is True
    assert verdict.rule.priority == 65500


def test_uncovered_part_is_reported() -> None:
    verdict = evaluate_nsg(
        nsg(rule("a", 100, "Allow", src=("10.0.0.0/25",))), Flow(port=22, source="10.0.0.0/24")
    )
    assert verdict.uncovered == ("10.0.0.128/25",)
    verdict = evaluate_nsg(nsg(rule("a", 100, "Allow", src=("0.0.0.0/0",))), Flow(port=22, source="Internet"))
    assert verdict.uncovered == ("Internet (IPv6)",)


class TestAssumptions:
    def test_unknown_tag_deny_is_marked_assumed(self) -> None:
        verdict = evaluate_nsg(
            nsg(rule("deny", 100, src=("AzureCloud",))), Flow(port=22, source="52.1.1.0/24")
        )
        assert (verdict.allowed, verdict.assumed) == (False, True)
        assert "assumed" in verdict.reason

    def test_known_deny_is_not_assumed(self) -> None:
        verdict = evaluate_nsg(
            nsg(rule("deny", 100, src=("52.0.0.0/8",))), Flow(port=22, source="52.1.1.0/24")
        )
        assert (verdict.allowed, verdict.assumed) == (False, False)
        assert "assumed" not in verdict.reason

    def test_allow_passed_over_makes_the_final_deny_assumed(self) -> None:
        verdict = evaluate_nsg(
            nsg(rule("allow", 100, "Allow", src=("AzureCloud",))), Flow(port=22, source="52.1.1.0/24")
        )
        assert (verdict.allowed, verdict.rule and verdict.rule.name, verdict.assumed) == (
            False,
            "DenyAllInBound",
            True,
        )
        assert "could not be evaluated" in verdict.reason

    def test_vnet_allow_over_a_cidr_is_not_counted(self) -> None:
        verdict = evaluate_nsg(nsg(), Flow(port=22, source="10.0.0.0/24"))
        assert (verdict.allowed, verdict.assumed) == (False, True)

    def test_allow_that_was_decidable_leaves_no_assumption(self) -> None:
        verdict = evaluate_nsg(
            nsg(rule("a", 100, "Allow", src=("10.9.0.0/16",))), Flow(port=22, source="Internet")
        )
        assert (verdict.allowed, verdict.assumed) == (False, False)

    def test_allowed_verdicts_never_rest_on_assumptions(self) -> None:
        verdict = evaluate_nsg(nsg(rule("allow", 100, "Allow")), Flow(port=22, source="AzureCloud"))
        assert (verdict.allowed, verdict.assumed) == (True, False)


class TestDestination:
    def test_deny_for_another_address_does_not_apply(self) -> None:
        group = nsg(rule("deny-one", 100, dst=("10.0.0.5/32",)))
        assert decide(group, "VirtualNetwork", destination="10.0.0.4") == (True, "AllowVnetInBound")

    def test_deny_for_this_address_applies(self) -> None:
        group = nsg(rule("deny-one", 100, dst=("10.0.0.5/32",)))
        assert decide(group, "VirtualNetwork", destination="10.0.0.5") == (False, "deny-one")

    def test_unknown_destination_makes_a_deny_apply(self) -> None:
        verdict = evaluate_nsg(
            nsg(rule("deny-one", 100, dst=("10.0.0.5/32",))), Flow(port=22, source="VirtualNetwork")
        )
        assert (verdict.allowed, verdict.assumed) == (False, True)

    def test_unknown_destination_makes_an_allow_not_count(self) -> None:
        group = nsg(rule("allow-one", 100, "Allow", dst=("10.0.0.5/32",)))
        assert decide(group, "Internet") == (False, "DenyAllInBound")
        assert decide(group, "Internet", destination="10.0.0.5") == (True, "allow-one")

    def test_vnet_destination_always_holds_the_vm(self) -> None:
        assert decide(nsg(rule("deny", 100, dst=("VirtualNetwork",))), "VirtualNetwork") == (False, "deny")

    def test_internet_destination_never_holds_the_vm(self) -> None:
        assert decide(nsg(rule("deny", 100, dst=("Internet",))), "VirtualNetwork") == (
            True,
            "AllowVnetInBound",
        )

    def test_application_security_group_is_unknown(self) -> None:
        asg = "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Network/applicationSecurityGroups/web"
        verdict = evaluate_nsg(nsg(rule("deny", 100, dst=(asg,))), Flow(port=22, source="VirtualNetwork"))
        assert (verdict.allowed, verdict.assumed) == (False, True)


class TestSourcePorts:
    def test_deny_on_some_source_ports_is_assumed_to_match(self) -> None:
        verdict = evaluate_nsg(
            nsg(rule("d", 100, src_ports=("1024-65535",))), Flow(port=22, source="VirtualNetwork")
        )
        assert (verdict.allowed, verdict.assumed) == (False, True)

    def test_allow_on_some_source_ports_does_not_count(self) -> None:
        group = nsg(rule("a", 100, "Allow", src_ports=("1024-65535",)))
        assert decide(group, "Internet") == (False, "DenyAllInBound")

    def test_source_port_list_covering_everything_counts(self) -> None:
        group = nsg(rule("a", 100, "Allow", src_ports=("0-1023", "1024-65535")))
        assert decide(group, "Internet") == (True, "a")

    def test_source_port_list_with_a_gap_does_not_count(self) -> None:
        group = nsg(rule("a", 100, "Allow", src_ports=("0-1023", "1025-65535")))
        assert decide(group, "Internet") == (False, "DenyAllInBound")


class TestProtocol:
    def test_unknown_protocol_deny_is_assumed(self) -> None:
        verdict = evaluate_nsg(nsg(rule("d", 100, proto="Gre")), Flow(port=22, source="VirtualNetwork"))
        assert (verdict.allowed, verdict.assumed) == (False, True)

    def test_unknown_protocol_allow_does_not_count(self) -> None:
        assert decide(nsg(rule("a", 100, "Allow", proto="Gre")), "Internet") == (False, "DenyAllInBound")

    @pytest.mark.parametrize("proto", ["Esp", "Ah", "udp"])
    def test_other_known_protocols_never_match_tcp(self, proto: str) -> None:
        assert decide(nsg(rule("d", 100, proto=proto)), "VirtualNetwork") == (True, "AllowVnetInBound")


class TestPriorities:
    @pytest.mark.parametrize("order", [0, 1])
    def test_duplicate_priority_puts_deny_first(self, order: int) -> None:
        pair = [rule("allow-ssh", 100, "Allow"), rule("deny-ssh", 100)]
        group = nsg(*(pair if order == 0 else pair[::-1]))
        assert decide(group, "VirtualNetwork") == (False, "deny-ssh")

    def test_duplicate_priority_between_allows_is_ordered_by_name(self) -> None:
        group = nsg(rule("b-allow", 100, "Allow"), rule("a-allow", 100, "Allow"))
        assert decide(group, "Internet") == (True, "a-allow")

    def test_custom_rule_beats_default_rule(self) -> None:
        assert decide(nsg(rule("deny-vnet", 4096, src=("VirtualNetwork",))), "VirtualNetwork") == (
            False,
            "deny-vnet",
        )


class TestDefaultRules:
    def test_defaults_are_added_when_absent(self) -> None:
        names = [(r.name, r.priority, r.access) for r in effective_inbound_rules(nsg(rule("x", 300)))]
        assert names == [
            ("x", 300, "Deny"),
            ("AllowVnetInBound", 65000, "Allow"),
            ("AllowAzureLoadBalancerInBound", 65001, "Allow"),
            ("DenyAllInBound", 65500, "Deny"),
        ]

    def test_defaults_carried_by_the_nsg_are_not_repeated(self) -> None:
        group = NetworkSecurityGroup(
            NSG_ID, "web-nsg", "westeurope", rules=(), default_rules=DEFAULT_INBOUND_RULES
        )
        assert len(effective_inbound_rules(group)) == 3

    def test_defaults_carried_by_the_nsg_are_the_ones_used(self) -> None:
        # Whatever Azure reports as its default rule is what is evaluated (matched by name).
        custom = rule("AllowVnetInBound", 65000, "Deny", src=("VirtualNetwork",), ports=("*",), proto="*")
        group = NetworkSecurityGroup(NSG_ID, "web-nsg", "westeurope", rules=(), default_rules=(custom,))
        assert decide(group, "VirtualNetwork") == (False, "AllowVnetInBound")

    def test_outbound_rules_are_not_inbound_rules(self) -> None:
        group = nsg(rule("out", 100, direction="Outbound"))
        assert "out" not in [r.name for r in effective_inbound_rules(group)]


class TestPath:
    SUBNET_NSG_ID = NSG_ID.replace("web-nsg", "subnet-nsg")

    def subnet(self, *rules: SecurityRule) -> NetworkSecurityGroup:
        return nsg(*rules, name="subnet-nsg", nsg_id=self.SUBNET_NSG_ID)

    def test_both_allow(self) -> None:
        verdict = evaluate_path(
            Flow(22, "Internet"), self.subnet(rule("s", 100, "Allow")), nsg(rule("n", 100, "Allow"))
        )
        assert verdict.allowed is True
        assert verdict.rule is not None and (verdict.rule.name, verdict.rule.level) == ("n", "nic")
        assert "subnet NSG subnet-nsg allowed it too" in verdict.reason

    def test_subnet_denies_even_when_the_nic_allows(self) -> None:
        verdict = evaluate_path(
            Flow(22, "Internet"), self.subnet(rule("s-deny", 100)), nsg(rule("n", 100, "Allow"))
        )
        assert verdict.allowed is False
        assert verdict.rule is not None
        assert (verdict.rule.name, verdict.rule.level, verdict.rule.nsg_id) == (
            "s-deny",
            "subnet",
            self.SUBNET_NSG_ID,
        )

    def test_nic_denies_after_the_subnet_allows(self) -> None:
        verdict = evaluate_path(
            Flow(22, "Internet"), self.subnet(rule("s", 100, "Allow")), nsg(rule("n-deny", 100))
        )
        assert verdict.allowed is False
        assert verdict.rule is not None and (verdict.rule.name, verdict.rule.level) == ("n-deny", "nic")

    def test_subnet_is_evaluated_first_when_both_deny(self) -> None:
        verdict = evaluate_path(
            Flow(22, "Internet"), self.subnet(rule("s-deny", 300)), nsg(rule("n-deny", 100))
        )
        assert verdict.rule is not None and verdict.rule.name == "s-deny"

    def test_no_nsg_at_all_lets_everything_in(self) -> None:
        verdict = evaluate_path(Flow(22, "Internet"), None, None)
        assert (verdict.allowed, verdict.rule) == (True, None)
        assert "no NSG" in verdict.reason

    def test_only_a_subnet_nsg(self) -> None:
        verdict = evaluate_path(Flow(22, "Internet"), self.subnet(), None)
        assert verdict.allowed is False
        assert verdict.rule is not None and (verdict.rule.name, verdict.rule.level) == (
            "DenyAllInBound",
            "subnet",
        )

    def test_only_a_nic_nsg(self) -> None:
        verdict = evaluate_path(Flow(22, "VirtualNetwork"), None, nsg())
        assert verdict.allowed is True
        assert verdict.rule is not None and (verdict.rule.name, verdict.rule.level) == (
            "AllowVnetInBound",
            "nic",
        )
        assert "allowed it too" not in verdict.reason


class TestTagPrefixes:
    VNET = {"VirtualNetwork": ["10.0.0.0/16"]}

    def test_known_vnet_range_lets_the_default_rule_cover_a_cidr(self) -> None:
        verdict = evaluate_nsg(nsg(), Flow(22, "10.0.1.0/24"), tag_prefixes=self.VNET)
        assert (verdict.allowed, verdict.rule and verdict.rule.name) == (True, "AllowVnetInBound")

    def test_cidr_outside_the_known_vnet_is_not_covered(self) -> None:
        verdict = evaluate_nsg(nsg(), Flow(22, "10.1.0.0/24"), tag_prefixes=self.VNET)
        assert (verdict.allowed, verdict.assumed) == (False, False)

    def test_deny_on_the_vnet_tag_spares_a_cidr_outside_it(self) -> None:
        group = nsg(rule("d", 100, src=("VirtualNetwork",)), rule("a", 200, "Allow"))
        assert evaluate_nsg(group, Flow(22, "52.1.0.0/16"), tag_prefixes=self.VNET).allowed is True
        assert evaluate_nsg(group, Flow(22, "52.1.0.0/16")).allowed is False

    def test_source_tag_is_expanded(self) -> None:
        group = nsg(rule("a", 100, "Allow", src=("10.0.0.0/8",)), rule("d", 200))
        assert evaluate_nsg(group, Flow(22, "VirtualNetwork"), tag_prefixes=self.VNET).allowed is True
        assert evaluate_nsg(group, Flow(22, "VirtualNetwork")).allowed is False

    def test_tag_names_match_case_insensitively(self) -> None:
        verdict = evaluate_nsg(
            nsg(), Flow(22, "10.0.1.0/24"), tag_prefixes={"virtualnetwork": ["10.0.0.0/16"]}
        )
        assert verdict.allowed is True

    def test_bad_expansion_is_rejected(self) -> None:
        with pytest.raises(InvalidInput, match="VirtualNetwork"):
            evaluate_nsg(nsg(), Flow(22, "VirtualNetwork"), tag_prefixes={"VirtualNetwork": ["ten"]})


class TestBadInput:
    @pytest.mark.parametrize("spec", ["abc", "25-20", "70000", "-5", "1-", "", "2 2", "٢٢"])
    def test_bad_port_spec_names_the_rule(self, spec: str) -> None:
        with pytest.raises(InvalidInput, match="rule broken"):
            evaluate_nsg(nsg(rule("broken", 100, ports=(spec,))), Flow(22, "VirtualNetwork"))

    @pytest.mark.parametrize("source", ["", "10.0.0.300/24", "/subscriptions/x", "a b", "*/0"])
    def test_bad_management_source(self, source: str) -> None:
        with pytest.raises(InvalidInput, match="management source"):
            evaluate_nsg(nsg(), Flow(22, source))

    @pytest.mark.parametrize("port", [-1, 65536, True])
    def test_bad_flow_port(self, port: int) -> None:
        with pytest.raises(InvalidInput, match="port"):
            Flow(port, "VirtualNetwork")

    def test_bad_destination(self) -> None:
        with pytest.raises(InvalidInput, match="destination"):
            Flow(22, "VirtualNetwork", destination="vm1")

    def test_zero_and_top_ports_are_valid(self) -> None:
        assert Flow(0, "*").port == 0 and Flow(65535, "*").port == 65535


class TestPortSpecs:
    @pytest.mark.parametrize(
        ("spec", "expected"),
        [
            ("22", (22, 22)),
            (" 22 ", (22, 22)),
            ("20-25", (20, 25)),
            ("20 - 25", (20, 25)),
            ("*", (0, 65535)),
            ("Any", (0, 65535)),
            ("0", (0, 0)),
            ("65535", (65535, 65535)),
            ("0-65535", (0, 65535)),
        ],
    )
    def test_parse(self, spec: str, expected: tuple[int, int]) -> None:
        assert parse_port_spec(spec) == expected


@given(st.integers(0, 65535), st.integers(0, 65535), st.integers(0, 65535))
def test_port_range_membership(a: int, b: int, port: int) -> None:
    low, high = min(a, b), max(a, b)
    assert parse_port_spec(f"{low}-{high}") == (low, high)
    assert ports_cover([f"{low}-{high}"], port) == (low <= port <= high)
    assert ports_cover([str(a)], port) == (a == port)


@given(st.integers(0, 65535), st.integers(0, 65535))
def test_reversed_port_range_is_an_error(a: int, b: int) -> None:
    if a > b:
        with pytest.raises(InvalidInput):
            parse_port_spec(f"{a}-{b}")


@given(st.integers(65536, 10**6))
def test_port_above_range_is_an_error(port: int) -> None:
    with pytest.raises(InvalidInput):
        parse_port_spec(str(port))


def test_source_pieces_split_tags_by_family() -> None:
    # Unread, VirtualNetwork is the host address plus an unknown rest in each family.
    assert str(source_pieces("VirtualNetwork")[0]) == "168.63.129.16/32"
    assert len(source_pieces("VirtualNetwork")) == 3
    assert [str(p) for p in source_pieces("VirtualNetwork", VNET)] == ["10.200.0.0/16", "168.63.129.16/32"]
    assert [str(p) for p in source_pieces("AzureLoadBalancer")] == ["168.63.129.16/32"]
    assert [str(p) for p in source_pieces("*")] == ["0.0.0.0/0", "::/0"]


# ------------------------------------------------------------------- brute force against the evaluator

BASE = ipaddress.ip_network("10.0.0.0/27")
SUBNETS = [str(n) for length in range(27, 33) for n in BASE.subnets(new_prefix=length)]


@st.composite
def nsgs_and_sources(draw: st.DrawFn) -> tuple[NetworkSecurityGroup, str]:
    priorities = draw(st.lists(st.integers(100, 4095), min_size=0, max_size=7, unique=True))
    rules = tuple(
        rule(
            f"r{i}",
            priority,
            draw(st.sampled_from(["Allow", "Deny"])),
            src=tuple(draw(st.lists(st.sampled_from(SUBNETS), min_size=1, max_size=3))),
            ports=(draw(st.sampled_from(["22", "20-30", "80", "*"])),),
            proto=draw(st.sampled_from(["Tcp", "Udp", "*"])),
        )
        for i, priority in enumerate(priorities)
    )
    # A closing allow inside BASE keeps defaults out of the picture (they need tags).
    rules += (rule("close", 4096, draw(st.sampled_from(["Allow", "Deny"])), src=(str(BASE),), ports=("*",)),)
    return nsg(*rules), draw(st.sampled_from(SUBNETS))


def brute_force(group: NetworkSecurityGroup, source: str, port: int) -> tuple[bool, int]:
    """Every address on its own: allowed when all are; else the best-priority deny that stops one."""
    ordered = sorted(group.rules, key=lambda r: r.priority)
    stoppers = []
    for address in ipaddress.ip_network(source):
        for r in ordered:
            if r.protocol not in ("Tcp", "*") or not ports_cover(r.destination_ports, port):
                continue
            if any(address in ipaddress.ip_network(p) for p in r.source_prefixes):
                if r.access == "Deny":
                    stoppers.append(r.priority)
                break
    return (not stoppers, min(stoppers) if stoppers else 0)


@settings(max_examples=300, deadline=None)
@given(nsgs_and_sources())
def test_evaluator_agrees_with_per_address_brute_force(case: tuple[NetworkSecurityGroup, str]) -> None:
    group, source = case
    verdict = evaluate_nsg(group, Flow(22, source))
    allowed, stopper = brute_force(group, source, 22)
    assert verdict.allowed == allowed
    assert verdict.assumed is False
    if not allowed:
        assert verdict.rule is not None and verdict.rule.priority == stopper


class TestMoreRelations:
    def test_deny_any_ipv4_blocks_a_tag_source_for_certain(self) -> None:
        verdict = evaluate_nsg(nsg(rule("d", 100, src=("0.0.0.0/0",))), Flow(22, "VirtualNetwork"))
        assert (verdict.allowed, verdict.assumed, verdict.uncovered) == (
            False,
            False,
            ("168.63.129.16/32", "VirtualNetwork (IPv4)"),
        )

    def test_same_tag_deny_is_certain(self) -> None:
        verdict = evaluate_nsg(nsg(rule("d", 100, src=("VirtualNetwork",))), Flow(22, "VirtualNetwork"))
        assert (verdict.allowed, verdict.assumed) == (False, False)

    def test_vnet_deny_on_the_load_balancer_is_certain(self) -> None:
        verdict = evaluate_nsg(nsg(rule("d", 100, src=("VirtualNetwork",))), Flow(22, "AzureLoadBalancer"))
        assert (verdict.allowed, verdict.assumed, verdict.uncovered) == (
            False,
            False,
            ("168.63.129.16/32",),
        )

    def test_load_balancer_deny_on_the_vnet_is_certain(self) -> None:
        verdict = evaluate_nsg(nsg(rule("d", 100, src=("AzureLoadBalancer",))), Flow(22, "VirtualNetwork"))
        assert (verdict.allowed, verdict.assumed) == (False, False)

    def test_cidr_holding_the_host_address_covers_the_load_balancer(self) -> None:
        group = nsg(rule("a", 100, "Allow", src=("168.63.129.0/24",)), rule("d", 200))
        assert decide(group, "AzureLoadBalancer") == (True, "a")

    def test_cidr_without_the_host_address_does_not_cover_the_load_balancer(self) -> None:
        group = nsg(rule("a", 100, "Allow", src=("10.0.0.0/8",)), rule("d", 200))
        assert decide(group, "AzureLoadBalancer") == (False, "d")

    def test_internet_allow_leaves_exactly_the_private_ranges(self) -> None:
        # After "Internet" is allowed, only non-public space is left of 0.0.0.0/0: a Deny on a public
        # range no longer matters, a Deny on a private one does.
        group = nsg(
            rule("a", 100, "Allow", src=("Internet",)),
            rule("a10", 110, "Allow", src=("10.0.0.0/8",)),
            rule("d-public", 120, src=("52.0.0.0/8",)),
        )
        verdict = evaluate_nsg(group, Flow(22, "0.0.0.0/0"), tag_prefixes=VNET)
        assert verdict.rule is not None and verdict.rule.name == "DenyAllInBound"
        assert "10.0.0.0/8" not in verdict.uncovered and "172.16.0.0/12" in verdict.uncovered

    def test_internet_allow_covers_the_public_part_of_a_mixed_cidr(self) -> None:
        group = nsg(rule("a", 100, "Allow", src=("Internet",)), rule("a2", 110, "Allow", src=("10.0.0.0/8",)))
        assert decide(group, "8.0.0.0/6") == (True, "a2")  # 8.0.0.0-11.255.255.255 holds 10/8

    def test_vnet_expansion_makes_a_deny_on_the_tag_hit_a_cidr_inside(self) -> None:
        group = nsg(rule("d", 100, src=("VirtualNetwork",)), rule("a", 200, "Allow"))
        verdict = evaluate_nsg(
            group, Flow(22, "10.0.1.0/24"), tag_prefixes={"VirtualNetwork": ["10.0.0.0/16"]}
        )
        assert (verdict.allowed, verdict.rule and verdict.rule.name, verdict.assumed) == (False, "d", False)

    def test_unknown_tag_source_against_a_cidr_allow_is_not_covered(self) -> None:
        verdict = evaluate_nsg(nsg(rule("a", 100, "Allow", src=("52.0.0.0/8",))), Flow(22, "AzureCloud"))
        assert (verdict.allowed, verdict.assumed) == (False, True)

    def test_allow_all_protocol_spelling(self) -> None:
        assert decide(nsg(rule("a", 100, "Allow", proto="All")), "Internet") == (True, "a")

    def test_unknown_protocol_allow_is_an_assumption(self) -> None:
        verdict = evaluate_nsg(nsg(rule("a", 100, "Allow", proto="Gre")), Flow(22, "Internet"))
        assert (verdict.allowed, verdict.assumed) == (False, True)

    def test_source_ports_from_one_are_not_all_ports(self) -> None:
        assert decide(nsg(rule("a", 100, "Allow", src_ports=("1-65535",))), "Internet") == (
            False,
            "DenyAllInBound",
        )
        assert decide(nsg(rule("a", 100, "Allow", src_ports=("0-65534",))), "Internet") == (
            False,
            "DenyAllInBound",
        )


class TestTexts:
    def test_denied_reason(self) -> None:
        verdict = evaluate_nsg(nsg(rule("deny-ssh", 120)), Flow(22, "VirtualNetwork"))
        assert (
            verdict.reason
            == "TCP 22 from VirtualNetwork is denied by rule deny-ssh (priority 120) of nic NSG web-nsg"
        )

    def test_allowed_reason(self) -> None:
        verdict = evaluate_nsg(nsg(rule("allow-ssh", 110, "Allow")), Flow(22, "Internet"), "subnet")
        assert (
            verdict.reason
            == "TCP 22 from Internet is allowed by rule allow-ssh (priority 110) of subnet NSG web-nsg"
        )

    def test_assumed_reason(self) -> None:
        verdict = evaluate_nsg(nsg(rule("d", 100, src=("AzureCloud",))), Flow(22, "52.1.1.0/24"))
        assert verdict.reason == (
            "TCP 22 from 52.1.1.0/24 is denied by rule d (priority 100) of nic NSG web-nsg "
            "(assumed: part of this rule cannot be evaluated, so it is taken to match)"
        )

    def test_default_level_is_nic(self) -> None:
        verdict = evaluate_nsg(nsg(), Flow(22, "Internet"))
        assert verdict.rule is not None and verdict.rule.level == "nic"

    def test_nsg_without_a_name_is_named_by_id(self) -> None:
        verdict = evaluate_nsg(nsg(name=""), Flow(22, "Internet"))
        assert f"nic NSG {NSG_ID}" in verdict.reason

    def test_no_nsg_reason(self) -> None:
        assert evaluate_path(Flow(3389, "Internet"), None, None).reason == (
            "no NSG on the subnet or the NIC: Azure lets TCP 3389 from Internet through"
        )

    def test_nothing_matched_at_all(self) -> None:
        # Only reachable when the NSG reports default rules that differ from Azure's: nothing decides.
        odd_defaults = (
            rule("DenyAllInBound", 65500, ports=("80",)),
            rule("AllowVnetInBound", 65000, ports=("80",)),
            rule("AllowAzureLoadBalancerInBound", 65001, ports=("80",)),
        )
        group = NetworkSecurityGroup(NSG_ID, "web-nsg", "westeurope", rules=(), default_rules=odd_defaults)
        verdict = evaluate_nsg(group, Flow(22, "VirtualNetwork"))
        assert (verdict.allowed, verdict.rule, verdict.assumed) == (False, None, False)
        assert verdict.uncovered == ("168.63.129.16/32", "VirtualNetwork (IPv4)", "VirtualNetwork (IPv6)")
        assert verdict.reason == (
            "TCP 22 from VirtualNetwork: no inbound rule of nic NSG web-nsg admits "
            "168.63.129.16/32, VirtualNetwork (IPv4), VirtualNetwork (IPv6)"
        )


def test_non_text_inputs_are_clear_errors() -> None:
    with pytest.raises(InvalidInput, match="is not a port"):
        parse_port_spec(None)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="management source"):
        source_pieces(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("abc", "is not a port, a range 'low-high' or '\\*'"),
        ("70000", "is outside 0-65535"),
        ("9-70000", "is outside 0-65535"),
        ("25-20", "starts after it ends"),
    ],
)
def test_port_spec_messages(spec: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_port_spec(spec)


@pytest.mark.parametrize("source", ["9Storage", "a/b", "x y"])
def test_tag_names_start_with_a_letter_and_hold_word_characters(source: str) -> None:
    with pytest.raises(InvalidInput, match="management source"):
        source_pieces(source)


@pytest.mark.parametrize("source", ["Storage.WestEurope", "Az-Cloud_1", "a"])
def test_tag_like_sources_are_accepted(source: str) -> None:
    assert len(source_pieces(source)) == 2


def test_unknown_tag_is_described_as_written() -> None:
    verdict = evaluate_nsg(nsg(), Flow(22, "AzureCloud"))
    assert verdict.uncovered == ("AzureCloud (IPv4)", "AzureCloud (IPv6)")


@pytest.mark.parametrize("word", ["*", "any", "Any", "ANY"])
def test_any_source_is_every_address(word: str) -> None:
    verdict = evaluate_nsg(nsg(rule("d", 100, src=("10.0.0.0/8",))), Flow(22, word))
    assert (verdict.allowed, verdict.assumed, verdict.uncovered) == (False, False, ("0.0.0.0/0",))


def test_both_assumptions_are_named_in_the_reason() -> None:
    group = nsg(rule("a", 100, "Allow", src=("AzureCloud",)), rule("d", 200, src=("Storage",)))
    verdict = evaluate_nsg(group, Flow(22, "52.1.1.0/24"))
    assert verdict.reason.endswith(
        "(assumed: part of this rule cannot be evaluated, so it is taken to match) "
        "(an earlier Allow rule could not be evaluated for this source and was not counted)"
    )


ASG = "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Network/applicationSecurityGroups/admins"


def test_source_application_security_group_deny_is_assumed_to_match() -> None:
    verdict = evaluate_nsg(nsg(rule("deny-asg", 100, src=(ASG,))), Flow(22, "10.1.0.0/16"))
    assert (verdict.allowed, verdict.rule and verdict.rule.name, verdict.assumed) == (False, "deny-asg", True)


def test_source_application_security_group_allow_does_not_count() -> None:
    verdict = evaluate_nsg(nsg(rule("allow-asg", 100, "Allow", src=(ASG,))), Flow(22, "VirtualNetwork"))
    assert verdict.rule is not None and verdict.rule.name == "AllowVnetInBound"
    verdict = evaluate_nsg(nsg(rule("allow-asg", 100, "Allow", src=(ASG,))), Flow(22, "10.1.0.0/16"))
    assert (verdict.allowed, verdict.assumed) == (False, True)
