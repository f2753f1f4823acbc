"""Every ARM call the adapters make maps to an action the custom role grants, and the role grants no more."""

from __future__ import annotations

import re

import pytest
from localfleet.server import FleetServer

from autoremediation.azure.alerts import AzureAlerts
from autoremediation.azure.compute import AzureCompute
from autoremediation.azure.network import AzureNetwork
from autoremediation.azure.permissions import CLASSIC_ACTIONS, REQUIRED_ACTIONS, required_actions
from autoremediation.errors import NotFound
from autoremediation.ports import RunRequest, SecurityRule

from .conftest import RG, SUB, nsg_id, vm_id

pytestmark = pytest.mark.fleet
SAMPLE_ALERT = "6a1f4e2c-9b3d-4c8e-a7f1-2d5b8c0e4f19"  # samples/disk-full-alert.json, held by the demo fleet

_VM = r"/subscriptions/[^/]+/resourcegroups/[^/]+/providers/microsoft\.compute/virtualmachines"
_NET = r"/subscriptions/[^/]+/resourcegroups/[^/]+/providers/microsoft\.network"
_RULES = r"/subscriptions/[^/]+/resourcegroups/[^/]+/providers/microsoft\.insights"
_ALERTS = r"/subscriptions/[^/]+/providers/microsoft\.alertsmanagement/alerts/[^/]+"
ACTIONS = (
    ("GET", _ALERTS, "Microsoft.AlertsManagement/alerts/read"),
    ("POST", rf"{_ALERTS}/changestate", "Microsoft.AlertsManagement/alerts/changestate/action"),
    ("GET", rf"{_RULES}/scheduledqueryrules/[^/]+", "Microsoft.Insights/scheduledQueryRules/read"),
    ("GET", rf"{_RULES}/metricalerts/[^/]+", "Microsoft.Insights/metricAlerts/read"),
    ("GET", rf"{_RULES}/activitylogalerts/[^/]+", "Microsoft.Insights/activityLogAlerts/read"),
    (
        "GET",
        rf"(/subscriptions/[^/]+/providers/microsoft\.compute/virtualmachines|{_VM}(/[^/]+)?)",
        "Microsoft.Compute/virtualMachines/read",
    ),
    ("POST", rf"{_VM}/[^/]+/runcommand", "Microsoft.Compute/virtualMachines/runCommand/action"),
    ("GET", rf"{_VM}/[^/]+/runcommands/[^/]+", "Microsoft.Compute/virtualMachines/runCommands/read"),
    ("PUT", rf"{_VM}/[^/]+/runcommands/[^/]+", "Microsoft.Compute/virtualMachines/runCommands/write"),
    ("DELETE", rf"{_VM}/[^/]+/runcommands/[^/]+", "Microsoft.Compute/virtualMachines/runCommands/delete"),
    (
        "GET",
        r"/subscriptions/[^/]+/providers/microsoft\.compute/locations/[^/]+/operations/[^/]+",
        "Microsoft.Compute/locations/operations/read",
    ),
    (
        "GET",
        r"/subscriptions/[^/]+/providers/microsoft\.network/locations/[^/]+/operations/[^/]+",
        "Microsoft.Network/locations/operations/read",
    ),
    ("GET", rf"{_NET}/networkinterfaces/[^/]+", "Microsoft.Network/networkInterfaces/read"),
    ("GET", rf"{_NET}/virtualnetworks/[^/]+/subnets/[^/]+", "Microsoft.Network/virtualNetworks/subnets/read"),
    ("GET", rf"{_NET}/virtualnetworks/[^/]+", "Microsoft.Network/virtualNetworks/read"),
    ("GET", rf"{_NET}/networksecuritygroups/[^/]+", "Microsoft.Network/networkSecurityGroups/read"),
    (
        "GET",
        rf"{_NET}/networksecuritygroups/[^/]+/securityrules/[^/]+",
        "Microsoft.Network/networkSecurityGroups/securityRules/read",
    ),
    (
        "PUT",
        rf"{_NET}/networksecuritygroups/[^/]+/securityrules/[^/]+",
        "Microsoft.Network/networkSecurityGroups/securityRules/write",
    ),
)


def action_of(method: str, path: str) -> str:
    for verb, pattern, action in ACTIONS:
        if verb == method and re.fullmatch(pattern, path.lower()):
            return action
    raise AssertionError(f"no role action known for {method} {path}")


def test_the_adapters_need_exactly_the_required_actions(
    compute: AzureCompute,
    classic: AzureCompute,
    network: AzureNetwork,
    alerts: AzureAlerts,
    fleet: FleetServer,
) -> None:
    vm = vm_id("vm-linux-disk")
    compute.list_vms(f"/subscriptions/{SUB}")
    compute.list_vms(RG)
    compute.get_vm(vm)
    request = RunRequest(
        vm_id=vm, run_name="r1", os_type="linux", script="echo hi\n", parameters={"DRY_RUN": "1"}
    )
    compute.start_run(request)
    compute.get_run(vm, "r1")
    compute.cancel_run(vm, "r1")
    nsg = network.get_nsg(nsg_id())
    nic = network.get_nic(nsg.nic_ids[0])
    network.get_subnet_nsg(nic.subnet_ids[0])
    network.get_virtual_network(nic.subnet_ids[0].rpartition("/subnets/")[0])
    network.put_security_rule(
        nsg.id,
        SecurityRule(
            name="allow-mgmt",
            priority=110,
            direction="Inbound",
            access="Allow",
            protocol="Tcp",
            destination_ports=("22",),
        ),
    )
    alert_id = f"/subscriptions/{SUB}/providers/Microsoft.AlertsManagement/alerts/{SAMPLE_ALERT}"
    record = alerts.get_alert(alert_id)
    alerts.get_rule(record.rule_id)
    alerts.get_rule(f"{RG}/providers/Microsoft.Insights/activityLogAlerts/nsg-rule-changes")
    with pytest.raises(NotFound):  # the demo fleet has no metric alert rule; the read is still made
        alerts.get_rule(f"{RG}/providers/Microsoft.Insights/metricAlerts/cpu-high")
    alerts.change_state(alert_id, "Closed", "fixed")
    managed = {action_of(method, path) for method, path in fleet.calls}
    managed_calls = len(fleet.calls)
    classic.start_run(request)
    classic_only = {action_of(method, path) for method, path in fleet.calls[managed_calls:]} - managed
    assert managed | classic_only == set(required_actions("action"))
    # The classic mode adds runCommand/action: the role grants it only when that mode is deployed.
    assert set(CLASSIC_ACTIONS) <= classic_only and not set(CLASSIC_ACTIONS) & set(REQUIRED_ACTIONS)
    assert set(required_actions("managed")) == set(REQUIRED_ACTIONS)
    # The emulator finishes the managed PUT and DELETE at once; Azure polls them on the operations route.
    assert set(REQUIRED_ACTIONS) - managed <= {"Microsoft.Compute/locations/operations/read"}
