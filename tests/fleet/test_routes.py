"""Every emulator route, driven through the real SDK clients over HTTPS."""

from __future__ import annotations

import json
import ssl
import urllib.request
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from localfleet.server import FleetServer

from autoremediation import runresult

from .conftest import SUB, small_fleet

pytestmark = pytest.mark.fleet


def raw(fleet: FleetServer, method: str, path: str, body: Any = None, token: bool = True) -> tuple[int, Any]:
    context = ssl.create_default_context(cafile=fleet.ca_bundle)
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(fleet.base_url + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", "Bearer anything")
    try:
        with urllib.request.urlopen(request, context=context) as response:
            text = response.read()
            return response.status, json.loads(text) if text else None
    except urllib.error.HTTPError as error:
        text = error.read()
        return error.code, json.loads(text) if text else None


def test_list_vms_by_subscription_and_resource_group(sdk: Any) -> None:
    assert sorted(vm.name for vm in sdk.virtual_machines.list_all()) == [
        "vm-linux-disk",
        "vm-linux-locked",
        "vm-no-optin",
        "vm-windows",
    ]
    assert len(list(sdk.virtual_machines.list("rg-demo"))) == 4
    with pytest.raises(ResourceNotFoundError, match="ResourceGroupNotFound"):
        list(sdk.virtual_machines.list("rg-other"))


def test_listing_a_large_fleet_pages_through_next_links() -> None:
    fleet_spec = small_fleet({"name": "vm-{index:03d}", "count": 250})
    with FleetServer(fleet_spec, sandbox=False) as fleet:
        from azure.mgmt.compute import ComputeManagementClient
        from localfleet.credential import FleetCredential

        client = ComputeManagementClient(
            FleetCredential(), SUB, base_url=fleet.base_url, connection_verify=fleet.ca_bundle, retry_total=0
        )
        names = [vm.name for vm in client.virtual_machines.list("rg-demo")]
        assert len(names) == 250 and len(set(names)) == 250
        assert len(fleet.calls_matching("GET", "*/virtualmachines")) == 3
        statuses = list(client.virtual_machines.list_all(status_only="true"))
        assert len(statuses) == 250 and all(vm.instance_view is not None for vm in statuses)


def test_a_vm_list_refuses_the_instance_view_without_a_filter_as_arm_does(sdk: Any) -> None:
    from azure.core.exceptions import HttpResponseError

    for listing in (
        lambda: list(sdk.virtual_machines.list("rg-demo", expand="instanceView")),
        lambda: list(sdk.virtual_machines.list_all(expand="instanceView")),
    ):
        with pytest.raises(HttpResponseError, match="InvalidParameter") as refused:
            listing()
        assert refused.value.status_code == 400


def test_get_vm_with_instance_view(sdk: Any) -> None:
    vm = sdk.virtual_machines.get("rg-demo", "vm-windows", expand="instanceView")
    assert vm.storage_profile.os_disk.os_type == "Windows"
    assert "PowerState/running" in [s.code for s in vm.instance_view.statuses]
    assert vm.instance_view.vm_agent.statuses[0].display_status == "Ready"
    assert vm.network_profile.network_interfaces[0].id.endswith("/networkInterfaces/vm-windows-nic")
    plain = sdk.virtual_machines.get("rg-demo", "vm-windows")
    assert plain.instance_view is None


def test_instance_view_route_and_missing_vm(sdk: Any, fleet: FleetServer) -> None:
    fleet.set_vm("vm-linux-disk", power_state="deallocated", agent_status="Not Ready")
    view = sdk.virtual_machines.instance_view("rg-demo", "vm-linux-disk")
    assert "PowerState/deallocated" in [s.code for s in view.statuses]
    assert view.vm_agent.statuses[0].display_status == "Not Ready"
    with pytest.raises(ResourceNotFoundError):
        sdk.virtual_machines.get("rg-demo", "vm-nope")


def test_action_run_command_linux_shape(sdk: Any, fleet: FleetServer) -> None:
    result = sdk.virtual_machines.begin_run_command(
        "rg-demo", "vm-linux-disk", {"commandId": "RunShellScript", "script": ["echo hi"]}
    ).result()
    assert len(result.value) == 1
    status = result.value[0]
    assert status.code == "ProvisioningState/succeeded"
    assert status.message.startswith("Enable succeeded: \n[stdout]\n")
    stdout, _ = runresult.split_linux_message(status.message)
    assert runresult.parse_result(stdout)["status"] == "fixed"
    # Both headers, as Azure sends them: the SDK reads the result from the Location URL.
    assert fleet.calls_matching("POST", "*/runcommand")


def test_action_run_command_windows_shape(sdk: Any) -> None:
    result = sdk.virtual_machines.begin_run_command(
        "rg-demo",
        "vm-windows",
        {"commandId": "RunPowerShellScript", "script": ["Write-Host $TargetFreePercent"]},
    ).result()
    assert [s.code for s in result.value] == [
        "ComponentStatus/StdOut/succeeded",
        "ComponentStatus/StdErr/succeeded",
    ]
    assert "REMEDIATION_RESULT" in result.value[0].message


def test_action_run_command_answers_202_with_both_headers(fleet: FleetServer) -> None:
    path = (
        f"/subscriptions/{SUB}/resourceGroups/rg-demo/providers/Microsoft.Compute/virtualMachines/vm-windows"
    )
    context = ssl.create_default_context(cafile=fleet.ca_bundle)
    request = urllib.request.Request(
        f"{fleet.base_url}{path}/runCommand?api-version=2099-01-01",
        method="POST",
        data=json.dumps({"commandId": "RunPowerShellScript", "script": []}).encode(),
    )
    request.add_header("Authorization", "Bearer x")
    with urllib.request.urlopen(request, context=context) as response:
        assert response.status == 202
        assert "/operations/" in response.headers["Azure-AsyncOperation"]
        assert "monitor=true" in response.headers["Location"]


def test_action_output_keeps_the_last_4096_bytes() -> None:
    long_out = "x" * 9000 + "\nthe end\n"
    fleet_spec = small_fleet({"name": "w", "os": "windows", "outcomes": [{"stdout": long_out}]})
    with FleetServer(fleet_spec, sandbox=False) as fleet:
        from azure.mgmt.compute import ComputeManagementClient
        from localfleet.credential import FleetCredential

        client = ComputeManagementClient(
            FleetCredential(),
            SUB,
            base_url=fleet.base_url,
            connection_verify=fleet.ca_bundle,
            retry_total=0,
            polling_interval=0,
        )
        value = (
            client.virtual_machines.begin_run_command(
                "rg-demo", "w", {"commandId": "RunPowerShellScript", "script": ["x"]}
            )
            .result()
            .value
        )
        assert len(value[0].message.encode()) == 4096
        assert value[0].message.endswith("the end\n")


def test_action_run_command_conflicts(sdk: Any, fleet: FleetServer) -> None:
    with pytest.raises(ResourceExistsError, match="does not match the target OS Linux"):
        sdk.virtual_machines.begin_run_command(
            "rg-demo", "vm-linux-disk", {"commandId": "RunPowerShellScript"}
        )
    fleet.inject("POST */runCommand", "stuck", times=1)
    sdk.virtual_machines.begin_run_command(
        "rg-demo", "vm-linux-disk", {"commandId": "RunShellScript", "script": ["sleep"]}, polling=False
    )
    with pytest.raises(ResourceExistsError, match="Run command extension execution is in progress"):
        sdk.virtual_machines.begin_run_command("rg-demo", "vm-linux-disk", {"commandId": "RunShellScript"})


def test_action_run_command_needs_a_running_vm_and_a_ready_agent(sdk: Any, fleet: FleetServer) -> None:
    fleet.set_vm("vm-linux-disk", power_state="stopped")
    with pytest.raises(ResourceExistsError, match="OperationNotAllowed"):
        sdk.virtual_machines.begin_run_command("rg-demo", "vm-linux-disk", {"commandId": "RunShellScript"})
    fleet.set_vm("vm-linux-disk", power_state="running", agent_status="Not Ready")
    poller = sdk.virtual_machines.begin_run_command(
        "rg-demo", "vm-linux-disk", {"commandId": "RunShellScript"}
    )
    with pytest.raises(HttpResponseError, match="VMAgentStatusCommunicationError"):
        poller.result()


def test_action_run_passes_parameters_positionally_only(fleet: FleetServer) -> None:
    """A declared run sees no named environment: classic mode is positional on Linux."""
    vm = fleet.vm("vm-linux-disk")
    with fleet.fleet.lock:
        op = fleet.fleet.action_run(
            vm,
            {
                "commandId": "RunShellScript",
                "script": ["x"],
                "parameters": [{"name": "MOUNT_POINT", "value": "/var"}],
            },
        )
    assert op.run is not None
    assert getattr(op.run.guest, "dry_run", None) is False


def managed_body(script: str = "echo hi", **props: Any) -> dict[str, Any]:
    return {
        "location": "westeurope",
        "properties": {"source": {"script": script}, "asyncExecution": True, "timeoutInSeconds": 60, **props},
    }


def test_managed_run_command_lifecycle(sdk: Any, fleet: FleetServer) -> None:
    ops = sdk.virtual_machine_run_commands
    created = ops.begin_create_or_update(
        "rg-demo",
        "vm-linux-disk",
        "rc1",
        managed_body(parameters=[{"name": "MOUNT_POINT", "value": "/var"}]),
        polling=False,
    ).result()
    assert created.name == "rc1"
    rc = ops.get_by_virtual_machine("rg-demo", "vm-linux-disk", "rc1", expand="instanceView")
    view = rc.instance_view
    assert view.execution_state == "Succeeded"
    assert view.exit_code == 0
    assert runresult.parse_result(view.output)["status"] == "fixed"
    assert view.start_time is not None and view.end_time is not None
    assert ops.get_by_virtual_machine("rg-demo", "vm-linux-disk", "rc1").instance_view is None
    assert [r.name for r in ops.list_by_virtual_machine("rg-demo", "vm-linux-disk")] == ["rc1"]
    ops.begin_delete("rg-demo", "vm-linux-disk", "rc1").result()
    with pytest.raises(ResourceNotFoundError):
        ops.get_by_virtual_machine("rg-demo", "vm-linux-disk", "rc1")


def test_managed_put_with_lro_polling_completes(sdk: Any) -> None:
    rc = sdk.virtual_machine_run_commands.begin_create_or_update(
        "rg-demo", "vm-windows", "rc-sync", managed_body("TargetFreePercent", asyncExecution=False)
    ).result()
    assert rc.provisioning_state == "Succeeded"


def test_managed_runs_in_parallel_and_time_out(sdk: Any, fleet: FleetServer) -> None:
    ops = sdk.virtual_machine_run_commands
    fleet.inject("PUT */runCommands/*", "stuck", times=2)
    ops.begin_create_or_update("rg-demo", "vm-windows", "a", managed_body(timeoutInSeconds=30), polling=False)
    ops.begin_create_or_update(
        "rg-demo", "vm-windows", "b", managed_body(timeoutInSeconds=600), polling=False
    )
    states = {
        n: ops.get_by_virtual_machine(
            "rg-demo", "vm-windows", n, expand="instanceView"
        ).instance_view.execution_state
        for n in "ab"
    }
    assert states == {"a": "Running", "b": "Running"}
    fleet.advance(31)
    a = ops.get_by_virtual_machine("rg-demo", "vm-windows", "a", expand="instanceView").instance_view
    b = ops.get_by_virtual_machine("rg-demo", "vm-windows", "b", expand="instanceView").instance_view
    assert (a.execution_state, b.execution_state) == ("TimedOut", "Running")


def test_deleting_a_running_managed_command_stops_it(sdk: Any, fleet: FleetServer) -> None:
    ops = sdk.virtual_machine_run_commands
    fleet.inject("PUT */runCommands/*", "stuck", times=1)
    ops.begin_create_or_update("rg-demo", "vm-windows", "long", managed_body(), polling=False)
    run = fleet.vm("vm-windows").managed["long"]
    ops.begin_delete("rg-demo", "vm-windows", "long").result()
    assert run.state == "Canceled"
    assert "long" not in fleet.vm("vm-windows").managed


def test_repeated_put_of_the_same_body_does_not_run_again(sdk: Any, fleet: FleetServer) -> None:
    ops = sdk.virtual_machine_run_commands
    ops.begin_create_or_update(
        "rg-demo", "vm-windows", "same", managed_body("TargetFreePercent"), polling=False
    )
    ops.begin_create_or_update(
        "rg-demo", "vm-windows", "same", managed_body("TargetFreePercent"), polling=False
    )
    assert fleet.runs_started("vm-windows") == 1
    ops.begin_create_or_update("rg-demo", "vm-windows", "same", managed_body("changed"), polling=False)
    assert fleet.runs_started("vm-windows") == 2


def test_managed_run_on_a_stopped_vm_is_refused(sdk: Any, fleet: FleetServer) -> None:
    fleet.set_vm("vm-windows", power_state="deallocated")
    with pytest.raises(ResourceExistsError, match="OperationNotAllowed"):
        sdk.virtual_machine_run_commands.begin_create_or_update(
            "rg-demo", "vm-windows", "x", managed_body(), polling=False
        )


def test_builtin_run_commands(sdk: Any) -> None:
    ids = {c.id: c.os_type for c in sdk.virtual_machine_run_commands.list("westeurope")}
    assert ids["RunShellScript"] == "Linux" and ids["RunPowerShellScript"] == "Windows"
    command = sdk.virtual_machine_run_commands.get("westeurope", "RunPowerShellScript")
    assert command.script[0] == "param(" and [p.name for p in command.parameters] == ["arg1", "arg2"]
    with pytest.raises(ResourceNotFoundError):
        sdk.virtual_machine_run_commands.get("westeurope", "NoSuchCommand")


def test_nsg_and_rule_routes(netsdk: Any) -> None:
    nsg = netsdk.network_security_groups.get("rg-demo", "nsg-demo")
    assert [r.name for r in nsg.security_rules] == ["deny-ssh"]
    assert {r.name for r in nsg.default_security_rules} >= {"DenyAllInBound", "AllowVnetInBound"}
    assert nsg.network_interfaces[0].id.endswith("vm-linux-locked-nic")
    rule = {
        "properties": {
            "priority": 110,
            "direction": "Inbound",
            "access": "Allow",
            "protocol": "Tcp",
            "sourceAddressPrefixes": ["10.0.0.0/8", "172.16.0.0/12"],
            "sourcePortRange": "*",
            "destinationAddressPrefix": "*",
            "destinationPortRange": "22",
        }
    }
    made = netsdk.security_rules.begin_create_or_update("rg-demo", "nsg-demo", "allow-ssh", rule).result()
    assert made.source_address_prefixes == ["10.0.0.0/8", "172.16.0.0/12"]
    assert netsdk.security_rules.get("rg-demo", "nsg-demo", "allow-ssh").priority == 110
    assert sorted(r.name for r in netsdk.security_rules.list("rg-demo", "nsg-demo")) == [
        "allow-ssh",
        "deny-ssh",
    ]
    netsdk.security_rules.begin_delete("rg-demo", "nsg-demo", "allow-ssh").result()
    with pytest.raises(ResourceNotFoundError):
        netsdk.security_rules.get("rg-demo", "nsg-demo", "allow-ssh")


def test_rule_conflicts_and_bad_priority_are_refused(netsdk: Any) -> None:
    rule = {
        "properties": {
            "priority": 200,
            "direction": "Inbound",
            "access": "Allow",
            "protocol": "Tcp",
            "destinationPortRange": "22",
        }
    }
    with pytest.raises(HttpResponseError, match="SecurityRuleConflict"):
        netsdk.security_rules.begin_create_or_update("rg-demo", "nsg-demo", "other", rule).result()
    rule["properties"]["priority"] = 5000
    with pytest.raises(HttpResponseError, match="SecurityRuleInvalidPriority"):
        netsdk.security_rules.begin_create_or_update("rg-demo", "nsg-demo", "other", rule).result()


def test_put_nsg_replaces_its_rules(netsdk: Any) -> None:
    body = {
        "location": "westeurope",
        "tags": {"owner": "ops"},
        "properties": {
            "securityRules": [
                {
                    "name": "allow-https",
                    "properties": {
                        "priority": 200,
                        "direction": "Inbound",
                        "access": "Allow",
                        "protocol": "Tcp",
                        "destinationPortRange": "443",
                    },
                }
            ]
        },
    }
    nsg = netsdk.network_security_groups.begin_create_or_update("rg-demo", "nsg-demo", body).result()
    assert [r.name for r in nsg.security_rules] == ["allow-https"]
    assert nsg.tags == {"owner": "ops"}
    fresh = netsdk.network_security_groups.begin_create_or_update(
        "rg-demo", "nsg-new", {"location": "westeurope"}
    )
    assert fresh.result().name == "nsg-new"


def test_nic_vnet_and_subnet_routes(netsdk: Any) -> None:
    nic = netsdk.network_interfaces.get("rg-demo", "vm-linux-locked-nic")
    assert nic.network_security_group.id.endswith("/networkSecurityGroups/nsg-demo")
    assert nic.virtual_machine.id.endswith("/virtualMachines/vm-linux-locked")
    assert nic.ip_configurations[0].private_ip_address == "10.0.0.5"
    subnet = netsdk.subnets.get("rg-demo", "vnet-demo", "default")
    assert subnet.network_security_group is None
    assert len(subnet.ip_configurations) == 4
    assert netsdk.virtual_networks.get("rg-demo", "vnet-demo").address_space.address_prefixes == [
        "10.0.0.0/16"
    ]


def test_subnet_with_an_nsg_reports_the_association() -> None:
    doc = {
        "subscriptions": [
            {
                "id": SUB,
                "resourceGroups": [
                    {
                        "name": "rg",
                        "networkSecurityGroups": [{"name": "n"}],
                        "virtualNetworks": [{"name": "v", "subnets": [{"name": "s", "nsg": "n"}]}],
                    }
                ],
            }
        ]
    }
    from localfleet.fleetfile import parse_fleet

    with FleetServer(parse_fleet(doc), sandbox=False) as fleet:
        status, body = raw(
            fleet,
            "GET",
            f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Network/"
            "virtualNetworks/v/subnets/s?api-version=2024-05-01",
        )
        assert status == 200
        assert body["properties"]["networkSecurityGroup"]["id"].endswith("/networkSecurityGroups/n")


def test_a_bearer_token_is_required(fleet: FleetServer) -> None:
    status, body = raw(
        fleet,
        "GET",
        f"/subscriptions/{SUB}/providers/Microsoft.Compute/virtualMachines?api-version=2026-04-01",
        token=False,
    )
    assert status == 401 and body["error"]["code"] == "AuthenticationFailed"


def test_any_api_version_is_served_and_unknown_routes_are_404(fleet: FleetServer) -> None:
    base = (
        f"/subscriptions/{SUB}/resourceGroups/rg-demo/providers/Microsoft.Compute/virtualMachines/vm-windows"
    )
    assert raw(fleet, "GET", base + "?api-version=2019-03-01")[0] == 200
    assert raw(fleet, "GET", base)[0] == 400  # ARM requires an api-version
    status, body = raw(
        fleet,
        "GET",
        f"/subscriptions/{SUB}/providers/Microsoft.Storage/storageAccounts?api-version=2024-01-01",
    )
    assert status == 404 and body["error"]["code"] == "InvalidResourceType"
    status, body = raw(
        fleet,
        "PUT",
        f"/subscriptions/{SUB}/resourceGroups/rg-demo/providers/Microsoft.Compute/"
        "virtualMachines/vm-windows/runCommands/x?api-version=1",
        body=[1],
    )
    assert status == 400


def test_admin_api_over_http(fleet: FleetServer) -> None:
    base = (
        f"/subscriptions/{SUB}/resourceGroups/rg-demo/providers/Microsoft.Compute/virtualMachines/vm-windows"
    )
    raw(fleet, "GET", base + "?api-version=1")
    status, body = raw(fleet, "GET", "/_admin/calls")
    assert status == 200 and body["calls"] == [{"method": "GET", "path": base}]
    assert (
        raw(
            fleet,
            "POST",
            "/_admin/faults",
            {"route": "GET */vm-windows", "kind": "error", "status": 500, "times": 1},
        )[0]
        == 201
    )
    assert raw(fleet, "GET", base + "?api-version=1")[0] == 500
    assert raw(fleet, "GET", base + "?api-version=1")[0] == 200
    status, body = raw(fleet, "POST", "/_admin/faults", {"route": "*", "kind": "nonsense"})
    assert status == 400 and "must be one of" in body["error"]["message"]
    status, body = raw(fleet, "PATCH", "/_admin/vms/vm-windows", {"powerState": "stopped"})
    assert body["powerState"] == "stopped"
    assert raw(fleet, "POST", "/_admin/clock", {"advanceSeconds": 5})[0] == 200
    assert raw(fleet, "DELETE", "/_admin/calls")[0] == 204
    assert raw(fleet, "GET", "/_admin/calls")[1] == {"calls": []}
