"""The emulated compute side: VMs, their run commands and ARM's async operations, in ARM's JSON shapes.

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
from pathlib import Path
from typing import Any

from autoremediation import runresult

from .alerting import AlertingState, wall_offset
from .arm import COMPUTE, NETWORK, ArmError, Scope, guid, iso, rg_id
from .builtin import BUILTIN_COMMANDS
from .fleetfile import FleetSpec, VmSpec
from .guest import Convergence, GuestOutput, GuestRun, SandboxPool, SandboxRun, start_run
from .netstate import NetworkResources

RUN_COMMAND_IDS = {"linux": "RunShellScript", "windows": "RunPowerShellScript"}


class FleetClock:
    """Wall time plus an offset the admin API can advance, so tests never sleep for a run to end."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


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
        self.ended = min(output.ended_at, now) if output.ended_at is not None else now
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
    # Managed run commands deleted since (the app deletes each once its result is read): kept for tests
    # that measure what ran when.
    deleted: list[Run] = field(default_factory=list)
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
        self.clock.offset = wall_offset(spec.now)
        self.alerting = AlertingState(spec.alert_rules, spec.alerts)
        self.sandboxes = SandboxPool(workdir / "sandboxes", enabled=sandbox)
        self.scope = Scope(spec)
        self.vms: dict[str, Vm] = {}
        for vm_spec in spec.vms:
            vm = Vm(vm_spec, vm_spec.power_state, vm_spec.agent_status, dict(vm_spec.tags))
            self.vms[vm.id.lower()] = vm
        self.network = NetworkResources(spec, self.scope)
        self.operations: dict[str, Operation] = {}

    # ---- lookups -------------------------------------------------------------------------------

    def vm(self, sub: str, rg: str, name: str) -> Vm:
        self.scope.check_group(sub, rg)
        key = f"{rg_id(sub, rg)}/providers/{COMPUTE}/virtualMachines/{name}".lower()
        vm = self.vms.get(key)
        if vm is None:
            raise ArmError(
                404,
                "ResourceNotFound",
                f"The Resource '{COMPUTE}/virtualMachines/{name}' under resource group '{rg}' was not found.",
            )
        return vm

    def nsg(self, sub: str, rg: str, name: str) -> dict[str, Any]:
        """An NSG as ARM returns it (inspection; the network lives in ``self.network``)."""
        return self.network.nsg(sub, rg, name)

    def nic(self, sub: str, rg: str, name: str) -> dict[str, Any]:
        return self.network.nic(sub, rg, name)

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
            "vmId": guid(vm.id),
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
        self.scope.check_subscription(sub)
        if rg is not None:
            self.scope.check_group(sub, rg)
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
        vm.deleted.append(run)
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
                "output": runresult.tail(out.stdout) if out else "",
                "error": runresult.tail(out.stderr) if out else "",
                "startTime": iso(run.started),
                "statuses": [],
            }
            if out is not None and out.exit_code is not None:
                view["exitCode"] = out.exit_code
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


class _NeverRun:
    def poll(self, now: float) -> GuestOutput | None:
        return None

    def kill(self) -> None:
        return None
