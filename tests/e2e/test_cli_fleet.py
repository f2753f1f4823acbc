"""End to end through the ``remediate`` command: real SDK clients, the local ARM emulator, SQLite.

Linux scripts run for real in the emulator's sandbox when this runs as root (as in CI); elsewhere the
fleet answers its declared outcomes, and every assertion below still holds.
"""

from __future__ import annotations

import copy
import json
from io import StringIO
from pathlib import Path

import pytest
from localfleet.server import FleetServer

from autoremediation.cli import main
from tests.helpers.catalogs import REPO

HERE = Path(__file__).parent
SUB = "00000000-0000-0000-0000-0000000000e2"
RG = f"/subscriptions/{SUB}/resourceGroups/rg-e2e"
ALERT_ID = (
    f"/subscriptions/{SUB}/providers/Microsoft.AlertsManagement/alerts/6a1f4e2c-9b3d-4c8e-a7f1-2d5b8c0e4f19"
)
pytestmark = pytest.mark.fleet


def remediate(*argv: str) -> tuple[int, str]:
    out = StringIO()
    return main(list(argv), out=out), out.getvalue()


def write(tmp_path: Path, name: str, payload: object) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(payload))
    return str(path)


def disk_alert(tmp_path: Path, state: str = "Fired") -> str:
    alert = json.loads((REPO / "samples" / "disk-full-alert.json").read_text())
    vm = f"{RG}/providers/Microsoft.Compute/virtualMachines/vm-disk"
    alert["data"]["essentials"]["alertId"] = ALERT_ID
    alert["data"]["essentials"]["alertTargetIDs"] = [vm]
    alert["data"]["essentials"]["configurationItems"] = ["vm-disk"]
    alert["data"]["essentials"]["monitorCondition"] = state
    if state == "Resolved":
        alert["data"]["essentials"]["resolvedDateTime"] = "2026-11-25T12:00:00Z"
    for condition in alert["data"]["alertContext"]["condition"]["allOf"]:
        for dimension in condition.get("dimensions", []):
            if dimension["name"] == "_ResourceId":
                dimension["value"] = vm
    return write(tmp_path, f"disk-{state}.json", alert)


def nsg_event(tmp_path: Path, nsg: str, event_id: str) -> str:
    event = copy.deepcopy(json.loads((REPO / "samples" / "nsg-rule-write-event.json").read_text()))
    rule = f"{RG}/providers/Microsoft.Network/networkSecurityGroups/{nsg}/securityRules/deny-ssh"
    for item in event:
        item["id"] = event_id
        item["subject"] = rule
        item["data"]["resourceUri"] = rule
        item["data"]["authorization"]["scope"] = rule
    return write(tmp_path, f"{event_id}.json", event)


def jobs(*filters: str) -> list[dict]:
    code, out = remediate("jobs", "--json", *filters)
    assert code == 0
    return json.loads(out)["jobs"]


def nsg_rules(fleet: FleetServer, name: str) -> dict[str, int]:
    nsg = fleet.fleet.nsg(SUB, "rg-e2e", name)
    return {r["name"]: r["properties"]["priority"] for r in nsg["properties"]["securityRules"]}


def test_disk_full_alert_is_remediated_and_verified(fleet: FleetServer, tmp_path: Path) -> None:
    code, out = remediate("run", "--json", disk_alert(tmp_path))
    assert code == 0, out
    [job] = json.loads(out)["jobs"]
    assert job["status"] == "succeeded"
    assert job["outcome"]["exitCode"] == 0 and job["outcome"]["verified"] is True
    assert (
        job["outcome"]["result"]["after"]["freePercent"]
        >= 20
        > job["outcome"]["result"]["before"]["freePercent"]
    )
    assert fleet.runs_started("vm-disk") == 1
    # The same alert again is a duplicate delivery: no new job, no second run.
    code, out = remediate("run", disk_alert(tmp_path))
    assert code == 0 and "already known (succeeded)" in out
    assert fleet.runs_started("vm-disk") == 1
    # Azure Monitor closed the alert when the job succeeded (write-back), the comment names the job.
    assert fleet.fleet.alerting.state_of(ALERT_ID) == "Closed"
    assert job["id"] in fleet.fleet.alerting.history(ALERT_ID)[0]["comments"]
    # The monitor resolves the alert later: noted on the job, nothing runs.
    fleet.fleet.alerting.resolve(ALERT_ID, "2026-11-25T12:00:00Z")
    code, out = remediate("run", disk_alert(tmp_path, "Resolved"))
    assert code == 0 and "resolved 1" in out
    [record] = jobs()
    assert record["notes"] and record["notes"][0].endswith("the alert resolved")


