"""restore-management-access in a real network namespace: a listener on 22 and a firewall dropping it."""

from __future__ import annotations

import subprocess
import sys

import pytest
from localfleet.sandbox import GuestSpec, Sandbox

from .conftest import MakeSandbox, host_firewall, run_raw, run_script

SCRIPT_SETUP_TIMEOUT = 30


def setup(box: Sandbox, commands: str) -> None:
    """Prepare the guest (as its admin would have) with a throwaway script."""
    done = box.run("#!/bin/bash\nset -euo pipefail\n" + commands, {}, SCRIPT_SETUP_TIMEOUT)
    assert done.exit_code == 0, done.stderr


def nft_ruleset(box: Sandbox) -> str:
    return subprocess.run(
        ["ip", "netns", "exec", box.netns, "nft", "list", "ruleset"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


BASTION = "10.1.0.0/24"
ADDRESSES = "ip addr add 10.0.0.4/32 dev lo\nip addr add 10.1.0.5/32 dev lo\nip addr add 10.9.9.9/32 dev lo\n"


def connect_from(box: Sandbox, source: str, port: int = 22) -> bool:
    """A real TCP connection from ``source`` to the VM's address 10.0.0.4 inside the guest's namespace."""
    code = (
        "import socket,sys\n"
        "s=socket.socket(); s.settimeout(0.5)\n"
        f"s.bind(({source!r}, 0))\n"
        f"sys.exit(0 if s.connect_ex(('10.0.0.4', {port})) == 0 else 1)\n"
    )
    done = subprocess.run(["ip", "netns", "exec", box.netns, sys.executable, "-c", code], check=False)
    return done.returncode == 0


def access(box: Sandbox, sources: str = BASTION, **extra: object):
    return run_script(box, "restore-management-access", {"port": 22, "managementSources": sources, **extra})


def test_iptables_drop_rule_stays_and_only_the_management_source_gets_in(make_sandbox: MakeSandbox) -> None:
    box = make_sandbox(GuestSpec(firewall_drop_ports=(22,)))
    setup(box, ADDRESSES + "iptables -A INPUT -p tcp --dport 80 -j DROP")
    assert not connect_from(box, "10.1.0.5")
    host = host_firewall()

    run = access(box)

    assert run.status == "fixed"
    assert run.result["before"] == {"listening": True, "firewallBlocks": True}
    assert run.result["after"] == {"listening": True, "firewallBlocks": False}
    assert connect_from(box, "10.1.0.5")
    assert not connect_from(box, "10.9.9.9")  # nobody else
    rules = box.firewall_rules().splitlines()
    inputs = [r for r in rules if r.startswith("-A INPUT")]
    assert inputs[0] == (
        "-A INPUT -s 10.1.0.0/24 -p tcp -m tcp --dport 22 -m comment --comment restore-management-access"
        " -j ACCEPT"
    )
    assert "-A INPUT -p tcp -m tcp --dport 22 -j DROP" in inputs  # the admin's rule is never removed
    assert run.result["firewallFixes"] == [
        "iptables: inserted accept for 10.1.0.0/24 to tcp/22 at the top of INPUT"
    ]
    assert host_firewall() == host


def test_the_reported_attack_a_bastion_only_firewall_is_already_ok_and_untouched(
    make_sandbox: MakeSandbox,
) -> None:
    # The host accepts SSH only from the bastion's subnet: the management source is inside it.
    box = make_sandbox(GuestSpec())
    setup(
        box,
        ADDRESSES + "iptables -A INPUT -s 10.1.0.0/24 -p tcp --dport 22 -j ACCEPT\n"
        "iptables -A INPUT -p tcp --dport 22 -j DROP\n",
    )
    rules = box.firewall_rules()

    run = access(box, "10.1.0.0/26,10.1.0.200")

    assert run.status == "already-ok"
    assert run.result["before"]["firewallBlocks"] is False
    assert box.firewall_rules() == rules
    assert connect_from(box, "10.1.0.5") and not connect_from(box, "10.9.9.9")


def test_a_source_outside_the_bastion_range_gets_its_own_accept_and_nothing_wider(
    make_sandbox: MakeSandbox,
) -> None:
    box = make_sandbox(GuestSpec())
    setup(
        box,
        ADDRESSES + "iptables -A INPUT -s 10.1.0.0/24 -p tcp --dport 22 -j ACCEPT\n"
        "iptables -A INPUT -p tcp --dport 22 -j DROP\n",
    )

    run = access(box, "10.1.0.0/24,10.9.9.0/28")

    assert run.status == "fixed"
    assert run.result["firewallFixes"] == [
        "iptables: inserted accept for 10.9.9.0/28 to tcp/22 at the top of INPUT"
    ]
    assert connect_from(box, "10.9.9.9")
    accepts = [r for r in box.firewall_rules().splitlines() if r.endswith("-j ACCEPT")]
    assert all(" -s " in r for r in accepts), accepts


def test_without_concrete_sources_a_blocking_firewall_is_reported_and_not_opened(
    make_sandbox: MakeSandbox,
) -> None:
    box = make_sandbox(GuestSpec(firewall_drop_ports=(22,)))
    rules = box.firewall_rules()

    run = run_script(box, "restore-management-access", {"port": 22})

    assert run.status == "not-fixed"
    assert "no concrete management source" in run.result["firewall"]
    assert box.firewall_rules() == rules


@pytest.mark.parametrize(
    ("sources", "reason"),
    [
        ("VirtualNetwork", "MANAGEMENT_SOURCES must be IPv4 addresses or CIDRs"),
        ("0.0.0.0/0", "refusing management source 0.0.0.0/0"),
        ("10.1.0.0/24,0.0.0.0/1", "refusing management source 0.0.0.0/1"),
        ("10.1.0.0/24;iptables -F", "MANAGEMENT_SOURCES must be IPv4 addresses or CIDRs"),
    ],
)
def test_sources_that_are_no_concrete_narrow_range_are_refused_by_the_script(
    make_sandbox: MakeSandbox, sources: str, reason: str
) -> None:
    box = make_sandbox(GuestSpec(firewall_drop_ports=(22,)))
    rules = box.firewall_rules()

    result = run_raw(box, "restore-management-access", {"PORT": "22", "MANAGEMENT_SOURCES": sources}).result

    assert result["status"] == "error"
    assert str(result["reason"]).startswith(reason)
    assert box.firewall_rules() == rules


def test_second_run_is_already_ok(make_sandbox: MakeSandbox) -> None:
    box = make_sandbox(GuestSpec(firewall_drop_ports=(22,)))
    assert access(box).status == "fixed"
    rules = box.firewall_rules()

    again = access(box)

    assert again.status == "already-ok"
    assert again.result["firewallFixes"] == []
    assert box.firewall_rules() == rules


def test_drop_policy_gets_one_source_restricted_accept_on_top_and_keeps_the_policy(
    make_sandbox: MakeSandbox,
) -> None:
    box = make_sandbox(GuestSpec())
    setup(
        box,
        ADDRESSES + "iptables -A INPUT -i lo -s 127.0.0.0/8 -j ACCEPT\n"
        "iptables -A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT\n"
        "iptables -A INPUT -p tcp --dport 443 -j ACCEPT\niptables -P INPUT DROP",
    )

    run = access(box)

    assert run.status == "fixed"
    rules = box.firewall_rules().splitlines()
    assert "-P INPUT DROP" in rules
    inputs = [r for r in rules if r.startswith("-A INPUT")]
    assert inputs[0].startswith("-A INPUT -s 10.1.0.0/24 -p tcp -m tcp --dport 22") and inputs[0].endswith(
        "-j ACCEPT"
    )
    assert inputs[1:] == [
        "-A INPUT -s 127.0.0.0/8 -i lo -j ACCEPT",
        "-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        "-A INPUT -p tcp -m tcp --dport 443 -j ACCEPT",
    ]
    assert connect_from(box, "10.1.0.5") and not connect_from(box, "10.9.9.9")
    assert access(box).status == "already-ok"  # no second accept
    assert len([r for r in box.firewall_rules().splitlines() if "--dport 22" in r]) == 1


def test_nftables_reject_rule_stays_and_a_source_restricted_accept_goes_on_top(
    make_sandbox: MakeSandbox,
) -> None:
    box = make_sandbox(GuestSpec())
    setup(
        box,
        ADDRESSES + "nft add table inet fw\n"
        "nft add chain inet fw input '{ type filter hook input priority 0; policy accept; }'\n"
        "nft add rule inet fw input tcp dport 443 accept\n"
        "nft add rule inet fw input tcp dport '{ 22, 2222 }' reject\n",
    )
    assert not connect_from(box, "10.1.0.5")

    run = access(box)

    assert run.status == "fixed"
    assert connect_from(box, "10.1.0.5")
    assert not connect_from(box, "10.9.9.9")
    ruleset = nft_ruleset(box)
    assert "tcp dport { 22, 2222 } reject" in ruleset
    assert 'ip saddr 10.1.0.0/24 tcp dport 22 accept comment "restore-management-access"' in ruleset
    assert run.result["firewallFixes"] == [
        "nft: inserted accept for 10.1.0.0/24 to tcp/22 at the top of inet fw input"
    ]


def test_nftables_bastion_only_accept_covers_the_sources_and_nothing_is_added(
    make_sandbox: MakeSandbox,
) -> None:
    box = make_sandbox(GuestSpec())
    setup(
        box,
        ADDRESSES + "nft add table inet fw\n"
        "nft add chain inet fw input '{ type filter hook input priority 0; policy drop; }'\n"
        "nft add rule inet fw input ct state established,related accept\n"
        "nft add rule inet fw input ip saddr '{ 10.1.0.0/24, 192.168.7.0/24 }' tcp dport 22 accept\n",
    )
    ruleset = nft_ruleset(box)

    run = access(box, "10.1.0.0/25")

    assert run.status == "already-ok"
    assert nft_ruleset(box) == ruleset
    assert connect_from(box, "10.1.0.5") and not connect_from(box, "10.9.9.9")


def test_nftables_drop_policy_gets_a_source_restricted_accept(make_sandbox: MakeSandbox) -> None:
    box = make_sandbox(GuestSpec())
    setup(
        box,
        ADDRESSES + "nft add table ip fw\n"
        "nft add chain ip fw input '{ type filter hook input priority 0; policy drop; }'\n"
        "nft add rule ip fw input ct state established,related accept\n"
        "nft add rule ip fw input ip saddr 10.1.0.0/24 tcp dport 22 accept\n",
    )

    run = access(box, "10.1.0.0/24,10.9.9.9")

    assert run.status == "fixed"
    assert run.result["firewallFixes"] == [
        "nft: inserted accept for 10.9.9.9/32 to tcp/22 at the top of ip fw input"
    ]
    assert connect_from(box, "10.9.9.9")
    assert not any(
        "dport 22 accept" in line and "saddr" not in line for line in nft_ruleset(box).splitlines()
    )  # nothing unrestricted


def test_stopped_sshd_is_started_and_enabled(make_sandbox: MakeSandbox) -> None:
    box = make_sandbox(GuestSpec(sshd_stopped=True))
    assert not box.connect(22)

    run = run_script(box, "restore-management-access")

    assert run.status == "fixed"
    assert run.result["before"]["listening"] is False
    assert run.result["service"] == "started ssh"
    assert box.connect(22)
    assert box.unit_state("ssh") == "active"
    assert (box.state_dir / "units" / "ssh.enabled").exists()


def test_without_an_ssh_service_it_reports_instead_of_guessing(make_sandbox: MakeSandbox) -> None:
    box = make_sandbox(GuestSpec(ssh_listening=False))

    run = run_script(box, "restore-management-access")

    assert run.status == "not-fixed"
    assert run.result["after"]["listening"] is False
    assert "no ssh service unit" in run.result["service"]


def test_dry_run_changes_nothing(make_sandbox: MakeSandbox) -> None:
    box = make_sandbox(GuestSpec(firewall_drop_ports=(22,), sshd_stopped=True))
    rules = box.firewall_rules()

    run = run_script(box, "restore-management-access", {"managementSources": BASTION}, dry_run=True)

    assert run.status == "not-fixed"
    assert run.result["firewallFixes"] == [
        "iptables: would insert accept for 10.1.0.0/24 to tcp/22 at the top of INPUT"
    ]
    assert box.firewall_rules() == rules
    assert box.unit_state("ssh") == "inactive"
    assert not box.connect(22, timeout=0.5)
