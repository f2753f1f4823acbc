"""The emulator answers in the shapes of Microsoft's published examples (same keys, same JSON types)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from localfleet.server import FleetServer

from .conftest import SUB
from .test_routes import raw

pytestmark = pytest.mark.fleet

VM_PATH = f"/subscriptions/{SUB}/resourceGroups/rg-demo/providers/Microsoft.Compute/virtualMachines"


def example(folder: Path, name: str) -> dict[str, Any]:
    return json.loads((folder / f"{name}.example.json").read_text())


def kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


def assert_same_shape(
    ours: Any, theirs: Any, path: str = "$", optional: frozenset[str] = frozenset()
) -> None:
    """Every key we send exists in the example with the same JSON type; every key it has we send too,
    unless listed in ``optional`` (features a fleet VM does not have)."""
    if theirs is None:
        return  # the example leaves the type open
    assert kind(ours) == kind(theirs), f"{path}: {kind(ours)} where the example has {kind(theirs)}"
    if isinstance(ours, dict):
        extra = set(ours) - set(theirs)
        assert not extra, f"{path}: keys not in the example: {sorted(extra)}"
        missing = {k for k in set(theirs) - set(ours) if f"{path}.{k}" not in optional}
        assert not missing, f"{path}: keys of the example we do not send: {sorted(missing)}"
        for key in ours:
            assert_same_shape(ours[key], theirs[key], f"{path}.{key}", optional)
    elif isinstance(ours, list) and ours and theirs:
        for index, item in enumerate(ours):
            assert_same_shape(item, theirs[min(index, len(theirs) - 1)], f"{path}[{index}]", optional)


def test_instance_view(fleet: FleetServer, shared_fixtures: Path) -> None:
    theirs = example(shared_fixtures, "arm-vm-instanceview")["responses"]["200"]["body"]
    status, ours = raw(fleet, "GET", f"{VM_PATH}/vm-windows/instanceView?api-version=2024-11-01")
    assert status == 200
    optional = frozenset(
        {
            "$.bootDiagnostics",
            "$.extensions",
            "$.patchStatus",
            "$.vmAgent.extensionHandlers[0].status",
            "$.vmAgent.statuses[0].time",
        }
    )
    # The example's agent has handlers; ours has none, so compare the agent without them.
    theirs = {**theirs, "vmAgent": {**theirs["vmAgent"], "extensionHandlers": []}}
    assert_same_shape(ours, theirs, optional=optional)
    _, with_vm = raw(fleet, "GET", f"{VM_PATH}/vm-windows?api-version=2024-11-01&$expand=instanceView")
    assert_same_shape(with_vm["properties"]["instanceView"], theirs, optional=optional)


@pytest.mark.parametrize("vm", ["vm-windows", "vm-linux-disk"])
def test_action_run_command_result(fleet: FleetServer, shared_fixtures: Path, vm: str) -> None:
    spec = example(shared_fixtures, "arm-runcommand-action")
    theirs = spec["responses"]["200"]["body"]
    command = "RunPowerShellScript" if vm == "vm-windows" else "RunShellScript"
    status, _ = raw(
        fleet,
        "POST",
        f"{VM_PATH}/{vm}/runCommand?api-version=2024-11-01",
        {"commandId": command, "script": ["TargetFreePercent"]},
    )
    assert status == 202
    op = fleet.fleet.operations
    (op_id,) = list(op)
    location = f"/subscriptions/{SUB}/providers/Microsoft.Compute/locations/westeurope/operations/{op_id}"
    status, ours = raw(fleet, "GET", f"{location}?monitor=true&api-version=2024-11-01")
    assert status == 200
    assert_same_shape(ours, theirs)
    codes = [s["code"] for s in ours["value"]]
    if vm == "vm-windows":
        assert codes == [s["code"] for s in theirs["value"]]
    else:
        assert codes == ["ProvisioningState/succeeded"]
        assert ours["value"][0]["message"].startswith("Enable succeeded: \n[stdout]\n")


def test_builtin_list_and_get(fleet: FleetServer, shared_fixtures: Path) -> None:
    base = f"/subscriptions/{SUB}/providers/Microsoft.Compute/locations/westeurope/runCommands"
    _, listed = raw(fleet, "GET", f"{base}?api-version=2024-11-01")
    assert_same_shape(
        listed, example(shared_fixtures, "arm-runcommand-builtin-list")["responses"]["200"]["body"]
    )
    _, one = raw(fleet, "GET", f"{base}/RunPowerShellScript?api-version=2024-11-01")
    theirs = example(shared_fixtures, "arm-runcommand-builtin-get")["responses"]["200"]["body"]
    assert_same_shape(one, theirs)
    assert one["script"] == theirs["script"]


def test_managed_run_command_put(fleet: FleetServer, shared_fixtures: Path) -> None:
    spec = example(shared_fixtures, "arm-runcommand-managed-createorupdate")
    theirs = spec["responses"]["201"]["body"]
    body = {
        "location": "westeurope",
        "tags": {"tag1": "value1", "tag2": "value2"},
        "properties": {
            "source": {"script": "echo hi"},
            "parameters": [{"name": "MOUNT_POINT", "value": "/var"}],
            "asyncExecution": True,
            "timeoutInSeconds": 600,
            "treatFailureAsDeploymentFailure": False,
        },
    }
    status, ours = raw(fleet, "PUT", f"{VM_PATH}/vm-windows/runCommands/rc1?api-version=2024-11-01", body)
    assert status == 201
    optional = frozenset(
        {
            "$.properties.runAsUser",
            "$.properties.outputBlobUri",
            "$.properties.errorBlobUri",
            "$.properties.source.scriptUri",
        }
    )
    # The example runs a script from a blob (scriptUri); the engine sends the script inline.
    theirs_source = {"script": "", **theirs["properties"]["source"]}
    assert_same_shape(
        ours, {**theirs, "properties": {**theirs["properties"], "source": theirs_source}}, optional=optional
    )
    assert ours["properties"]["provisioningState"] == "Creating"