def test_nsg_lockout_is_detected_approved_and_repaired(
    fleet: FleetServer, tmp_path: Path, monkeypatch
) -> None:
    # Concrete sources (a bastion subnet): the guest firewall step accepts only from these.
    monkeypatch.setenv("REMEDIATION_MANAGEMENT_SOURCES", "10.0.1.0/26")
    code, out = remediate("run", nsg_event(tmp_path, "nsg-locked", "ev-locked"))
    assert code == 0
    [waiting] = jobs("--status", "awaiting-approval")
    assert waiting["target"].endswith("/vm-locked")
    assert waiting["evidence"]["rule"] == "deny-ssh" and waiting["evidence"]["priority"] == 200
    assert "allow-mgmt-ssh-autoremediation" not in nsg_rules(fleet, "nsg-locked")

    code, out = remediate("approve", waiting["id"], "--actor", "alice")
    assert code == 0, out
    [job] = jobs("--status", "succeeded")
    assert job["approvedBy"] == "alice"
    rules = nsg_rules(fleet, "nsg-locked")
    assert rules["deny-ssh"] == 200  # the customer's rule is untouched
    added = [name for name in rules if name.startswith("allow-mgmt-ssh")]
    assert added and all(rules[name] < 200 for name in added)
    record = job["outcome"]["controlPlane"]["nsg-allow-management"]
    assert record["action"] == "add" and record["nsgs"][0]["blockingRule"] == "deny-ssh (200)"
    assert record["scriptParameters"] == {"managementSources": "10.0.1.0/26"}
    assert job["outcome"]["result"]["after"] == {"port": 22, "listening": True, "firewallBlocks": False} or (
        job["outcome"]["result"]["after"]["listening"] is True
        and job["outcome"]["result"]["after"]["firewallBlocks"] is False
    )
    # The same write event again finds the existing job; and the VM is no longer locked out anyway.
    code, out = remediate("plan", "--json", nsg_event(tmp_path, "nsg-locked", "ev-locked-2"))
    assert json.loads(out)["plans"] == []


def test_with_only_the_virtual_network_tag_the_guest_firewall_is_not_opened(
    fleet: FleetServer, tmp_path: Path
) -> None:
    # The default source is the VirtualNetwork tag: no concrete addresses for a guest firewall.
    remediate("run", nsg_event(tmp_path, "nsg-locked", "ev-tag"))
    [waiting] = jobs("--status", "awaiting-approval")
    remediate("approve", waiting["id"], "--actor", "alice")
    [job] = jobs()
    assert job["status"] == "failed"
    record = job["outcome"]["controlPlane"]["nsg-allow-management"]
    assert record["scriptParameters"] == {"managementSources": ""}
    assert record["guestSourcesLeftOut"] == ["VirtualNetwork (a service tag, not addresses)"]
    assert "no concrete management source" in job["outcome"]["result"]["firewall"]
    assert job["outcome"]["result"]["after"]["firewallBlocks"] is True


def test_quarantined_nsg_is_left_alone(fleet: FleetServer, tmp_path: Path) -> None:
    remediate("run", nsg_event(tmp_path, "nsg-quarantine", "ev-q"))
    [waiting] = jobs("--status", "awaiting-approval")
    code, _ = remediate("approve", waiting["id"], "--actor", "alice")
    assert code == 0
    [job] = jobs()
    assert job["status"] == "skipped" and "quarantine" in job["history"][-1]["reason"]
    assert nsg_rules(fleet, "nsg-quarantine") == {"deny-ssh": 300}
    assert fleet.runs_started("vm-quarantined") == 0


def test_reject_and_show(fleet: FleetServer, tmp_path: Path) -> None:
    remediate("run", nsg_event(tmp_path, "nsg-locked", "ev-reject"))
    [waiting] = jobs("--status", "awaiting-approval")
    code, out = remediate("reject", waiting["id"], "--actor", "bob", "--reason", "change window closed")
    assert code == 0 and "rejected by bob: change window closed" in out
    code, out = remediate("show", waiting["id"])
    assert code == 0 and "CANCELLED" in out and "awaiting-approval -> cancelled" in out
    code, out = remediate("approve", waiting["id"])
    assert code == 2  # not awaiting approval any more
    code, out = remediate("show", "job-000000000000000000000000")
    assert code == 2


