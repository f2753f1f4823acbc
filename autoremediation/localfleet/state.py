"""The emulated Azure resources and their run commands, answering in ARM's JSON shapes.

Every method takes the fleet lock; the HTTP layer only routes. Errors are :class:`ArmError` with the
status code and ARM error code Azure would send.
"""

from __future__ import annotations

import copy
import hashlib
import json
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .. import runresult
from .fleetfile import FleetSpec, NsgSpec, VmSpec
from .guest import Convergence, GuestOutput, GuestRun, SandboxPool, SandboxRun, start_run

COMPUTE = "Microsoft.Compute"
NETWORK = "Microsoft.Network"
RUN_COMMAND_IDS = {"linux": "RunShellScript", "windows": "RunPowerShellScript"}


class ArmError(Exception):
    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message}}


class FleetClock:
    """Wall time plus an offset the admin API can advance, so tests never sleep for a run to end."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def _guid(*parts: str) -> str:
    return str(uuid.UUID(hashlib.sha256("/".join(parts).encode()).hexdigest()[:32]))


def rg_id(sub: str, rg: str) -> str:
    return f"/subscriptions/{sub}/resourceGroups/{rg}"


@dataclass
class Run:
    """One script on one VM: an action run command or a managed run command resource."""

    kind: str  # "action" | "managed"
    vm_key: str
    script: str
    started: float
    timeout: float
    guest: GuestRun
    name: str = ""
    body: dict[str, Any] = field(default_factory=dict)
    fingerprint: str = ""
    ended: float | None = None
    output: GuestOutput | None = None
    state: str = "Running"  # Running | Succeeded | Failed | TimedOut | Canceled
    failure: tuple[str, str] | None = None  # (ARM code, message) of a failed operation

    def refresh(self, now: float) -> None:
        if self.ended is not None:
            return
        output = self.guest.poll(now)
        if output is None and self.timeout > 0 and now >= self.started + self.timeout:
            self.guest.kill()
            output = GuestOutput(None, "", "", timed_out=True)
        if output is None:
            return
        self.ended = now
        self.output = output
        if output.timed_out:
            self.state = "TimedOut"
        elif output.killed:
            self.state = "Canceled"
        elif output.exit_code == 0:
            self.state = "Succeeded"
        else:
            self.state = "Failed"


@dataclass
class Operation:
    """An ARM async operation: answers InProgress until its run (if any) has ended."""

    id: str
    location: str
    subscription: str
    started: float
    run: Run | None = None
    failure: tuple[str, str] | None = None
    provider: str = COMPUTE


@dataclass
class Vm:
    spec: VmSpec
    power_state: str
    agent_status: str
    tags: dict[str, str]
    convergence: Convergence = field(default_factory=Convergence)
    action: Run | None = None
    managed: dict[str, Run] = field(default_factory=dict)
    runs_started: int = 0

    @property
    def id(self) -> str:
        s = self.spec
        return f"{rg_id(s.subscription, s.resource_group)}/providers/{COMPUTE}/virtualMachines/{s.name}"


class Fleet:
    """All emulated resources. Resource lookups are case-insensitive, as in ARM."""

    def __init__(self, spec: FleetSpec, workdir: Path, *, sandbox: bool | None = None) -> None:
        self.spec = spec
        self.lock = threading.RLock()
        self.clock = FleetClock()
        self.sandboxes = SandboxPool(workdir / "sandboxes", enabled=sandbox)
        self.groups = {(s.lower(), rg.lower()): (s, rg, loc) for s, rg, loc in spec.resource_groups}
        self.vms: dict[str, Vm] = {}
        for vm_spec in spec.vms:
            vm = Vm(vm_spec, vm_spec.power_state, vm_spec.agent_status, dict(vm_spec.tags))
            self.vms[vm.id.lower()] = vm
        self.nsgs: dict[str, dict[str, Any]] = {}
        for nsg_spec in spec.nsgs:
            nsg = self._nsg_json(nsg_spec)
            self.nsgs[nsg["id"].lower()] = nsg
        self.vnets: dict[str, dict[str, Any]] = {}
        for vnet in spec.vnets:
            base = rg_id(vnet.subscription, vnet.resource_group)
            vnet_id = f"{base}/providers/{NETWORK}/virtualNetworks/{vnet.name}"
            subnets = []
            for subnet in vnet.subnets:
                props: dict[str, Any] = {
                    "addressPrefix": subnet.address_prefix,
                    "provisioningState": "Succeeded",
                    "ipConfigurations": [],
                }
                if subnet.nsg:
                    nsg_id = f"{base}/providers/{NETWORK}/networkSecurityGroups/{subnet.nsg}"
                    props["networkSecurityGroup"] = {"id": self.nsgs[nsg_id.lower()]["id"]}
                    self.nsgs[nsg_id.lower()]["properties"]["subnets"].append(
                        {"id": f"{vnet_id}/subnets/{subnet.name}"}
                    )
                subnets.append(
                    {
                        "name": subnet.name,
                        "id": f"{vnet_id}/subnets/{subnet.name}",
                        "type": f"{NETWORK}/virtualNetworks/subnets",
                        "etag": 'W/"1"',
                        "properties": props,
                    }
                )
            self.vnets[vnet_id.lower()] = {
                "name": vnet.name,
                "id": vnet_id,
                "type": f"{NETWORK}/virtualNetworks",
                "location": vnet.location,
                "etag": 'W/"1"',
                "tags": {},
                "properties": {
                    "addressSpace": {"addressPrefixes": list(vnet.address_prefixes)},
                    "subnets": subnets,
                    "provisioningState": "Succeeded",
                    "resourceGuid": _guid(vnet_id),
                },
            }
        self.nics: dict[str, dict[str, Any]] = {}
        owners = {
            f"{rg_id(v.subscription, v.resource_group)}/providers/{NETWORK}/networkInterfaces/{n}".lower(): vm
            for vm in self.vms.values()
            for v in [vm.spec]
            for n in v.nics
        }
        for nic in spec.nics:
            base = rg_id(nic.subscription, nic.resource_group)
            nic_id = f"{base}/providers/{NETWORK}/networkInterfaces/{nic.name}"
            ipconfig: dict[str, Any] = {
                "privateIPAddress": nic.private_ip,
                "privateIPAllocationMethod": "Dynamic",
                "primary": True,
                "provisioningState": "Succeeded",
            }
            if nic.subnet:
                vnet_name, _, subnet_name = nic.subnet.partition("/")
                subnet_json = self.find_subnet(
                    f"{base}/providers/{NETWORK}/virtualNetworks/{vnet_name}/subnets/{subnet_name}"
                )
                ipconfig["subnet"] = {"id": subnet_json["id"]}
                subnet_json["properties"]["ipConfigurations"].append(
                    {"id": f"{nic_id}/ipConfigurations/ipconfig1"}
                )
            props = {
                "ipConfigurations": [
                    {
                        "name": "ipconfig1",
                        "id": f"{nic_id}/ipConfigurations/ipconfig1",
                        "type": f"{NETWORK}/networkInterfaces/ipConfigurations",
                        "properties": ipconfig,
                    }
                ],
                "provisioningState": "Succeeded",
                "resourceGuid": _guid(nic_id),
                "primary": True,
            }
            if nic.nsg:
                nsg = self.nsgs[f"{base}/providers/{NETWORK}/networkSecurityGroups/{nic.nsg}".lower()]
                props["networkSecurityGroup"] = {"id": nsg["id"]}
                nsg["properties"]["networkInterfaces"].append({"id": nic_id})
            owner = owners.get(nic_id.lower())
            if owner is not None:
                props["virtualMachine"] = {"id": owner.id}
            self.nics[nic_id.lower()] = {
                "name": nic.name,
                "id": nic_id,
                "type": f"{NETWORK}/networkInterfaces",
                "location": nic.location,
                "etag": 'W/"1"',
                "tags": {},
                "properties": props,
            }
        self.operations: dict[str, Operation] = {}

    # ---- lookups -------------------------------------------------------------------------------

    def check_group(self, sub: str, rg: str) -> None:
        if sub.lower() not in {s.lower() for s in self.spec.subscriptions}:
            raise ArmError(404, "SubscriptionNotFound", f"The subscription '{sub}' could not be found.")
        if (sub.lower(), rg.lower()) not in self.groups:
            raise ArmError(404, "ResourceGroupNotFound", f"Resource group '{rg}' could not be found.")

    def vm(self, sub: str, rg: str, name: str) -> Vm:
        self.check_group(sub, rg)
        key = f"{rg_id(sub, rg)}/providers/{COMPUTE}/virtualMachines/{name}".lower()
        vm = self.vms.get(key)
        if vm is None:
            raise ArmError(
                404,
                "ResourceNotFound",
                f"The Resource '{COMPUTE}/virtualMachines/{name}' under resource group '{rg}' was not found.",
            )
        return vm

    def find_subnet(self, subnet_id: str) -> dict[str, Any]:
        vnet_id, _, name = subnet_id.rpartition("/subnets/")
        vnet = self.vnets.get(vnet_id.lower())
        if vnet is not None:
            for subnet in vnet["properties"]["subnets"]:
                if subnet["name"].lower() == name.lower():
                    return subnet
        raise ArmError(404, "NotFound", f"Resource {subnet_id} not found.")

    def _network(
        self, table: dict[str, dict[str, Any]], sub: str, rg: str, kind: str, name: str
    ) -> dict[str, Any]:
        self.check_group(sub, rg)
        key = f"{rg_id(sub, rg)}/providers/{NETWORK}/{kind}/{name}".lower()
        resource = table.get(key)
        if resource is None:
            raise ArmError(
                404,
                "ResourceNotFound",
                f"The Resource '{NETWORK}/{kind}/{name}' under resource group '{rg}' was not found.",
            )
        return resource

    # ---- virtual machines ----------------------------------------------------------------------

    def vm_json(self, vm: Vm, *, instance_view: bool) -> dict[str, Any]:
        s = vm.spec
        os_name = "Linux" if s.os == "linux" else "Windows"
        base = rg_id(s.subscription, s.resource_group)
        os_profile: dict[str, Any] = {"computerName": s.name, "adminUsername": "azureuser"}
        if s.os == "linux":
            os_profile["linuxConfiguration"] = {
                "disablePasswordAuthentication": True,
                "provisionVMAgent": True,
            }
        else:
            os_profile["windowsConfiguration"] = {"provisionVMAgent": True, "enableAutomaticUpdates": True}
        props: dict[str, Any] = {
            "vmId": _guid(vm.id),
            "hardwareProfile": {"vmSize": s.size},
            "storageProfile": {
                "osDisk": {
                    "osType": os_name,
                    "name": f"{s.name}_OsDisk",
                    "createOption": "FromImage",
                    "caching": "ReadWrite",
                    "diskSizeGB": 30,
                },
                "dataDisks": [],
            },
            "osProfile": os_profile,
            "networkProfile": {
                "networkInterfaces": [
                    {
                        "id": f"{base}/providers/{NETWORK}/networkInterfaces/{n}",
                        "properties": {"primary": i == 0},
                    }
                    for i, n in enumerate(s.nics)
                ]
            },
            "provisioningState": "Succeeded",
        }
        if instance_view:
            props["instanceView"] = self.instance_view_json(vm)
        return {
            "name": s.name,
            "id": vm.id,
            "type": f"{COMPUTE}/virtualMachines",
            "location": s.location,
            "tags": dict(vm.tags),
            "properties": props,
        }

    def instance_view_json(self, vm: Vm) -> dict[str, Any]:
        s = vm.spec
        ready = vm.agent_status == "Ready"
        agent_status = {
            "code": "ProvisioningState/succeeded" if ready else "ProvisioningState/Unavailable",
            "level": "Info" if ready else "Warning",
            "displayStatus": vm.agent_status,
            "message": "Guest Agent is running"
            if ready
            else "VM status blob is found but not yet populated.",
            "time": iso(self.clock.now()),
        }
        power = {
            "code": f"PowerState/{vm.power_state}",
            "level": "Info",
            "displayStatus": f"VM {vm.power_state}",
        }
        return {
            "platformUpdateDomain": 0,
            "platformFaultDomain": 0,
            "computerName": s.name,
            "osName": "ubuntu" if s.os == "linux" else "Windows Server 2022 Datacenter",
            "osVersion": "22.04" if s.os == "linux" else "10.0.20348",
            "vmAgent": {
                "vmAgentVersion": "2.10.0.8" if s.os == "linux" else "2.7.41491.1102",
                "statuses": [agent_status],
                "extensionHandlers": [],
            },
            "disks": [
                {
                    "name": f"{s.name}_OsDisk",
                    "statuses": [
                        {
                            "code": "ProvisioningState/succeeded",
                            "level": "Info",
                            "displayStatus": "Provisioning succeeded",
                            "time": iso(self.clock.now()),
                        }
                    ],
                }
            ],
            "hyperVGeneration": "V2",
            "isVMInStandbyPool": False,
            "statuses": [
                {
                    "code": "ProvisioningState/succeeded",
                    "level": "Info",
                    "displayStatus": "Provisioning succeeded",
                    "time": iso(self.clock.now()),
                },
                power,
            ],
        }

    def list_vms(self, sub: str, rg: str | None) -> list[Vm]:
        if sub.lower() not in {s.lower() for s in self.spec.subscriptions}:
            raise ArmError(404, "SubscriptionNotFound", f"The subscription '{sub}' could not be found.")
        if rg is not None:
            self.check_group(sub, rg)
        return [
            vm
            for vm in self.vms.values()
            if vm.spec.subscription.lower() == sub.lower()
            and (rg is None or vm.spec.resource_group.lower() == rg.lower())
        ]

    # ---- runs ----------------------------------------------------------------------------------

    def _start(
        self,
        vm: Vm,
        kind: str,
        script: str,
        env: Mapping[str, str],
        args: tuple[str, ...],
        timeout: float,
        name: str = "",
    ) -> Run:
        now = self.clock.now()
        sandbox_for = None
        if self.sandboxes.enabled and vm.spec.guest is not None and vm.spec.os == "linux":
            guest_spec = vm.spec.guest

            def sandbox_for() -> Any:
                return self.sandboxes.get(vm.id.lower(), vm.spec.name, guest_spec)

        guest = start_run(
            script=script,
            env=env,
            args=args,
            timeout=timeout or 5400,
            os_type=vm.spec.os,
            guest=vm.spec.guest,
            outcomes=vm.spec.outcomes,
            convergence=vm.convergence,
            now=now,
            sandbox_for=sandbox_for,
        )
        vm.runs_started += 1
        return Run(
            kind=kind,
            vm_key=vm.id.lower(),
            script=script,
            started=now,
            timeout=timeout,
            guest=guest,
            name=name,
        )

    def _check_can_run(self, vm: Vm, op: str) -> None:
        if vm.power_state != "running":
            raise ArmError(
                409,
                "OperationNotAllowed",
                f"Operation '{op}' is not allowed on VM '{vm.spec.name}' since the VM is "
                f"{vm.power_state} and not running.",
            )

    def _new_operation(self, vm: Vm, run: Run | None, failure: tuple[str, str] | None = None) -> Operation:
        return self.new_operation(vm.spec.subscription, vm.spec.location, run, failure)

    def new_operation(
        self,
        subscription: str,
        location: str,
        run: Run | None = None,
        failure: tuple[str, str] | None = None,
        provider: str = COMPUTE,
    ) -> Operation:
        op = Operation(
            id=str(uuid.uuid4()),
            location=location,
            subscription=subscription,
            started=self.clock.now(),
            run=run,
            failure=failure,
            provider=provider,
        )
        self.operations[op.id] = op
        return op

    def action_run(self, vm: Vm, body: Mapping[str, Any]) -> Operation:
        command_id = body.get("commandId")
        if not isinstance(command_id, str) or not command_id:
            raise ArmError(400, "InvalidParameter", "Required parameter 'commandId' is missing (null).")
        wanted = {v.lower(): k for k, v in RUN_COMMAND_IDS.items()}
        os_of_command = wanted.get(command_id.lower())
        if os_of_command is None:
            builtin = {c["id"].lower(): c for c in BUILTIN_COMMANDS}.get(command_id.lower())
            if builtin is None:
                raise ArmError(
                    404, "NotFound", f"The entity was not found. Run command '{command_id}' not found."
                )
            os_of_command = builtin["osType"].lower()
        self._check_can_run(vm, "runCommand")
        if os_of_command != vm.spec.os:
            raise ArmError(
                409,
                "Conflict",
                f"Run command OS type '{os_of_command.title()}' does not match the "
                f"target OS {vm.spec.os.title()}.",
            )
        if vm.action is not None:
            vm.action.refresh(self.clock.now())
            if vm.action.ended is None:
                raise ArmError(
                    409,
                    "Conflict",
                    "Run command extension execution is in progress. Please wait for "
                    "completion before invoking a run command.",
                )
        if vm.agent_status != "Ready":
            failure = (
                "VMAgentStatusCommunicationError",
                f"VM '{vm.spec.name}' has not reported status for VM agent or extensions. Verify that the OS "
                "is up and healthy, the VM has a running VM agent, and that it can establish outbound "
                "connections to Azure storage.",
            )
            return self._new_operation(vm, None, failure)
        script_lines = body.get("script") or []
        if not isinstance(script_lines, list) or not all(isinstance(x, str) for x in script_lines):
            raise ArmError(400, "InvalidParameter", "The value of parameter 'script' is invalid.")
        params = body.get("parameters") or []
        # Classic Run Command hands parameter values to a Linux script as positional arguments.
        args = tuple(str(p.get("value", "")) for p in params if isinstance(p, dict))
        env: dict[str, str] = {}
        if vm.spec.os == "windows":
            env = {str(p.get("name")): str(p.get("value", "")) for p in params if isinstance(p, dict)}
        run = self._start(vm, "action", "\n".join(script_lines), env, args, 5400)
        vm.action = run
        return self._new_operation(vm, run)

    def operation_status(self, sub: str, op_id: str, provider: str = COMPUTE) -> tuple[Operation, str]:
        op = self.operations.get(op_id)
        if op is None or op.subscription.lower() != sub.lower() or op.provider != provider:
            raise ArmError(404, "NotFound", f"Operation {op_id} not found.")
        if op.failure is not None:
            return op, "Failed"
        if op.run is None:
            return op, "Succeeded"
        op.run.refresh(self.clock.now())
        if op.run.ended is None:
            return op, "InProgress"
        if op.run.kind == "action" and op.run.output is not None and op.run.output.timed_out:
            op.failure = ("OperationPreempted", "The run command exceeded the maximum time of 90 minutes.")
            return op, "Failed"
        return op, "Succeeded"

    def operation_json(self, op: Operation, status: str) -> dict[str, Any]:
        body: dict[str, Any] = {"name": op.id, "status": status, "startTime": iso(op.started)}
        if status != "InProgress":
            ended = op.run.ended if op.run is not None and op.run.ended is not None else op.started
            body["endTime"] = iso(ended)
        if status == "Failed" and op.failure is not None:
            body["error"] = {"code": op.failure[0], "message": op.failure[1]}
        return body

    def action_result(self, op: Operation) -> dict[str, Any]:
        run = op.run
        assert run is not None and run.output is not None
        vm = self.vms[run.vm_key]
        out = run.output
        stdout, stderr = out.stdout, out.stderr
        if runresult.EXIT_MARKER in run.script and not isinstance(run.guest, SandboxRun):
            # A declared outcome stands for the script inside the wrapper: print what the wrapper would.
            code = out.exit_code if out.exit_code is not None else 1
            stderr = stderr if not stderr or stderr.endswith("\n") else stderr + "\n"
            stderr += f"{runresult.EXIT_MARKER} {code}\n"
        if vm.spec.os == "windows":
            return {"value": runresult.windows_statuses(stdout, stderr)}
        return {
            "value": [
                {
                    "code": "ProvisioningState/succeeded",
                    "level": "Info",
                    "displayStatus": "Provisioning succeeded",
                    "message": runresult.join_linux_message(stdout, stderr),
                }
            ]
        }

    # ---- managed run commands ------------------------------------------------------------------

    def put_managed(self, vm: Vm, name: str, body: Mapping[str, Any]) -> tuple[Run, bool, Operation]:
        props = body.get("properties")
        if not isinstance(props, dict):
            raise ArmError(400, "InvalidRequestContent", "The request content is missing 'properties'.")
        source = props.get("source") or {}
        script = source.get("script") if isinstance(source, dict) else None
        if source.get("commandId") and script:
            raise ArmError(
                400,
                "InvalidParameterConflictingProperties",
                "The property 'source.commandId' cannot be used together with property 'source.script'.",
            )
        if not isinstance(script, str) or not script:
            raise ArmError(400, "InvalidParameter", "The value of parameter 'source.script' is invalid.")
        timeout = props.get("timeoutInSeconds", 0)
        if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout < 0:
            raise ArmError(400, "InvalidParameter", "The value of parameter 'timeoutInSeconds' is invalid.")
        fingerprint = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        existing = vm.managed.get(name.lower())
        if existing is not None and existing.fingerprint == fingerprint:
            # A repeated PUT of the same body changes nothing, so the script does not run again.
            return existing, False, self._new_operation(vm, None)
        self._check_can_run(vm, "runCommands/write")
        if existing is not None:
            existing.guest.kill()
        env: dict[str, str] = {}
        for key in ("parameters", "protectedParameters"):
            for p in props.get(key) or []:
                if not isinstance(p, dict) or not isinstance(p.get("name"), str):
                    raise ArmError(400, "InvalidParameter", f"Each of '{key}' needs a name and a value.")
                env[p["name"]] = str(p.get("value", ""))
        if vm.agent_status != "Ready":
            failure = (
                "VMAgentStatusCommunicationError",
                f"VM '{vm.spec.name}' has not reported status for VM agent or extensions.",
            )
            run = Run(
                kind="managed",
                vm_key=vm.id.lower(),
                script=script,
                started=self.clock.now(),
                timeout=timeout,
                guest=_NeverRun(),
                name=name,
                failure=failure,
            )
            run.ended, run.state = run.started, "Failed"
        else:
            run = self._start(vm, "managed", script, env, (), timeout, name)
        stored = copy.deepcopy(dict(body))
        stored["properties"].pop("protectedParameters", None)
        run.body, run.fingerprint = stored, fingerprint
        vm.managed[name.lower()] = run
        sync = not props.get("asyncExecution", False)
        return run, existing is None, self._new_operation(vm, run if sync else None, run.failure)

    def managed(self, vm: Vm, name: str) -> Run:
        run = vm.managed.get(name.lower())
        if run is None:
            raise ArmError(
                404,
                "ResourceNotFound",
                f"The Resource '{COMPUTE}/virtualMachines/{vm.spec.name}/runCommands/{name}' under "
                f"resource group '{vm.spec.resource_group}' was not found.",
            )
        run.refresh(self.clock.now())
        return run

    def delete_managed(self, vm: Vm, name: str) -> bool:
        run = vm.managed.pop(name.lower(), None)
        if run is None:
            return False
        run.guest.kill()
        run.refresh(self.clock.now())
        return True

    def managed_json(self, vm: Vm, run: Run, *, instance_view: bool) -> dict[str, Any]:
        props = copy.deepcopy(run.body.get("properties", {}))
        props.setdefault("asyncExecution", False)
        props.setdefault("treatFailureAsDeploymentFailure", False)
        props.setdefault("timeoutInSeconds", 0)
        props["provisioningState"] = "Failed" if run.failure else "Succeeded"
        if instance_view:
            out = run.output
            view: dict[str, Any] = {
                "executionState": run.state,
                "executionMessage": "",
                "exitCode": out.exit_code if out is not None and out.exit_code is not None else 0,
                "output": runresult.tail(out.stdout) if out else "",
                "error": runresult.tail(out.stderr) if out else "",
                "startTime": iso(run.started),
                "statuses": [],
            }
            if run.ended is not None:
                view["endTime"] = iso(run.ended)
            if run.failure is not None:
                view["executionState"] = "Unknown"
                view["executionMessage"] = run.failure[1]
                view["statuses"] = [
                    {
                        "code": run.failure[0],
                        "level": "Error",
                        "displayStatus": "Provisioning failed",
                        "message": run.failure[1],
                    }
                ]
            elif run.state == "TimedOut":
                view["executionMessage"] = f"Execution timed out after {run.timeout} seconds"
            elif run.state == "Canceled":
                view["executionMessage"] = "Execution was canceled"
            elif run.ended is not None:
                view["executionMessage"] = "Execution completed"
            props["instanceView"] = view
        return {
            "name": run.name,
            "id": f"{vm.id}/runCommands/{run.name}",
            "type": f"{COMPUTE}/virtualMachines/runCommands",
            "location": vm.spec.location,
            "tags": run.body.get("tags") or {},
            "properties": props,
        }

    # ---- network -------------------------------------------------------------------------------

    def _nsg_json(self, spec: NsgSpec) -> dict[str, Any]:
        base = rg_id(spec.subscription, spec.resource_group)
        nsg_id = f"{base}/providers/{NETWORK}/networkSecurityGroups/{spec.name}"
        rules = [self._rule_json(nsg_id, dict(rule)) for rule in spec.rules]
        return {
            "name": spec.name,
            "id": nsg_id,
            "type": f"{NETWORK}/networkSecurityGroups",
            "location": spec.location,
            "etag": 'W/"1"',
            "tags": dict(spec.tags),
            "properties": {
                "securityRules": rules,
                "defaultSecurityRules": _default_rules(nsg_id),
                "networkInterfaces": [],
                "subnets": [],
                "provisioningState": "Succeeded",
                "resourceGuid": _guid(nsg_id),
            },
        }

    @staticmethod
    def _rule_json(nsg_id: str, props: dict[str, Any], kind: str = "securityRules") -> dict[str, Any]:
        name = props.pop("name")
        props.setdefault("provisioningState", "Succeeded")
        for single, plural in (
            ("sourceAddressPrefix", "sourceAddressPrefixes"),
            ("destinationAddressPrefix", "destinationAddressPrefixes"),
            ("sourcePortRange", "sourcePortRanges"),
            ("destinationPortRange", "destinationPortRanges"),
        ):
            props.setdefault(plural, [])
            if not props[plural]:
                props.setdefault(single, "*")
        return {
            "name": name,
            "id": f"{nsg_id}/{kind}/{name}",
            "etag": 'W/"1"',
            "type": f"{NETWORK}/networkSecurityGroups/{kind}",
            "properties": props,
        }

    def nsg(self, sub: str, rg: str, name: str) -> dict[str, Any]:
        return self._network(self.nsgs, sub, rg, "networkSecurityGroups", name)

    def nic(self, sub: str, rg: str, name: str) -> dict[str, Any]:
        return self._network(self.nics, sub, rg, "networkInterfaces", name)

    def vnet(self, sub: str, rg: str, name: str) -> dict[str, Any]:
        return self._network(self.vnets, sub, rg, "virtualNetworks", name)

    def put_rule(
        self, nsg: dict[str, Any], name: str, body: Mapping[str, Any]
    ) -> tuple[dict[str, Any], bool]:
        props = body.get("properties")
        if not isinstance(props, dict):
            raise ArmError(400, "InvalidRequestFormat", "Cannot parse the request: 'properties' is missing.")
        rule_props = {k: v for k, v in props.items() if k != "provisioningState"}
        checks = (("priority", int), ("direction", str), ("access", str), ("protocol", str))
        for key, kind in checks:
            if not isinstance(rule_props.get(key), kind) or isinstance(rule_props.get(key), bool):
                raise ArmError(
                    400,
                    "SecurityRuleInvalidParameter" if key != "priority" else "SecurityRuleInvalidPriority",
                    f"Security rule {name} has an invalid or missing '{key}'.",
                )
        if not 100 <= rule_props["priority"] <= 4096:
            raise ArmError(
                400,
                "SecurityRuleInvalidPriority",
                f"Security rule {name} has invalid Priority. Value provided: {rule_props['priority']}. "
                "Allowed range 100-4096.",
            )
        if rule_props["direction"] not in ("Inbound", "Outbound") or rule_props["access"] not in (
            "Allow",
            "Deny",
        ):
            raise ArmError(
                400,
                "SecurityRuleInvalidParameter",
                f"Security rule {name} has an invalid direction or access.",
            )
        rules: list[dict[str, Any]] = nsg["properties"]["securityRules"]
        for other in rules:
            same_slot = (
                other["properties"]["priority"] == rule_props["priority"]
                and other["properties"]["direction"] == rule_props["direction"]
            )
            if same_slot and other["name"].lower() != name.lower():
                raise ArmError(
                    400,
                    "SecurityRuleConflict",
                    f"Security rule {name} conflicts with rule {other['name']}. Rules cannot have the "
                    "same Priority and Direction.",
                )
        rule = self._rule_json(nsg["id"], {"name": name, **rule_props})
        created = True
        for index, other in enumerate(rules):
            if other["name"].lower() == name.lower():
                rules[index] = rule
                created = False
                break
        else:
            rules.append(rule)
        nsg["etag"] = f'W/"{int(nsg["etag"][3:-1]) + 1}"'
        return rule, created

    def put_nsg(self, sub: str, rg: str, name: str, body: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
        self.check_group(sub, rg)
        key = f"{rg_id(sub, rg)}/providers/{NETWORK}/networkSecurityGroups/{name}".lower()
        nsg = self.nsgs.get(key)
        created = nsg is None
        if nsg is None:
            location = body.get("location") or self.groups[(sub.lower(), rg.lower())][2]
            nsg = self._nsg_json(NsgSpec(sub, rg, name, str(location), ()))
            self.nsgs[key] = nsg
        props = body.get("properties") or {}
        if "securityRules" in props:
            previous = list(nsg["properties"]["securityRules"])
            nsg["properties"]["securityRules"] = []
            try:
                for rule in props.get("securityRules") or []:
                    if not isinstance(rule, dict) or not isinstance(rule.get("name"), str):
                        raise ArmError(400, "InvalidRequestFormat", "Each security rule needs a name.")
                    self.put_rule(nsg, rule["name"], rule)
            except ArmError:
                nsg["properties"]["securityRules"] = previous
                raise
        if isinstance(body.get("tags"), dict):
            nsg["tags"] = {str(k): str(v) for k, v in body["tags"].items()}
        return nsg, created


class _NeverRun:
    def poll(self, now: float) -> GuestOutput | None:
        return None

    def kill(self) -> None:
        return None


def _default_rules(nsg_id: str) -> list[dict[str, Any]]:
    rows = (
        (
            "AllowVnetInBound",
            65000,
            "Inbound",
            "Allow",
            "VirtualNetwork",
            "VirtualNetwork",
            "Allow inbound traffic from all VMs in VNET",
        ),
        (
            "AllowAzureLoadBalancerInBound",
            65001,
            "Inbound",
            "Allow",
            "AzureLoadBalancer",
            "*",
            "Allow inbound traffic from azure load balancer",
        ),
        ("DenyAllInBound", 65500, "Inbound", "Deny", "*", "*", "Deny all inbound traffic"),
        (
            "AllowVnetOutBound",
            65000,
            "Outbound",
            "Allow",
            "VirtualNetwork",
            "VirtualNetwork",
            "Allow outbound traffic from all VMs to all VMs in VNET",
        ),
        (
            "AllowInternetOutBound",
            65001,
            "Outbound",
            "Allow",
            "*",
            "Internet",
            "Allow outbound traffic from all VMs to Internet",
        ),
        ("DenyAllOutBound", 65500, "Outbound", "Deny", "*", "*", "Deny all outbound traffic"),
    )
    return [
        Fleet._rule_json(
            nsg_id,
            {
                "name": name,
                "priority": priority,
                "direction": direction,
                "access": access,
                "protocol": "*",
                "sourceAddressPrefix": source,
                "destinationAddressPrefix": dest,
                "sourcePortRange": "*",
                "destinationPortRange": "*",
                "description": text,
            },
            kind="defaultSecurityRules",
        )
        for name, priority, direction, access, source, dest, text in rows
    ]


_SCHEMA = "http://schema.management.azure.com/schemas/2016-11-17/runcommands.json"
BUILTIN_COMMANDS: tuple[dict[str, Any], ...] = (
    {
        "$schema": _SCHEMA,
        "id": "RunPowerShellScript",
        "osType": "Windows",
        "label": "Executes a PowerShell script",
        "description": "Custom multiline PowerShell script should be defined in script property. "
        "Optional parameters can be set in parameters property.",
        "script": [
            "param(",
            "    [string]$arg1,",
            "    [string]$arg2",
            ")",
            "Write-Host This is a sample script with parameters $arg1 $arg2",
        ],
        "parameters": [
            {"name": "arg1", "type": "string", "defaultValue": "value1"},
            {"name": "arg2", "type": "string", "defaultValue": "value2"},
        ],
    },
    {
        "$schema": _SCHEMA,
        "id": "RunShellScript",
        "osType": "Linux",
        "label": "Executes a Linux shell script",
        "description": "Custom multiline shell script should be defined in script property. "
        "Optional parameters can be set in parameters property.",
        "script": ["echo This is a sample script with parameters $1 $2"],
        "parameters": [
            {"name": "arg1", "type": "string", "defaultValue": "value1"},
            {"name": "arg2", "type": "string", "defaultValue": "value2"},
        ],
    },
    {
        "$schema": _SCHEMA,
        "id": "ifconfig",
        "osType": "Linux",
        "label": "List network configuration",
        "description": "Get the configuration of all network interfaces.",
        "script": ["ifconfig"],
        "parameters": [],
    },
    {
        "$schema": _SCHEMA,
        "id": "IPConfig",
        "osType": "Windows",
        "label": "List IP configuration",
        "description": "Shows detailed information for the IP address, subnet mask and default gateway "
        "for each adapter bound to TCP/IP.",
        "script": ["ipconfig /all"],
        "parameters": [],
    },
)
