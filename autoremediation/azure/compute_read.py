"""ARM's answers about a VM and its run commands, read into the app's ``VmFacts`` and ``RunStatus``.

Every reader takes the answer by ARM's own (REST) names, as a mapping: the JSON of a GET read raw
(``stream=True``: the guard's VM read and the run's poll skip building the SDK's models, most of their
cost), or a model of the SDK, whose generated models are mappings of the same names (a VM list). A part
of an answer the SDK left a plain dict (see ``modelrace``) reads the same. A value of the wrong shape
reads as absent: a VM without a readable power state is ``unknown`` and not dispatched to.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from .. import runresult
from ..errors import Transient
from ..ports import RunState, RunStatus, VmFacts
from ..provenance_record import parse_time

_EXECUTION_STATES: dict[str, RunState] = {
    "pending": "pending",
    "running": "running",
    "succeeded": "succeeded",
    "failed": "failed",
    "timedout": "timed-out",
    "canceled": "canceled",
    "unknown": "unknown",
}
_NOTHING: Mapping[str, Any] = {}


def raw_json(chunks: Iterable[bytes], what: str) -> Mapping[str, Any]:
    """The JSON object of a response read raw; a body that is not one is a transient fault of the read
    (tried again), never a VM or run with no facts."""
    try:
        body = json.loads(b"".join(chunks))
    except ValueError as error:
        raise Transient(f"{what}: ARM's answer is not JSON ({error})") from error
    if not isinstance(body, Mapping):
        raise Transient(f"{what}: ARM's answer is not a JSON object")
    return body


def _at(value: Any, *names: str) -> Any:
    """``value[names[0]][names[1]]...``; None as soon as a part is missing or not an object."""
    for name in names:
        if not isinstance(value, Mapping):
            return None
        value = value.get(name)
    return value


def _items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _text(value: Any) -> str:
    return "" if value is None else str(getattr(value, "value", value))


def _stamp(value: Any) -> str | None:
    """A time as ISO 8601 with its offset (ARM writes ``Z`` and up to seven fraction digits)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    parsed = parse_time(str(value))
    return parsed.isoformat() if parsed is not None else str(value)


def vm_facts(vm: Mapping[str, Any]) -> VmFacts:
    """VmFacts from a VM; its power state and agent status come from its instance view (read by
    ``get_vm`` with ``$expand=instanceView``; a list has none: ``unknown``, not ready)."""
    properties = _at(vm, "properties") or _NOTHING
    os_type = _text(_at(properties, "storageProfile", "osDisk", "osType")).lower()
    if os_type not in ("linux", "windows"):
        windows = _at(properties, "osProfile", "windowsConfiguration") is not None
        os_type = "windows" if windows else "linux"
    view = _at(properties, "instanceView")
    power = "unknown"
    for status in _items(_at(view, "statuses")):
        code = _text(_at(status, "code"))
        if code.lower().startswith("powerstate/"):
            power = code.split("/", 1)[1].lower()
    agent_ready = any(
        _text(_at(s, "displayStatus")).lower() == "ready" for s in _items(_at(view, "vmAgent", "statuses"))
    )
    interfaces = _items(_at(properties, "networkProfile", "networkInterfaces"))
    nics = tuple(str(_at(n, "id")) for n in interfaces if _at(n, "id"))
    tags = _at(vm, "tags")
    return VmFacts(
        id=_text(_at(vm, "id")),
        name=_text(_at(vm, "name")),
        location=_text(_at(vm, "location")),
        os_type=os_type,  # type: ignore[arg-type]  # narrowed just above
        power_state=power,
        agent_ready=agent_ready,
        tags=dict(tags) if isinstance(tags, Mapping) else {},
        nic_ids=nics,
    )


def run_status(rc: Mapping[str, Any]) -> RunStatus:
    """RunStatus from a managed run command read with ``$expand=instanceView``."""
    properties = _at(rc, "properties")
    view = _at(properties, "instanceView")
    provisioning = _text(_at(properties, "provisioningState")).lower()
    output = runresult.tail(_text(_at(view, "output")))
    error = runresult.tail(_text(_at(view, "error")))
    messages = [_text(_at(s, "message")) for s in _items(_at(view, "statuses")) if _at(s, "message")]
    detail = "; ".join([m for m in [_text(_at(view, "executionMessage")), *messages] if m])
    raw_state = _text(_at(view, "executionState")).lower()
    state: RunState = _EXECUTION_STATES.get(raw_state, "unknown")
    if provisioning == "failed":
        state = "failed"
        detail = detail or "the run command could not be provisioned"
    elif not isinstance(view, Mapping) or raw_state in ("", "unknown"):
        state = "pending"
    exit_code = _at(view, "exitCode")
    # Only a script that ran to its end has an exit code; ARM reports 0 for a timed-out or canceled one.
    finished = state in ("succeeded", "failed") and provisioning != "failed"
    return RunStatus(
        state=state,
        exit_code=int(exit_code) if exit_code is not None and finished else None,
        output=output,
        error=error,
        started_at=_stamp(_at(view, "startTime")),
        ended_at=_stamp(_at(view, "endTime")),
        result=runresult.parse_result(output),
        detail=detail,
    )


def action_status(value: list[Any]) -> RunStatus:
    """RunStatus from an action run command's ``value`` list (either OS), via the wrapper's exit marker."""
    statuses = [{"code": _text(_at(s, "code")), "message": _text(_at(s, "message"))} for s in value]
    stdout, stderr = runresult.outputs_from_statuses(statuses)
    stderr, exit_code = runresult.pop_exit_marker(stderr)
    result = runresult.parse_result(stdout)
    detail = ""
    if exit_code is None:
        detail = "the script's exit status was not reported"
        ok = result is not None and result.get("status") in ("fixed", "already-ok")
        state: RunState = "succeeded" if ok else "failed"
    else:
        state = "succeeded" if exit_code == 0 else "failed"
    return RunStatus(
        state=state,
        exit_code=exit_code,
        output=runresult.tail(stdout),
        error=runresult.tail(stderr),
        result=result,
        detail=detail,
    )
