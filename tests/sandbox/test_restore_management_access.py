"""restore-management-access in a real network namespace: a listener on 22 and a firewall dropping it."""

from __future__ import annotations

import subprocess

from autoremediation.localfleet.sandbox import GuestSpec, Sandbox

from .conftest import MakeSandbox, host_firewall, run_script

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


def test_iptables_drop_rule_is_removed_and_ssh_answers(make_sandbox: MakeSandbox) -> None:
    box = make_sandbox(GuestSpec(firewall_drop_ports=(22,)))
    setup(box, "iptables -A INPUT -p tcp --dport 80 -j DROP")
    assert not box.connect(22, timeout=0.5)
    host = host_firewall()

    run = run_script(box, "restore-management-access", {"port": 22})

    assert run.status == "fixed"
    assert run.result["before"] == {"listening": True, "firewallBlocks": True}
    assert run.result["after"] == {"listening": True, "firewallBlocks": False}
    assert box.connect(22)
    rules = box.firewall_rules()
    assert "--dport 22 -j DROP" not in rules
    assert "--dport 80 -j DROP" in rules  # another port's rule is not the script's business
    assert run.result["firewallFixes"] == ["iptables: removed INPUT rule 1"]
    assert host_firewall() == host


def test_second_run_is_already_ok(make_sandbox: MakeSandbox) -> None:
    box = make_sandbox(GuestSpec(firewall_drop_ports=(22,)))
    assert run_script(box, "restore-management-access").status == "fixed"
    rules = box.firewall_rules()

    again = run_script(box, "restore-management-access")

    assert again.status == "already-ok"
    assert again.result["firewallFixes"] == []
    assert box.firewall_rules() == rules


def test_drop_policy_gets_one_accept_rule_on_top_and_keeps_the_policy(make_sandbox: MakeSandbox) -> None:
    box = make_sandbox(GuestSpec())
    setup(
        box,
        "iptables -A INPUT -i lo -j ACCEPT\niptables -A INPUT -p tcp --dport 443 -j ACCEPT\n"
        "iptables -P INPUT DROP",
    )

    run = run_script(box, "restore-management-access")

    assert run.status == "fixed"
    rules = box.firewall_rules().splitlines()
    assert "-P INPUT DROP" in rules
    inputs = [r for r in rules if r.startswith("-A INPUT")]
    assert inputs[0].startswith("-A INPUT -p tcp -m tcp --dport 22") and inputs[0].endswith("-j ACCEPT")
    assert inputs[1:] == ["-A INPUT -i lo -j ACCEPT", "-A INPUT -p tcp -m tcp --dport 443 -j ACCEPT"]
    assert run_script(box, "restore-management-access").status == "already-ok"  # no second accept
    assert len([r for r in box.firewall_rules().splitlines() if "--dport 22" in r]) == 1


def test_nftables_reject_rule_is_removed_by_handle(make_sandbox: MakeSandbox) -> None:
    box = make_sandbox(GuestSpec())
    setup(
        box,
        "nft add table inet fw\n"
        "nft add chain inet fw input '{ type filter hook input priority 0; policy accept; }'\n"
        "nft add rule inet fw input tcp dport 443 accept\n"
        "nft add rule inet fw input tcp dport '{ 22, 2222 }' reject\n",
    )
    assert not box.connect(22)

    run = run_script(box, "restore-management-access")

    assert run.status == "fixed"
    assert box.connect(22)
    ruleset = nft_ruleset(box)
    assert "reject" not in ruleset
    assert "tcp dport 443 accept" in ruleset


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

    run = run_script(box, "restore-management-access", dry_run=True)

    assert run.status == "not-fixed"
    assert run.result["firewallFixes"] == ["iptables: would remove INPUT rule 1"]
    assert box.firewall_rules() == rules
    assert box.unit_state("ssh") == "inactive"
    assert not box.connect(22, timeout=0.5)
