"""``ports.Compute`` on ``azure-mgmt-compute``: VM facts and Run Command, managed or classic.

Managed mode (default) creates a run command resource named after the job, with ``asyncExecution`` and
``timeoutInSeconds``, and reads its instance view: a first dispatch costs one PUT; a step that may have sent
the PUT before (a worker that crashed after it) looks first and re-attaches to the same run instead of
running the script twice. ARM's answers are read by ``compute_read``.

Classic mode (``mode="action"``) uses ``virtual_machines.begin_run_command``. ARM treats it as one
synchronous operation, so ``start_run`` waits for it and returns the terminal status; ``get_run`` answers
from this process's memory and ``unknown`` in another process (classic mode cannot re-attach: it has no
resource to find again). A wrapper recovers the exit status and passes parameters as environment
variables; see ``wrappers.py``. Only the POST is ever retried, and only on answers that prove the script
did not start; once ARM took it, a failure while waiting is :class:`RunOutcomeUnknown`, never a re-POST.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from ..errors import (
    AgentNotReady,
    Busy,
    CloudError,
    InvalidInput,
    NotFound,
    OsMismatch,
    OutcomeUnknown,
    Throttled,
    VmNotRunning,
)
from ..ports import RunRequest, RunStatus, VmFacts
from ..resources import VmRef
from ..settings import Settings
from . import clients, compute_read, wrappers
from .calls import Retrier, map_error

_COMMAND_IDS = {"linux": "RunShellScript", "windows": "RunPowerShellScript"}


RunOutcomeUnknown = OutcomeUnknown  # the name the adapter's callers and tests know


# Operation failures that say the guest never got the script: known outcomes, kept as they are.
_NEVER_STARTED = (AgentNotReady, VmNotRunning, OsMismatch)


def _refused_before_start(error: CloudError) -> bool:
    """Answers to the POST that prove ARM did not take it: throttled, another run busy, 503."""
    return isinstance(error, Throttled | Busy) or error.status == 503


def vm_ref(vm_id: str) -> VmRef:
    ref = VmRef.parse(vm_id)
    if ref is None:
        raise InvalidInput(f"{vm_id!r} is not a virtual machine resource id")
    return ref


class AzureCompute:
    """``ports.Compute`` on the real ``ComputeManagementClient``.

    ``polling_interval`` is the action-mode LRO poll (never the SDK's 30 s default); ``retrier`` bounds
    retries of Transient and Throttled errors. ``client_for`` overrides client construction (tests).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        mode: str | None = None,
        polling_interval: float = 2.0,
        retrier: Retrier | None = None,
        client_for: Callable[[str], Any] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.mode = (mode or settings.run_command_mode).lower()
        if self.mode not in ("managed", "action"):
            raise InvalidInput(f"run command mode {self.mode!r} must be managed or action")
        self.polling_interval = polling_interval
        self.retrier = retrier or Retrier()
        self._client_for = client_for or (lambda sub: clients.compute_client(settings, sub))
        self._clock = clock
        self._lock = threading.Lock()
        # A VM's location never changes: remembering it spares a GET before each PUT.
        self._locations: dict[str, str] = {}
        self._action_results: dict[tuple[str, str], RunStatus] = {}

    def _now(self) -> str:
        return datetime.fromtimestamp(self._clock(), UTC).isoformat()

    # ---- VMs -----------------------------------------------------------------------------------

    def get_vm(self, vm_id: str) -> VmFacts:
        ref = vm_ref(vm_id)
        client = self._client_for(ref.subscription)
        what = f"read VM {ref.name}"

        def read() -> Any:
            # Raw (stream=True): the guard reads a few fields, and building the VM's model was most of
            # this read's cost.
            chunks = client.virtual_machines.get(
                ref.resource_group, ref.name, expand="instanceView", stream=True
            )
            return compute_read.raw_json(chunks, what)

        facts = compute_read.vm_facts(self.retrier.call(what, read))
        with self._lock:
            self._locations[ref.key] = facts.location
        return facts

    def list_vms(self, scope: str) -> list[VmFacts]:
        parts = [p for p in (scope or "").strip().strip("/").split("/") if p]
        is_sub = len(parts) == 2 and parts[0].lower() == "subscriptions"
        is_rg = (
            len(parts) == 4 and parts[0].lower() == "subscriptions" and parts[2].lower() == "resourcegroups"
        )
        if not (is_sub or is_rg):
            raise InvalidInput(
                f"scope {scope!r} must be /subscriptions/<id> or /subscriptions/<id>/resourceGroups/<rg>"
            )
        client = self._client_for(parts[1])

        # No $expand=instanceView: ARM documents it on these lists only with a $filter (a scale set's
        # VMs), and it triples what is sent and parsed. A VM's power state is read by its job's guard.
        def pages() -> list[Any]:
            if is_rg:
                return list(client.virtual_machines.list(parts[3]))
            return list(client.virtual_machines.list_all())

        facts = [compute_read.vm_facts(vm) for vm in self.retrier.call(f"list VMs in {scope}", pages)]
        with self._lock:
            for fact in facts:
                ref = VmRef.parse(fact.id)
                if ref is not None:
                    self._locations[ref.key] = fact.location
        return facts

    def _location(self, ref: VmRef) -> str:
        with self._lock:
            location = self._locations.get(ref.key)
        return location or self.get_vm(ref.id).location

    # ---- runs ----------------------------------------------------------------------------------

    def start_run(self, request: RunRequest) -> RunStatus:
        ref = vm_ref(request.vm_id)
        if request.os_type not in _COMMAND_IDS:
            raise InvalidInput(f"os type {request.os_type!r} must be linux or windows")
        if self.mode == "action":
            return self._start_action(ref, request)
        if request.may_exist:
            try:
                return self.get_run(request.vm_id, request.run_name)
            except NotFound:
                pass
        client = self._client_for(ref.subscription)
        properties: dict[str, Any] = {
            "source": {"script": request.script},
            "parameters": [{"name": k, "value": v} for k, v in request.parameters.items()],
            "asyncExecution": True,
            "timeoutInSeconds": int(request.timeout_seconds),
            "treatFailureAsDeploymentFailure": False,
        }
        if request.protected_parameters:
            properties["protectedParameters"] = [
                {"name": k, "value": v} for k, v in request.protected_parameters.items()
            ]
        body = {"location": request.location or self._location(ref), "properties": properties}

        def put() -> Any:
            # No poller: with asyncExecution the script starts on the PUT, and the run's own instance
            # view (read by get_run) is where its progress shows.
            return client.virtual_machine_run_commands.begin_create_or_update(
                ref.resource_group, ref.name, request.run_name, body, polling=False
            )

        self.retrier.call(f"start run command {request.run_name} on {ref.name}", put)
        return RunStatus(state="pending", started_at=self._now())

    def _start_action(self, ref: VmRef, request: RunRequest) -> RunStatus:
        if request.protected_parameters:
            raise InvalidInput("classic run command mode cannot keep parameters secret: use managed mode")
        if request.os_type == "linux":
            script = wrappers.linux_wrapper(request.script)
            parameters = wrappers.linux_arguments(request.parameters)
        else:
            script = wrappers.windows_wrapper(request.script, list(request.parameters))
            parameters = wrappers.windows_arguments(request.parameters)
        body = {
            "commandId": _COMMAND_IDS[request.os_type],
            "script": script.split("\n"),
            "parameters": parameters,
        }
        client = self._client_for(ref.subscription)
        started = self._now()

        what = f"run command on {ref.name}"
        poller = self._post_action(
            what,
            lambda: client.virtual_machines.begin_run_command(
                ref.resource_group, ref.name, body, polling_interval=self.polling_interval
            ),
        )
        try:
            result = poller.result()
        except Exception as exc:
            # Never retried: the POST was taken, so the script may be running; posting again could
            # apply a change twice.
            cause = map_error(exc, f"waiting for the {what}")
            if isinstance(cause, _NEVER_STARTED):
                raise cause from exc  # the operation ended saying the script could not start
            raise RunOutcomeUnknown(
                f"outcome unknown: ARM accepted the {what}, then waiting for its result failed ({cause}); "
                "the script may have run and is not sent again",
                status=getattr(cause, "status", None),
                code=getattr(cause, "code", None),
            ) from exc
        value = result.get("value") if isinstance(result, Mapping) else None
        status = compute_read.action_status(value if isinstance(value, list) else [])
        ended = self._now()
        status = replace(status, started_at=started, ended_at=ended)
        with self._lock:
            self._action_results[(ref.key, request.run_name.lower())] = status
        return status

    def _post_action(self, what: str, post: Callable[[], Any]) -> Any:
        """The classic POST, retried only while its answers prove the script did not start."""
        retrier = self.retrier
        attempt = 0
        while True:
            attempt += 1
            try:
                return post()
            except Exception as exc:
                error = map_error(exc, what)
                if not isinstance(error, CloudError) or not _refused_before_start(error):
                    raise error from exc
                if attempt >= retrier.attempts:
                    raise error from exc
                delay = min(retrier.max_delay, retrier.backoff * 2 ** (attempt - 1))
                if isinstance(error, Throttled):
                    delay = max(delay, min(retrier.max_delay, error.retry_after))
                retrier.sleep(delay)

    def get_run(self, vm_id: str, run_name: str) -> RunStatus:
        ref = vm_ref(vm_id)
        if self.mode == "action":
            with self._lock:
                known = self._action_results.get((ref.key, run_name.lower()))
            if known is not None:
                return known
            return RunStatus(
                state="unknown",
                detail="classic run command results are known only to the process that ran them",
            )
        client = self._client_for(ref.subscription)
        what = f"read run command {run_name} on {ref.name}"

        def read() -> Any:
            chunks = client.virtual_machine_run_commands.get_by_virtual_machine(
                ref.resource_group, ref.name, run_name, expand="instanceView", stream=True
            )
            return compute_read.raw_json(chunks, what)

        return compute_read.run_status(self.retrier.call(what, read))

    def cancel_run(self, vm_id: str, run_name: str) -> None:
        ref = vm_ref(vm_id)
        if self.mode == "action":
            # An action run command cannot be stopped through ARM; forget it so it is not reported twice.
            with self._lock:
                self._action_results.pop((ref.key, run_name.lower()), None)
            return
        client = self._client_for(ref.subscription)

        def delete() -> None:
            client.virtual_machine_run_commands.begin_delete(
                ref.resource_group, ref.name, run_name, polling_interval=self.polling_interval
            ).result()

        try:
            self.retrier.call(f"delete run command {run_name} on {ref.name}", delete)
        except NotFound:
            return