def test_nsg_lockout_evidence_reaches_plan_job_show_and_approval(fleet: FleetServer, tmp_path: Path) -> None:
    event = nsg_event(tmp_path, "nsg-locked", "ev-evidence")
    code, out = remediate("plan", "--json", event)
    assert code == 0, out
    [plan] = json.loads(out)["plans"]
    evidence = plan["evidence"]
    assert (evidence["rule"], evidence["priority"], evidence["level"], evidence["direction"]) == (
        "deny-ssh",
        200,
        "nic",
        "Inbound",
    )
    assert evidence["nsg_id"].endswith("/networkSecurityGroups/nsg-locked")
    assert (evidence["port"], evidence["source"], evidence["uncertain"]) == (22, "VirtualNetwork", [])
    code, out = remediate("plan", event)
    assert (
        "why vm-locked: Inbound TCP 22 from VirtualNetwork is denied by rule deny-ssh (priority 200)" in out
    )

    remediate("run", event)
    [waiting] = jobs("--status", "awaiting-approval")
    assert waiting["evidence"] == evidence
    request = waiting["history"][-1]["reason"]
    assert "denied by rule deny-ssh (priority 200) of nic NSG nsg-locked" in request
    code, out = remediate("show", waiting["id"])
    assert code == 0 and "evidence:" in out and "nsg-locked" in out and "priority         200" in out


def nsg_alert(
    tmp_path: Path, nsg: str, alert_guid: str, correlation: str | None, fleet: FleetServer | None = None
) -> str:
    alert = json.loads((REPO / "samples" / "nsg-rule-write-alert.json").read_text())
    rule = f"{RG}/providers/Microsoft.Network/networkSecurityGroups/{nsg}/securityRules/deny-ssh"
    essentials, context = alert["data"]["essentials"], alert["data"]["alertContext"]
    essentials["alertId"] = f"/subscriptions/{SUB}/providers/Microsoft.AlertsManagement/alerts/{alert_guid}"
    essentials["alertTargetIDs"] = [rule.lower()]
    essentials["firedDateTime"] = "2026-11-25T10:15:00Z"  # as Azure Monitor records it (fleet.yaml)
    context["authorization"]["scope"] = rule
    context["properties"]["entity"] = rule
    if correlation is None:
        context.pop("correlationId", None)
    else:
        context["correlationId"] = correlation
    if fleet is not None:  # Azure Monitor records this alert's context: routing reads Azure's copy
        recorded = {k: v for k, v in context.items() if k != "properties"}
        fleet.fleet.alerting.record_context(essentials["alertId"], recorded)
    return write(tmp_path, f"alert-{alert_guid}.json", alert)


def nsg_event_with(tmp_path: Path, nsg: str, event_id: str, correlation: str | None) -> str:
    path = Path(nsg_event(tmp_path, nsg, event_id))
    event = json.loads(path.read_text())
    for item in event:
        if correlation is None:
            item["data"].pop("correlationId", None)
        else:
            item["data"]["correlationId"] = correlation
    path.write_text(json.dumps(event))
    return str(path)


@pytest.mark.parametrize(
    ("event_correlation", "alert_correlation"),
    [("corr-1", "corr-1"), ("corr-1", None), (None, "corr-1"), (None, None)],
    ids=["both carry it", "alert without", "event without", "neither"],
)
def test_one_nsg_write_seen_twice_makes_one_job(
    fleet: FleetServer, tmp_path: Path, event_correlation: str | None, alert_correlation: str | None
) -> None:
    code, out = remediate("run", nsg_event_with(tmp_path, "nsg-locked", "ev-write", event_correlation))
    assert code == 0, out
    code, out = remediate(
        "run",
        nsg_alert(tmp_path, "nsg-locked", "0000aaaa-0000-4000-8000-000000000001", alert_correlation, fleet),
    )
    assert code == 0, out
    [job] = jobs()
    assert job["status"] == "awaiting-approval"
    # The alert was confirmed with Azure Monitor and joined the event's job: it is linked to it.
    assert job["alertId"].endswith("/alerts/0000aaaa-0000-4000-8000-000000000001")
    # The other order: the alert first, then the event, for the other NSG's write.
    remediate(
        "run",
        nsg_alert(
            tmp_path, "nsg-quarantine", "0000aaaa-0000-4000-8000-000000000002", alert_correlation, fleet
        ),
    )
    remediate("run", nsg_event_with(tmp_path, "nsg-quarantine", "ev-write-q", event_correlation))
    assert len(jobs()) == 2


def test_two_writes_with_different_correlation_ids_are_two_changes(
    fleet: FleetServer, tmp_path: Path
) -> None:
    remediate("run", nsg_event_with(tmp_path, "nsg-locked", "ev-a", "corr-a"))
    remediate(
        "run", nsg_alert(tmp_path, "nsg-locked", "0000aaaa-0000-4000-8000-00000000000b", "corr-b", fleet)
    )
    assert len(jobs()) == 2
