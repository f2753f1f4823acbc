"""Fleet file validation: every mistake names the file and the field."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from localfleet.fleetfile import FleetFileError, load_fleet, parse_fleet

from autoremediation.errors import InvalidInput

from .conftest import SUB


def doc(**group: Any) -> dict[str, Any]:
    return {"subscriptions": [{"id": SUB, "resourceGroups": [{"name": "rg", **group}]}]}


def test_demo_fleet_ships_with_the_package() -> None:
    fleet = load_fleet()
    assert fleet.subscription == SUB
    names = {vm.name: vm for vm in fleet.vms}
    assert set(names) == {"vm-linux-disk", "vm-linux-locked", "vm-windows", "vm-no-optin"}
    assert names["vm-linux-disk"].tags["autoremediation"] == "enabled"
    assert "autoremediation" not in names["vm-no-optin"].tags
    assert names["vm-windows"].os == "windows"
    disk = names["vm-linux-disk"].guest.disks[0]  # type: ignore[union-attr]
    assert (disk.mount, disk.size_mb, disk.used_percent) == ("/var", 64, 93)
    rule = fleet.nsgs[0].rules[0]
    assert (rule["name"], rule["priority"], rule["access"], rule["destinationPortRange"]) == (
        "deny-ssh",
        200,
        "Deny",
        "22",
    )


def test_count_declares_many_vms_from_a_name_pattern() -> None:
    fleet = parse_fleet(doc(virtualMachines=[{"name": "vm-{index:04d}", "count": 1000}]))
    assert len(fleet.vms) == 1000
    assert fleet.vms[0].name == "vm-0001"
    assert fleet.vms[-1].name == "vm-1000"


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"subscriptions": []}, "subscriptions: declare at least one subscription"),
        (
            {"subscriptions": [{"id": "not-a-guid"}]},
            "subscriptions[0].id: 'not-a-guid' is not a subscription GUID",
        ),
        ({"subscription": []}, "(top level): unknown field 'subscription'"),
        (
            doc(virtualMachines=[{"name": "vm1", "os": "macos"}]),
            "resourceGroups[0].virtualMachines[0].os: must be one of linux, windows",
        ),
        (doc(virtualMachines=[{"os": "linux"}]), "virtualMachines[0].name: is required"),
        (doc(virtualMachines=[{"name": "vm1", "powerState": "sleeping"}]), "virtualMachines[0].powerState"),
        (
            doc(virtualMachines=[{"name": "vm1", "colour": "blue"}]),
            "virtualMachines[0]: unknown field 'colour'",
        ),
        (
            doc(virtualMachines=[{"name": "vm-{index}", "count": 0}]),
            "virtualMachines[0].count: must be between",
        ),
        (doc(virtualMachines=[{"name": "vm", "count": 3}]), "must hold an {index} pattern"),
        (doc(virtualMachines=[{"name": "vm1"}, {"name": "VM1"}]), "virtualMachine 'VM1' is declared twice"),
        (
            doc(virtualMachines=[{"name": "vm1", "nics": ["missing-nic"]}]),
            "no network interface 'missing-nic'",
        ),
        (doc(networkInterfaces=[{"name": "nic", "nsg": "nope"}]), "no network security group 'nope'"),
        (doc(networkInterfaces=[{"name": "nic", "subnet": "vnet/none"}]), "no subnet 'vnet/none'"),
        (
            doc(virtualMachines=[{"name": "w", "os": "windows", "guest": {"disks": []}}]),
            "only Linux VMs run scripts in a guest sandbox",
        ),
        (
            doc(virtualMachines=[{"name": "vm1", "guest": {"disks": [{"mount": "/var/../etc"}]}}]),
            "must be an absolute path of plain segments",
        ),
        (
            doc(virtualMachines=[{"name": "vm1", "outcomes": [{"exitCode": "zero"}]}]),
            "outcomes[0].exitCode: must be an integer",
        ),
        (
            doc(virtualMachines=[{"name": "vm1", "outcomes": [{"result": {"status": "great"}}]}]),
            "outcomes[0].result.status: must be one of fixed",
        ),
        (
            doc(
                networkSecurityGroups=[
                    {"name": "n", "rules": [{"name": "a", "priority": 100}, {"name": "b", "priority": 100}]}
                ]
            ),
            "two rules share a priority and direction",
        ),
        (
            doc(networkSecurityGroups=[{"name": "n", "rules": [{"name": "a", "priority": 50}]}]),
            "rules[0].priority: must be between 100 and 4096",
        ),
        (
            doc(
                networkSecurityGroups=[
                    {
                        "name": "n",
                        "rules": [
                            {"name": "a", "destinationPortRange": "22", "destinationPortRanges": ["22"]}
                        ],
                    }
                ]
            ),
            "use either destinationPortRange or destinationPortRanges",
        ),
        (
            {"subscriptions": [{"id": SUB}], "faults": [{"route": "*", "kind": "explode"}]},
            "faults[0].kind: must be one of latency, throttle, error, drop, stuck",
        ),
        (
            {"subscriptions": [{"id": SUB}], "faults": [{"route": "*", "kind": "throttle", "status": 503}]},
            "a throttle fault answers 429",
        ),
    ],
)
def test_invalid_fleet_files_name_the_field(data: dict[str, Any], fragment: str) -> None:
    with pytest.raises(FleetFileError) as caught:
        parse_fleet(data, "my-fleet.yaml")
    message = str(caught.value)
    assert message.startswith("my-fleet.yaml: ")
    assert fragment in message


def test_fleet_file_errors_are_invalid_input() -> None:
    assert issubclass(FleetFileError, InvalidInput)


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(FleetFileError, match="cannot read the fleet file"):
        load_fleet(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("subscriptions: [\n")
    with pytest.raises(FleetFileError, match=re.escape("bad.yaml: not valid YAML")):
        load_fleet(bad)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(FleetFileError, match=re.escape("empty.yaml: (top level): must be a mapping")):
        load_fleet(empty)


def test_faults_declared_in_the_fleet_file() -> None:
    fleet = parse_fleet(
        {
            "subscriptions": [{"id": SUB}],
            "faults": [{"route": "POST */runCommand", "kind": "throttle", "retryAfter": 3, "times": 2}],
        }
    )
    fault = fleet.faults[0]
    assert (fault.kind, fault.status, fault.retry_after, fault.times) == ("throttle", 429, 3.0, 2)


def test_guest_services_are_validated() -> None:
    good = doc(virtualMachines=[{"name": "v", "guest": {"services": [{"name": "nginx", "state": "failed"}]}}])
    assert parse_fleet(good).vms[0].guest.services == (("nginx", "failed"),)  # type: ignore[union-attr]
    bad = doc(virtualMachines=[{"name": "v", "guest": {"services": [{"name": "nginx", "state": "melted"}]}}])
    with pytest.raises(FleetFileError, match=re.escape("services[0].state: must be one of active")):
        parse_fleet(bad)
