"""Planning and applying the management allow rule of restore-management-access."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autoremediation.detectors.nsg import Flow, evaluate_nsg
from autoremediation.detectors.nsg_fix import (
    AllowRuleNotEffective,
    AllowRulePlan,
    NoFreePriority,
    apply_management_allow,
    base_rule_name,
    next_free_priority,
    plan_management_allow,
    quarantine_reason,
)
from autoremediation.errors import InvalidInput, RemediationError
from autoremediation.ports import NetworkSecurityGroup, SecurityRule

from .test_lockout_detector import FakeNetwork, nsg_id, rule, vm

QUARANTINE = "autoremediation-quarantine"
SOURCES = ("10.1.0.0/16",)


def group(*rules: SecurityRule, tags: dict[str, str] | None = None) -> NetworkSecurityGroup:
    return NetworkSecurityGroup(nsg_id("web-nsg"), "web-nsg", "westeurope", rules, tags=tags or {})


def plan(nsg: NetworkSecurityGroup, port: int = 22, sources: tuple[str, ...] = SOURCES, **vm_tags: str):  # type: ignore[no-untyped-def]
    return plan_management_allow(nsg, vm("web1", tags=dict(vm_tags)), port, sources, QUARANTINE)


def test_allow_rule_goes_just_above_the_blocker() -> None:
    result = plan(group(rule("deny-ssh", 300)))
    assert result.action == "add"
    assert result.rule is not None
    assert result.rule == SecurityRule(
        name="allow-mgmt-ssh-autoremediation",
        priority=299,
        direction="Inbound",
        access="Allow",
        protocol="Tcp",
        source_prefixes=SOURCES,
        destination_prefixes=("*",),
        source_ports=("*",),
        destination_ports=("22",),
        description=result.rule.description,
    )
    assert result.blocking is not None and (result.blocking.name, result.blocking.priority) == (
        "deny-ssh",
        300,
    )
    assert (result.nsg_id, result.port, result.sources) == (nsg_id("web-nsg"), 22, SOURCES)
    assert "deny-ssh (300)" in result.reason and "allow-mgmt-ssh-autoremediation (299)" in result.reason


def test_description_says_who_and_why_within_arm_limits() -> None:
    description = plan(group(rule("deny-ssh", 300))).rule.description
    assert description.startswith("Added by autoremediation (restore-management-access)")
    assert "deny-ssh (300)" in description and "web1" in description
    long = plan(group(rule("d" * 80, 300))).rule.description
    assert len(long) == 140


def test_rdp_and_other_ports_have_their_own_names() -> None:
    assert base_rule_name(22) == "allow-mgmt-ssh-autoremediation"
    assert base_rule_name(3389) == "allow-mgmt-rdp-autoremediation"
    assert base_rule_name(2222) == "allow-mgmt-tcp2222-autoremediation"
    rdp = plan(group(rule("deny-rdp", 500, destination_ports=("3389",))), port=3389)
    assert (rdp.rule.name, rdp.rule.priority, rdp.rule.destination_ports) == (
        "allow-mgmt-rdp-autoremediation",
        499,
        ("3389",),
    )


class TestPriority:
    def test_taken_priorities_are_skipped(self) -> None:
        nsg = group(
            rule("deny-ssh", 300),
            rule("x", 299, destination_ports=("80",)),
            rule("y", 298, "Allow", destination_ports=("443",)),
        )
        assert plan(nsg).rule.priority == 297

    def test_outbound_priorities_do_not_collide_with_inbound(self) -> None:
        nsg = group(rule("deny-ssh", 300), rule("out", 299, direction="Outbound"))
        assert plan(nsg).rule.priority == 299

    def test_blocker_at_the_floor_cannot_be_topped(self) -> None:
        with pytest.raises(NoFreePriority) as caught:
            plan(group(rule("deny-ssh", 100)))
        assert str(caught.value) == (
            "no NSG priority exists above 100: an allow rule cannot be placed above the blocking rule "
            "without moving a customer rule, which this tool never does"
        )

    def test_every_priority_above_the_blocker_taken(self) -> None:
        nsg = group(
            rule("deny-ssh", 103), *(rule(f"r{p}", p, destination_ports=("80",)) for p in (100, 101, 102))
        )
        with pytest.raises(NoFreePriority) as caught:
            plan(nsg)
        assert isinstance(caught.value, RemediationError)
        assert str(caught.value).startswith("no NSG priority between 100 and 102 is free: ")

    def test_only_the_floor_and_it_is_taken(self) -> None:
        with pytest.raises(NoFreePriority, match=r"^no NSG priority between 100 and 100 is free: "):
            plan(group(rule("deny-ssh", 101), rule("r100", 100, destination_ports=("80",))))

    def test_last_free_slot_is_the_floor(self) -> None:
        nsg = group(rule("deny-ssh", 103), *(rule(f"r{p}", p, destination_ports=("80",)) for p in (101, 102)))
        assert plan(nsg).rule.priority == 100

    def test_default_rule_blocker_gets_the_highest_custom_priority(self) -> None:
        result = plan(group())  # 10.1.0.0/16 is not known to be in the VNet: DenyAllInBound decides
        assert result.blocking is not None and result.blocking.name == "DenyAllInBound"
        assert result.rule.priority == 4096

    def test_default_rule_blocker_with_4096_taken(self) -> None:
        assert plan(group(rule("x", 4096, destination_ports=("80",)))).rule.priority == 4095

    def test_earliest_blocker_across_sources_sets_the_ceiling(self) -> None:
        nsg = group(
            rule("deny-a", 500, source_prefixes=("10.1.0.0/16",)),
            rule("deny-b", 400, source_prefixes=("10.2.0.0/16",)),
        )
        result = plan(nsg, sources=("10.1.0.0/16", "10.2.0.0/16"))
        assert result.rule.priority == 399
        assert result.blocking is not None and result.blocking.name == "deny-b"


@given(
    st.integers(101, 5000),
    st.sets(st.integers(100, 4096), max_size=60),
)
def test_next_free_priority_is_the_highest_free_one_below(ceiling: int, taken: set[int]) -> None:
    top = min(ceiling - 1, 4096)
    free = [p for p in range(100, top + 1) if p not in taken]
    if not free:
        with pytest.raises(NoFreePriority):
            next_free_priority(ceiling, taken)
        return
    chosen = next_free_priority(ceiling, taken)
    assert chosen == max(free)
    assert 100 <= chosen < ceiling and chosen <= 4096 and chosen not in taken


@given(st.sets(st.integers(100, 400), max_size=300), st.integers(101, 401))
def test_planned_rule_always_lands_above_the_blocker_and_fixes_it(taken: set[int], blocker: int) -> None:
    others = [rule(f"r{p}", p, "Allow", destination_ports=("80",)) for p in taken if p != blocker]
    nsg = group(rule("deny-ssh", blocker), *others)
    try:
        result = plan(nsg)
    except NoFreePriority:
        assert all(p in taken for p in range(100, blocker))
        return
    assert result.rule.priority < blocker and result.rule.priority not in taken
    fixed = replace(nsg, rules=(*nsg.rules, result.rule))
    assert evaluate_nsg(fixed, Flow(22, SOURCES[0])).allowed


class TestIdempotency:
    def test_nothing_to_do_when_already_reachable(self) -> None:
        result = plan(group(rule("allow-ssh", 100, "Allow"), rule("deny-ssh", 200)))
        assert (result.action, result.rules, result.rule) == ("none", (), None)
        assert "already lets TCP 22 in" in result.reason and "allow-ssh" in result.reason

    def test_second_plan_after_apply_changes_nothing(self) -> None:
        network = FakeNetwork()
        network.add_nsg(group(rule("deny-ssh", 300)))
        first = plan(network.get_nsg(nsg_id("web-nsg")))
        apply_management_allow(network, first)
        second = plan(network.get_nsg(nsg_id("web-nsg")))
        assert second.action == "none"
        assert "allow-mgmt-ssh-autoremediation" in second.reason

    def test_own_rule_below_the_blocker_is_moved_up_not_duplicated(self) -> None:
        own = rule("allow-mgmt-ssh-autoremediation", 600, "Allow", source_prefixes=SOURCES)
        result = plan(group(own, rule("deny-ssh", 300)))
        assert [(r.name, r.priority) for r in result.rules] == [("allow-mgmt-ssh-autoremediation", 299)]

    def test_own_rule_above_the_blocker_keeps_its_priority(self) -> None:
        own = rule("allow-mgmt-ssh-autoremediation", 150, "Allow", source_prefixes=("10.9.0.0/16",))
        result = plan(group(own, rule("deny-ssh", 300)))  # the sources changed since it was written
        assert [(r.name, r.priority, r.source_prefixes) for r in result.rules] == [
            ("allow-mgmt-ssh-autoremediation", 150, SOURCES)
        ]

    def test_own_rule_name_matches_case_insensitively(self) -> None:
        own = rule("Allow-Mgmt-SSH-Autoremediation", 150, "Allow", source_prefixes=("10.9.0.0/16",))
        assert plan(group(own, rule("deny-ssh", 300))).rule.priority == 150

    def test_customer_rule_with_a_similar_name_is_not_ours(self) -> None:
        theirs = rule("allow-mgmt-ssh-autoremediation2", 299, destination_ports=("80",))
        assert plan(group(theirs, rule("deny-ssh", 300))).rule.priority == 298


class TestQuarantine:
    @pytest.mark.parametrize("value", ["true", "yes", "1", "incident-42", "False-positive"])
    def test_vm_tag_skips(self, value: str) -> None:
        result = plan(group(rule("deny-ssh", 300)), **{QUARANTINE: value})
        assert (result.action, result.rules) == ("skip", ())
        assert f"VM web1 carries the quarantine tag {QUARANTINE}={value}" in result.reason

    def test_nsg_tag_skips(self) -> None:
        result = plan(group(rule("deny-ssh", 300), tags={QUARANTINE: "true"}))
        assert result.action == "skip"
        assert "NSG web-nsg carries the quarantine tag" in result.reason

    @pytest.mark.parametrize("value", ["", "false", "FALSE", " false "])
    def test_empty_or_false_does_not_skip(self, value: str) -> None:
        result = plan(group(rule("deny-ssh", 300), tags={QUARANTINE: value}), **{QUARANTINE: value})
        assert result.action == "add"

    def test_tag_name_is_case_insensitive(self) -> None:
        assert plan(group(rule("deny-ssh", 300)), **{"AutoRemediation-Quarantine": "true"}).action == "skip"

    def test_other_tags_do_not_skip(self) -> None:
        assert plan(group(rule("deny-ssh", 300)), quarantine="true").action == "add"

    def test_quarantine_wins_even_when_nothing_is_blocked(self) -> None:
        assert plan(group(), sources=("VirtualNetwork",), **{QUARANTINE: "true"}).action == "skip"

    def test_setting_in_name_value_form_uses_the_name(self) -> None:
        nsg = group(tags={QUARANTINE: "true"})
        assert quarantine_reason(f"{QUARANTINE}=true", vm("web1"), nsg) is not None
        assert quarantine_reason("", vm("web1"), nsg) is None


class TestTagSources:
    def test_tags_get_a_rule_each_and_cidrs_share_one(self) -> None:
        nsg = group(rule("deny-ssh", 300))
        result = plan(nsg, sources=("10.1.0.0/16", "VirtualNetwork", "192.168.1.0/24", "AzureBastion"))
        assert [(r.name, r.priority, r.source_prefixes) for r in result.rules] == [
            ("allow-mgmt-ssh-autoremediation", 299, ("10.1.0.0/16", "192.168.1.0/24")),
            ("allow-mgmt-ssh-autoremediation-virtualnetwork", 298, ("VirtualNetwork",)),
            ("allow-mgmt-ssh-autoremediation-azurebastion", 297, ("AzureBastion",)),
        ]

    def test_single_tag_uses_the_plain_name(self) -> None:
        result = plan(group(rule("deny-ssh", 300)), sources=("VirtualNetwork",))
        assert [(r.name, r.source_prefixes) for r in result.rules] == [
            ("allow-mgmt-ssh-autoremediation", ("VirtualNetwork",))
        ]

    @pytest.mark.parametrize(
        "source", ["*", "Any", "Internet", "AzureCloud", "0.0.0.0/0", "::/0", "8.0.0.0/8"]
    )
    def test_sources_that_open_the_port_to_the_world_are_refused(self, source: str) -> None:
        with pytest.raises(InvalidInput, match="REMEDIATION_MANAGEMENT_SOURCES"):
            plan(group(rule("deny-ssh", 300)), sources=("10.1.0.0/16", source))

    def test_ipv6_cidrs_join_the_cidr_rule(self) -> None:
        result = plan(group(rule("deny-ssh", 300)), sources=("fd00::/8", "VirtualNetwork", "10.0.0.0/8"))
        assert result.rules[0].source_prefixes == ("fd00::/8", "10.0.0.0/8")


class TestBadInput:
    @pytest.mark.parametrize("port", [0, -1, 65536, True, "22"])
    def test_bad_port(self, port: object) -> None:
        with pytest.raises(InvalidInput, match="management port"):
            plan(group(), port=port)  # type: ignore[arg-type]

    def test_no_sources(self) -> None:
        with pytest.raises(InvalidInput, match="no management sources"):
            plan(group(), sources=())


class TestApply:
    def setup_method(self) -> None:
        self.network = FakeNetwork()
        self.customer = (rule("deny-ssh", 300), rule("allow-web", 200, "Allow", destination_ports=("443",)))
        self.network.add_nsg(group(*self.customer))

    def test_writes_the_rule_and_verifies(self) -> None:
        result = plan(self.network.get_nsg(nsg_id("web-nsg")))
        written = apply_management_allow(self.network, result)
        assert [r.name for r in written] == ["allow-mgmt-ssh-autoremediation"]
        assert written[0].id.endswith("/securityRules/allow-mgmt-ssh-autoremediation")
        assert self.network.puts == [(nsg_id("web-nsg"), result.rule)]
        after = self.network.get_nsg(nsg_id("web-nsg"))
        assert evaluate_nsg(after, Flow(22, SOURCES[0])).allowed

    def test_customer_rules_are_left_as_they_were(self) -> None:
        apply_management_allow(self.network, plan(self.network.get_nsg(nsg_id("web-nsg"))))
        after = self.network.get_nsg(nsg_id("web-nsg"))
        assert [r for r in after.rules if not r.name.startswith("allow-mgmt")] == list(self.customer)

    def test_several_rules_are_all_written(self) -> None:
        result = plan(self.network.get_nsg(nsg_id("web-nsg")), sources=("10.1.0.0/16", "VirtualNetwork"))
        written = apply_management_allow(self.network, result)
        assert len(written) == len(self.network.puts) == 2

    def test_rule_that_does_not_take_effect_is_an_error(self) -> None:
        self.network.drop_writes = True
        with pytest.raises(AllowRuleNotEffective) as caught:
            apply_management_allow(
                self.network,
                plan(self.network.get_nsg(nsg_id("web-nsg")), sources=("10.1.0.0/16", "10.2.0.0/16")),
            )
        assert str(caught.value) == (
            "after writing allow-mgmt-ssh-autoremediation NSG web-nsg still blocks: "
            "TCP 22 from 10.1.0.0/16 is denied by rule deny-ssh (priority 300) of nic NSG web-nsg; "
            "TCP 22 from 10.2.0.0/16 is denied by rule deny-ssh (priority 300) of nic NSG web-nsg"
        )

    @pytest.mark.parametrize("tags", [{QUARANTINE: "true"}, {}])
    def test_skip_and_none_write_nothing(self, tags: dict[str, str]) -> None:
        nsg = self.network.get_nsg(nsg_id("web-nsg"))
        nsg = (
            replace(nsg, tags=tags) if tags else replace(nsg, rules=(rule("allow", 100, "Allow"), *nsg.rules))
        )
        result = plan(nsg)
        assert result.action in ("skip", "none")
        assert apply_management_allow(self.network, result) == ()
        assert self.network.puts == []


class TestPlanRecord:
    def test_skip_and_none_plans_say_what_they_are_about(self) -> None:
        skip = plan(group(rule("deny-ssh", 300)), **{QUARANTINE: "true"})
        none = plan(group(rule("allow-ssh", 100, "Allow")))
        for result in (skip, none):
            assert (result.nsg_id, result.port, result.sources, result.level) == (
                nsg_id("web-nsg"),
                22,
                SOURCES,
                "nic",
            )
            assert result.blocking is None

    def test_none_reason_is_exact(self) -> None:
        result = plan(
            group(rule("allow-ssh", 100, "Allow"), rule("allow-more", 90, "Allow")),
            sources=("10.1.0.0/16", "10.2.0.0/16"),
        )
        assert (
            result.reason == "NSG web-nsg already lets TCP 22 in from 10.1.0.0/16, 10.2.0.0/16 (allow-more)"
        )

    def test_add_reason_is_exact(self) -> None:
        result = plan(group(rule("deny-ssh", 300)), sources=("10.1.0.0/16", "VirtualNetwork"))
        assert result.reason == (
            "add allow-mgmt-ssh-autoremediation (299), allow-mgmt-ssh-autoremediation-virtualnetwork (298) "
            "to NSG web-nsg: deny-ssh (300) blocks TCP 22 from 10.1.0.0/16, VirtualNetwork; the private "
            "address of VM web1 is unknown, so the rule admits TCP 22 on every VM behind this NSG"
        )

    def test_add_reason_names_the_destination_when_it_is_known(self) -> None:
        result = plan_management_allow(
            group(rule("deny-ssh", 300)), vm("web1"), 22, SOURCES, QUARANTINE, destinations=["10.0.0.4"]
        )
        assert result.reason == (
            "add allow-mgmt-ssh-autoremediation (299) to NSG web-nsg: deny-ssh (300) blocks TCP 22 from "
            "10.1.0.0/16 to 10.0.0.4"
        )

    def test_subnet_only_nsg_is_recorded_at_subnet_level(self) -> None:
        nsg = replace(group(rule("deny-ssh", 300)), subnet_ids=("/subscriptions/s/x/subnets/web",))
        result = plan(nsg)
        assert result.level == "subnet"
        assert result.blocking is not None and result.blocking.level == "subnet"

    def test_level_given_by_the_caller_wins(self) -> None:
        result = plan_management_allow(
            group(rule("deny-ssh", 300)), vm("web1"), 22, SOURCES, QUARANTINE, level="subnet"
        )
        assert result.level == "subnet" and result.blocking is not None and result.blocking.level == "subnet"

    def test_nsg_whose_defaults_decide_nothing_still_gets_a_rule(self) -> None:
        odd = tuple(
            rule(name, priority, access, destination_ports=("80",))
            for name, priority, access in (
                ("AllowVnetInBound", 65000, "Allow"),
                ("AllowAzureLoadBalancerInBound", 65001, "Allow"),
                ("DenyAllInBound", 65500, "Deny"),
            )
        )
        result = plan(replace(group(), default_rules=odd))
        assert result.blocking is None
        assert [(r.name, r.priority) for r in result.rules] == [("allow-mgmt-ssh-autoremediation", 4096)]
        assert ": no allowing rule blocks TCP 22 from 10.1.0.0/16; " in result.reason
        assert "no rule blocked TCP 22" in result.rules[0].description


class TestMorePriorities:
    def test_own_rule_at_the_floor_keeps_it(self) -> None:
        own = rule("allow-mgmt-ssh-autoremediation", 100, "Allow", source_prefixes=("10.9.0.0/16",))
        assert plan(group(own, rule("deny-ssh", 300))).rule.priority == 100

    def test_own_tag_rule_is_recognised_by_its_suffix(self) -> None:
        own = rule(
            "allow-mgmt-ssh-autoremediation-virtualnetwork", 150, "Allow", source_prefixes=("AzureCloud",)
        )
        result = plan(group(own, rule("deny-ssh", 300)), sources=("10.1.0.0/16", "VirtualNetwork"))
        assert [(r.name, r.priority) for r in result.rules] == [
            ("allow-mgmt-ssh-autoremediation", 299),
            ("allow-mgmt-ssh-autoremediation-virtualnetwork", 150),
        ]

    @pytest.mark.parametrize("port", [1, 65535])
    def test_port_bounds_are_valid(self, port: int) -> None:
        result = plan(group(rule("deny", 300, destination_ports=("*",))), port=port)
        assert result.rule.destination_ports == (str(port),)


class TestMoreGroups:
    @pytest.mark.parametrize("word", ["Any", "any", "*"])
    def test_any_spellings_are_all_refused(self, word: str) -> None:
        with pytest.raises(InvalidInput, match="far more than the management network"):
            plan(group(rule("deny-ssh", 300)), sources=("10.1.0.0/16", word))

    def test_cidr_with_host_bits_joins_the_cidr_rule(self) -> None:
        result = plan(group(rule("deny-ssh", 300)), sources=("10.1.2.3/16", "10.2.0.0/16"))
        assert [r.source_prefixes for r in result.rules] == [("10.1.2.3/16", "10.2.0.0/16")]

    def test_tag_name_characters_arm_might_refuse_are_dropped(self) -> None:
        result = plan(group(rule("deny-ssh", 300)), sources=("10.1.0.0/16", "Zürich.Tag"))
        assert result.rules[1].name == "allow-mgmt-ssh-autoremediation-zrich.tag"


class TestTagPrefixes:
    VNET = {"VirtualNetwork": ["10.0.0.0/16"]}

    def test_known_vnet_range_makes_the_default_rule_enough(self) -> None:
        nsg = group()
        sources = ("10.0.1.0/24",)
        assert plan(nsg, sources=sources).action == "add"
        known = plan_management_allow(nsg, vm("web1"), 22, sources, QUARANTINE, tag_prefixes=self.VNET)
        assert known.action == "none"

    def test_apply_verifies_with_the_same_knowledge(self) -> None:
        network = FakeNetwork()
        network.add_nsg(
            group(
                rule("allow-vnet-range", 100, "Allow", source_prefixes=("10.0.0.0/16",)),
                rule("deny-rest", 300),
            )
        )
        harmless = rule("allow-mgmt-ssh-autoremediation", 200, "Allow", destination_ports=("80",))
        result = AllowRulePlan("add", "test", nsg_id("web-nsg"), 22, ("VirtualNetwork",), (harmless,))
        # The VNet's addresses say 10.0.0.0/16 is all of VirtualNetwork, so the NSG lets it in ...
        assert apply_management_allow(network, result, tag_prefixes=self.VNET)[0].name == harmless.name
        # ... without them the same NSG cannot be shown to, and the check refuses to call it done.
        with pytest.raises(AllowRuleNotEffective):
            apply_management_allow(network, result)


class TestDestination:
    """The rule opens the port on the target VM's own address, not on every VM behind the NSG."""

    WEB1 = "10.0.0.4"
    WEB2 = "10.0.0.5"

    def setup_method(self) -> None:
        self.network = FakeNetwork()
        self.network.add_nsg(group(rule("deny-ssh", 300)))

    def plan_for(self, name: str, *addresses: str) -> AllowRulePlan:
        nsg = self.network.get_nsg(nsg_id("web-nsg"))
        return plan_management_allow(nsg, vm(name), 22, SOURCES, QUARANTINE, destinations=addresses)

    def reaches(self, address: str) -> bool:
        nsg = self.network.get_nsg(nsg_id("web-nsg"))
        return evaluate_nsg(nsg, Flow(22, SOURCES[0], destination=address)).allowed

    def test_the_rule_admits_only_the_vms_address(self) -> None:
        result = self.plan_for("web1", self.WEB1)
        assert result.rule is not None and result.rule.destination_prefixes == (self.WEB1,)
        assert result.destinations == (self.WEB1,)
        apply_management_allow(self.network, result)
        assert self.reaches(self.WEB1)
        assert not self.reaches(self.WEB2)  # the neighbour stays closed

    def test_a_second_vm_is_added_to_the_rule_without_closing_the_first(self) -> None:
        apply_management_allow(self.network, self.plan_for("web1", self.WEB1))
        second = self.plan_for("web2", self.WEB2)
        assert second.action == "add"
        assert second.rule is not None and second.rule.destination_prefixes == (self.WEB2, self.WEB1)
        assert second.rule.priority == 299  # our rule keeps its place
        apply_management_allow(self.network, second)
        assert self.reaches(self.WEB1) and self.reaches(self.WEB2)

    def test_a_rule_written_for_any_destination_is_narrowed(self) -> None:
        apply_management_allow(self.network, plan(self.network.get_nsg(nsg_id("web-nsg"))))
        nsg = self.network.get_nsg(nsg_id("web-nsg"))
        self.network.add_nsg(replace(nsg, rules=(rule("deny-ssh-early", 250), *nsg.rules)))
        result = self.plan_for("web1", self.WEB1)
        assert result.rule is not None and result.rule.destination_prefixes == (self.WEB1,)

    def test_a_deny_for_another_vms_address_does_not_block_this_vm(self) -> None:
        deny_web2 = rule("deny-ssh-web2", 300, destination_prefixes=(f"{self.WEB2}/32",))
        self.network.add_nsg(group(deny_web2, rule("allow-ssh", 400, "Allow")))
        assert self.plan_for("web1", self.WEB1).action == "none"
        # Without the address the evaluator cannot tell, and assumes the Deny applies.
        assert plan(self.network.get_nsg(nsg_id("web-nsg"))).action == "add"

    def test_verification_checks_the_vms_own_address(self) -> None:
        result = self.plan_for("web1", self.WEB1)
        wrong = replace(
            result, rules=tuple(replace(r, destination_prefixes=(self.WEB2,)) for r in result.rules)
        )
        with pytest.raises(AllowRuleNotEffective, match="still blocks"):
            apply_management_allow(self.network, wrong)

    def test_unknown_destination_keeps_any_and_says_so(self) -> None:
        result = self.plan_for("web1")
        assert result.rule is not None and result.rule.destination_prefixes == ("*",)
        assert "admits TCP 22 on every VM behind this NSG" in result.reason

    @pytest.mark.parametrize("bad", [["10.0.0.0/24"], ["web1"], "10.0.0.4"])
    def test_a_destination_that_is_not_an_address_is_refused(self, bad: object) -> None:
        with pytest.raises(InvalidInput, match="destination"):
            plan_management_allow(group(), vm("web1"), 22, SOURCES, QUARANTINE, destinations=bad)  # type: ignore[arg-type]
