"""Manual remediation requests -> Signal.

A manual request is explicit, so it is read strictly: unknown fields, targets that are not VM ids
and parameter values that are not plain strings, integers or booleans are errors, never guesses.
Parameter values become text in their JSON form ("20", "true") because that is how they reach the
script (environment variables, named script parameters) after the catalog has validated them.

::

    {"remediation": "free-disk-space",
     "targets": ["/subscriptions/../virtualMachines/vm1"],
     "parameters": {"mountPoint": "/var"},
     "reason": "disk full on /var", "dryRun": false,
     "requestId": "op-2024-0001", "requestedBy": "alice@contoso.com"}

``dryRun`` defaults to false. ``requestId`` is the idempotency key: without one, a new id is generated
(``req-`` and 20 hex digits), so the request runs once; a caller that wants a repeat to be a no-op
sends the id it was given back.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping

from ..errors import SignalError
from ..frozen import build
from ..resources import VmRef
from .model import ManualRequest, Signal
from .reader import Node, kind_of
from .refs import vm_id_of

REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
REMEDIATION_ID = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")  # as the catalog's schema
PARAMETER_NAME = re.compile(r"^[a-z][A-Za-z0-9]{0,39}$")  # as the catalog's schema
MAX_TEXT = 4096
FIELDS = (
    "remediation",
    "targets",
    "parameters",
    "reason",
    "dryRun",
    "requestId",
    "requestedBy",
    "requestedByName",
)
REQUIRED = ("remediation", "targets", "reason")


def new_request_id() -> str:
    return "req-" + uuid.uuid4().hex[:20]


def is_manual(payload: Mapping[str, object]) -> bool:
    return "remediation" in payload


def parse_manual(payload: Mapping[str, object]) -> Signal:
    """A manual request as a Signal; SignalError names the first thing wrong with it."""
    signal = _plain_request(payload) if type(payload) is dict else None
    return signal if signal is not None else _checked_request(payload)


def _plain_request(payload: dict[str, object]) -> Signal | None:
    """The Signal of a request with nothing wrong in it, read straight from the dict; None when anything
    is unusual (then :func:`_checked_request` reads it again and names what is wrong)."""
    for key in payload:
        if key not in FIELDS:
            return None
    remediation = _plain_text(payload.get("remediation"))
    reason = _plain_text(payload.get("reason"))
    if (
        remediation is None
        or reason is None
        or len(remediation) > 48
        or not REMEDIATION_ID.match(remediation)
    ):
        return None
    if "requestId" in payload:
        request_id = _plain_text(payload["requestId"])
        if request_id is None:
            return None
    else:
        request_id = new_request_id()
    if not REQUEST_ID.match(request_id):
        return None
    requested_by: str | None = "operator"
    if payload.get("requestedBy") is not None:
        requested_by = _plain_text(payload["requestedBy"])
    requested_by_name: str | None = ""
    if payload.get("requestedByName") is not None:
        requested_by_name = _plain_text(payload["requestedByName"])
    dry_run = payload.get("dryRun", False)
    if requested_by is None or requested_by_name is None or type(dry_run) is not bool:
        return None
    targets = _plain_targets(payload.get("targets"))
    parameters = _plain_parameters(payload.get("parameters"))
    if targets is None or parameters is None:
        return None
    request = {
        "remediation": remediation,
        "parameters": parameters,
        "reason": reason,
        "dry_run": dry_run,
        "request_id": request_id,
        "requested_by": requested_by,
        "requested_by_name": requested_by_name,
    }
    return _signal(build(ManualRequest, request), targets)


def _plain_text(value: object) -> str | None:
    """What :func:`_string` returns for a good value; None where it would complain."""
    if type(value) is not str:
        return None
    text = value.strip()
    if not text or len(text) > MAX_TEXT or not text.isprintable():
        return None
    return text


def _plain_targets(value: object) -> tuple[VmRef, ...] | None:
    values = [value] if type(value) is str else value
    if type(values) is not list or not values:
        return None
    targets: dict[str, VmRef] = {}
    for item in values:
        vm = vm_id_of(item) if type(item) is str else None
        if vm is None:
            return None
        targets.setdefault(vm.key, vm)
    return tuple(targets.values())


def _plain_parameters(values: object) -> dict[str, str] | None:
    if values is None:
        return {}
    if type(values) is not dict:
        return None
    result: dict[str, str] = {}
    for name, value in values.items():
        if type(name) is not str or not PARAMETER_NAME.match(name):
            return None
        if type(value) is str and len(value) <= MAX_TEXT:
            result[name] = value
        elif type(value) is bool:
            result[name] = "true" if value else "false"
        elif type(value) is int and abs(value) < 10**18:
            result[name] = str(value)
        else:
            return None
    return result


def _checked_request(payload: Mapping[str, object]) -> Signal:
    root = Node(payload, "", "manual")
    unknown = sorted(str(k) for k in payload if k not in FIELDS)
    if unknown:
        raise SignalError(f"manual: unknown field {unknown[0]!r} (expected {', '.join(FIELDS)})")
    for name in REQUIRED:
        if root[name].absent:
            raise root[name].error("is missing")

    remediation = _string(root["remediation"])
    if len(remediation) > 48 or not REMEDIATION_ID.match(remediation):
        raise root["remediation"].error(f"{remediation!r} is not a remediation id (like free-disk-space)")
    if "requestId" not in payload:
        request_id = new_request_id()
    elif root["requestId"].value is None:
        raise root["requestId"].error("is null: leave it out and one is generated")
    else:
        request_id = _string(root["requestId"])
    if not REQUEST_ID.match(request_id):
        raise root["requestId"].error(
            f"{request_id[:140]!r} must be 1-128 letters, digits or . _ : - (it is the idempotency key)"
        )
    reason = _string(root["reason"])
    requested_by = _string(root["requestedBy"]) if not root["requestedBy"].absent else "operator"
    requested_by_name = _string(root["requestedByName"]) if not root["requestedByName"].absent else ""
    dry_run = root["dryRun"].value if "dryRun" in payload else False
    if not isinstance(dry_run, bool):
        raise root["dryRun"].error(f"must be true or false, not {kind_of(dry_run)}")

    targets = _targets(root["targets"])
    return _signal(
        ManualRequest(
            remediation=remediation,
            parameters=_parameters(root["parameters"]),
            reason=reason,
            dry_run=dry_run,
            request_id=request_id,
            requested_by=requested_by,
            requested_by_name=requested_by_name,
        ),
        targets,
    )


def _signal(request: ManualRequest, targets: tuple[VmRef, ...]) -> Signal:
    """The signal of a manual request, however it was read."""
    return Signal.new(
        id=request.request_id,
        source="manual",
        type="manual",
        targets=targets,
        resources=tuple(t.id for t in targets),
        manual=request,
        description=request.reason,
    )


def _string(node: Node) -> str:
    """A non-empty string of printable text, at most MAX_TEXT characters."""
    if not isinstance(node.value, str):
        raise node.error(f"must be a string, not {kind_of(node.value)}")
    text = node.value.strip()
    if not text:
        raise node.error("is empty")
    if len(text) > MAX_TEXT:
        raise node.error(f"is longer than {MAX_TEXT} characters")
    if not text.isprintable():
        raise node.error("contains control characters")
    return text


def _targets(node: Node) -> tuple[VmRef, ...]:
    values = [node.value] if isinstance(node.value, str) else node.value
    if not isinstance(values, list | tuple):
        raise node.error(f"must be an array of VM resource ids, not {kind_of(node.value)}")
    if not values:
        raise node.error("is empty: name at least one VM resource id")
    targets: dict[str, VmRef] = {}
    for index, value in enumerate(values):
        vm = VmRef.parse(value) if isinstance(value, str) else None
        if vm is None:
            shown = repr(value[:300]) if isinstance(value, str) else kind_of(value)
            raise SignalError(
                f"manual: targets[{index}] {shown} is not a VM resource id "
                "(/subscriptions/<id>/resourceGroups/<group>/providers/Microsoft.Compute/virtualMachines/<name>)"
            )
        targets.setdefault(vm.key, vm)
    return tuple(targets.values())


def _parameters(node: Node) -> dict[str, str]:
    if node.absent:
        return {}
    values = node.value
    if not isinstance(values, Mapping):
        raise node.error(f"must be an object, not {kind_of(values)}")
    result: dict[str, str] = {}
    for name, value in values.items():
        if not isinstance(name, str) or not PARAMETER_NAME.match(name):
            raise node.error(f"name {str(name)[:60]!r} is not a parameter name (like mountPoint)")
        where = node[name]
        if isinstance(value, bool):
            result[name] = "true" if value else "false"
        elif isinstance(value, int):
            if abs(value) >= 10**18:
                raise where.error("is out of range")
            result[name] = str(value)
        elif isinstance(value, str):
            if len(value) > MAX_TEXT:
                raise where.error(f"is longer than {MAX_TEXT} characters")
            result[name] = value
        else:
            raise where.error(f"must be a string, an integer or a boolean, not {kind_of(value)}")
    return result
