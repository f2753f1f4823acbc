"""``remediate plan`` evaluates the runtime guards like ``run`` when ARM is read, and says what it did not
check otherwise: real SDK clients against a local fleet started from a fleet file."""

from __future__ import annotations

import json
import uuid
from io import StringIO
from pathlib import Path

import pytest
import yaml

from autoremediation.cli import main
from tests.helpers.catalogs import REPO

pytestmark = pytest.mark.fleet
SUB = "00000000-0000-0000-0000-0000000000f1"
RG = f"/subscriptions/{SUB}/resourceGroups/rg-plan"

RULE = f"{RG}/providers/Microsoft.Insights/scheduledQueryRules/disk-full-linux"
VMS = ("vm-ok", "vm-no-opt-in", "vm-deallocated", "vm-agent-down", "vm-quarantined", "vm-gone")
FIRED = "2026-11-25T10:05:12.3456789Z"


def alert_id(vm: str) -> str:
    guid = uuid.uuid5(uuid.NAMESPACE_URL, vm)
    return f"/subscriptions/{SUB}/providers/Microsoft.AlertsManagement/alerts/{guid}"


FLEET = {
    # Azure Monitor knows each VM's disk alert, from a rule the deployment trusts (alert provenance).
    "now": "2026-11-25T10:20:00Z",
    "alertRules": [{"id": RULE, "deployed": True}],
    "alerts": [
        {
            "id": alert_id(vm),
            "rule": RULE,
            "target": f"{RG}/providers/Microsoft.Compute/virtualMachines/{vm}",
            "firedDateTime": FIRED,
            # What Azure Monitor records of the alert: routing reads this, not the posted body.
            "signalType": "Log",
            "context": {
                "conditionType": "LogQueryCriteria",
                "condition": {
                    "allOf": [
                        {
                            "searchQuery": 'InsightsMetrics | where Name == "FreeSpacePercentage"',
                            "dimensions": [
                                {
                                    "name": "_ResourceId",
                                    "value": f"{RG}/providers/Microsoft.Compute/virtualMachines/{vm}",
                                },
                                {"name": "Mount", "value": "/var"},
                            ],
                        }
                    ]
                },
            },
        }
        for vm in VMS
    ],
    "subscriptions": [
        {
            "id": SUB,
            "resourceGroups": [
                {
                    "name": "rg-plan",
                    "location": "westeurope",
                    "virtualMachines": [
                        {"name": "vm-ok", "os": "linux", "tags": {"autoremediation": "enabled"}},
                        {"name": "vm-no-opt-in", "os": "linux"},
                        {
                            "name": "vm-deallocated",
                            "os": "linux",
                            "tags": {"autoremediation": "enabled"},
                            "powerState": "deallocated",
                        },
                        {
                            "name": "vm-agent-down",
                            "os": "linux",
                            "tags": {"autoremediation": "enabled"},
                            "agentStatus": "Not Ready",
                        },
                        {
                            "name": "vm-quarantined",
                            "os": "linux",
                            "tags": {"autoremediation": "enabled", "autoremediation-quarantine": "true"},
                        },
                    ],
                }
            ],
        }
    ],
}


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("REMEDIATION_SQLITE_PATH", str(tmp_path / "jobs.db"))
    for name in ("REMEDIATION_ARM_ENDPOINT", "REMEDIATION_ARM_CA_BUNDLE", "REMEDIATION_STORAGE"):
        monkeypatch.delenv(name, raising=False)
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(yaml.safe_dump(FLEET))
    return fleet


def disk_alert(tmp_path: Path, vm: str) -> str:
    alert = json.loads((REPO / "samples" / "disk-full-alert.json").read_text())
    vm_id = f"{RG}/providers/Microsoft.Compute/virtualMachines/{vm}"
    alert["data"]["essentials"]["alertTargetIDs"] = [vm_id]
    alert["data"]["essentials"]["configurationItems"] = [vm]
    alert["data"]["essentials"]["alertId"] = alert_id(vm)
    for condition in alert["data"]["alertContext"]["condition"]["allOf"]:
        for dimension in condition.get("dimensions", []):
            if dimension["name"] == "_ResourceId":
                dimension["value"] = vm_id
    path = tmp_path / f"alert-{vm}.json"
    path.write_text(json.dumps(alert))
    return str(path)


def manual_request(tmp_path: Path, vm: str) -> str:
    request = {
        "remediation": "free-disk-space",
        "targets": [f"{RG}/providers/Microsoft.Compute/virtualMachines/{vm}"],
        "parameters": {"mountPoint": "/var"},
        "requestId": f"req-{vm}",
        "requestedBy": "alice@contoso.com",
        "reason": "disk nearly full",
    }
    path = tmp_path / f"request-{vm}.json"
    path.write_text(json.dumps(request))
    return str(path)


def plan(*argv: str) -> list[dict]:
    out = StringIO()
    assert main(["plan", "--json", *argv], out=out) == 0
    return json.loads(out.getvalue())["plans"]


@pytest.mark.parametrize(
    ("vm", "decision", "guard"),
    [
        ("vm-ok", "dispatch", None),
        ("vm-no-opt-in", "skip", "opt-in"),
        ("vm-deallocated", "skip", "vm-running"),
        ("vm-agent-down", "skip", "agent-ready"),
        ("vm-quarantined", "skip", "quarantine"),
    ],
)
def test_plan_on_a_fleet_decides_as_run_would(
    env: Path, tmp_path: Path, vm: str, decision: str, guard: str
) -> None:
    [result] = plan("--fleet", str(env), disk_alert(tmp_path, vm))
    assert (result["decision"], result["guard"], result["unchecked"]) == (decision, guard, [])
    # Without ARM (a manual request needs no alert confirmation), the plan says dispatch and names every
    # runtime guard it did not check.
    [static] = plan(manual_request(tmp_path, vm))
    assert static["decision"] == "dispatch"
    assert {"opt-in", "quarantine", "vm-running", "agent-ready", "cooldown", "circuit-breaker"} <= set(
        static["unchecked"]
    )
    assert "--azure or --fleet" in static["uncheckedWhy"]


def test_plan_sees_the_cooldown_a_finished_run_started(env: Path, tmp_path: Path) -> None:
    alert = disk_alert(tmp_path, "vm-ok")
    out = StringIO()
    main(["run", "--fleet", str(env), alert], out=out)  # the script ran (whatever it found): cooldown starts
    assert "dispatching" in out.getvalue()
    [result] = plan("--fleet", str(env), alert)
    assert (result["decision"], result["guard"], result["unchecked"]) == ("skip", "cooldown", [])


def test_a_vm_arm_cannot_find_is_skipped_as_run_would(env: Path, tmp_path: Path) -> None:
    [result] = plan("--fleet", str(env), disk_alert(tmp_path, "vm-gone"))
    assert (result["decision"], result["guard"]) == ("skip", "vm-exists")


def test_plan_text_names_what_was_not_checked(env: Path, tmp_path: Path) -> None:
    out = StringIO()
    assert main(["plan", manual_request(tmp_path, "vm-ok")], out=out) == 0
    assert "not checked for vm-ok: kill-switch, scope, opt-in" in out.getvalue()
