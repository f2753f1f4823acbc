"""The ARM routes the emulator serves: one handler per operation, each answering in ARM's shapes.

Handlers run under the fleet lock and return a :class:`Reply`; ARM errors are raised as ``ArmError``.
Whatever api-version the client sends is accepted.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from .builtin import BUILTIN_COMMANDS
from .guest import GuestOutput
from .state import Fleet, Operation

_SEG = r"([^/]+)"
_SUB = rf"/subscriptions/{_SEG}"
_RG = rf"{_SUB}/resourceGroups/{_SEG}"
_VM = rf"{_RG}/providers/Microsoft\.Compute/virtualMachines/{_SEG}"
_NET = rf"{_RG}/providers/Microsoft\.Network"
_LOC = rf"{_SUB}/providers/Microsoft\.Compute/locations/{_SEG}"
PAGE_SIZE = 100


@dataclass
class Reply:
    status: int
    body: Any = None
    headers: Mapping[str, str] | None = None


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    base_url: str
    stuck: bool


def error(status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> Reply:
    return Reply(status, {"error": {"code": code, "message": message}}, headers)


def _page(items: list[dict[str, Any]], req: Request) -> Reply:
    try:
        skip = max(0, int(req.query.get("$skiptoken", "0")))
    except ValueError:
        skip = 0
    body: dict[str, Any] = {"value": items[skip : skip + PAGE_SIZE]}
    if skip + PAGE_SIZE < len(items):
        # The next page is asked as this one was (ARM's nextLink carries the query), but from further on.
        carried = "".join(
            f"&{name}={quote(req.query[name], safe='/')}"
            for name in ("$expand", "$filter", "statusOnly")
            if req.query.get(name)
        )
        version = req.query.get("api-version", "")
        body["nextLink"] = (
            f"{req.base_url}{req.path}?api-version={version}{carried}&$skiptoken={skip + PAGE_SIZE}"
        )
    return Reply(200, body)


def _expand(req: Request) -> bool:
    return req.query.get("$expand", "").lower() == "instanceview" or req.query.get("statusOnly", "") == "true"


def _list_refusal(req: Request) -> Reply | None:
    """The VM lists take ``$expand=instanceView`` only with a ``$filter`` (the scale set's VMs), as the
    Compute REST reference says; the whole subscription's run time status is ``statusOnly=true``."""
    if req.query.get("$expand", "").lower() == "instanceview" and not req.query.get("$filter"):
        return error(
            400,
            "InvalidParameter",
            "The $expand=instanceView option can only be specified with a valid $filter option.",
        )
    return None


def _list_vms_sub(fleet: Fleet, req: Request, g: tuple[str, ...]) -> Reply:
    refused = _list_refusal(req)
    if refused is not None:
        return refused
    vms = fleet.list_vms(g[0], None)
    return _page([fleet.vm_json(vm, instance_view=_expand(req)) for vm in vms], req)


def _list_vms_rg(fleet: Fleet, req: Request, g: tuple[str, ...]) -> Reply:
    refused = _list_refusal(req)
    if refused is not None:
        return refused
    vms = fleet.list_vms(g[0], g[1])
    return _page([fleet.vm_json(vm, instance_view=_expand(req)) for vm in vms], req)


def _get_vm(fleet: Fleet, req: Request, g: tuple[str, ...]) -> Reply:
    return Reply(200, fleet.vm_json(fleet.vm(*g), instance_view=_expand(req)))


def _instance_view(fleet: Fleet, req: Request, g: tuple[str, ...]) -> Reply:
    return Reply(200, fleet.instance_view_json(fleet.vm(*g)))


def _operation_urls(req: Request, op: Operation) -> dict[str, str]:
    version = req.query.get("api-version", "")
    base = f"{req.base_url}/subscriptions/{op.subscription}/providers/{op.provider}/locations/{op.location}"
    return {
        "Azure-AsyncOperation": f"{base}/operations/{op.id}?api-version={version}",
        "Location": f"{base}/operations/{op.id}?monitor=true&api-version={version}",
    }


def _stick(op: Operation) -> None:
    if op.run is not None:
        op.run.guest = _Stuck()


def _run_command(fleet: Fleet, req: Request, g: tuple[str, ...]) -> Reply:
    if not isinstance(req.body, dict):
        return error(
            400, "InvalidRequestContent", "The request content was invalid and could not be deserialized."
        )
    op = fleet.action_run(fleet.vm(*g), req.body)
    if req.stuck:
        _stick(op)
    return Reply(202, None, _operation_urls(req, op))


def _network_operation_status(fleet: Fleet, req: Request, g: tuple[str, ...]) -> Reply:
    op, status = fleet.operation_status(g[0], g[2], provider="Microsoft.Network")
    return Reply(200, fleet.operation_json(op, status))


def _operation(fleet: Fleet, req: Request, g: tuple[str, ...]) -> Reply:
    op, status = fleet.operation_status(g[0], g[2])
    if req.query.get("monitor", "").lower() != "true":
        return Reply(200, fleet.operation_json(op, status))
    # The Location URL: 202 while running, then the operation's result.
    if status == "InProgress":
        return Reply(
            202,
            None,
            {
                "Location": f"{req.base_url}{req.path}?monitor=true&api-version="
                f"{req.query.get('api-version', '')}"
            },
        )
    if status == "Failed":
        code, message = op.failure or ("InternalExecutionError", "The operation failed.")
        return error(409 if code == "VMAgentStatusCommunicationError" else 500, code, message)
    if op.run is not None and op.run.kind == "action":
        return Reply(200, fleet.action_result(op))
    return Reply(204)


def _get_managed(fleet: Fleet, req: Request, g: tuple[str, ...]) -> Reply:
    vm = fleet.vm(*g[:3])
    return Reply(200, fleet.managed_json(vm, fleet.managed(vm, g[3]), instance_view=_expand(req)))


def _put_managed(fleet: Fleet, req: Request, g: tuple[str, ...]) -> Reply:
    if not isinstance(req.body, dict):
        return error(
            400, "InvalidRequestContent", "The request content was invalid and could not be deserialized."
        )
    vm = fleet.vm(*g[:3])
    run, created, op = fleet.put_managed(vm, g[3], req.body)
    if req.stuck and run.ended is None:
        run.guest = _Stuck()
    body = fleet.managed_json(vm, run, instance_view=False)
    body["properties"]["provisioningState"] = "Creating" if created else "Updating"
    urls = _operation_urls(req, op)
    return Reply(201 if created else 200, body, {"Azure-AsyncOperation": urls["Azure-AsyncOperation"]})


def _delete_managed(fleet: Fleet, req: Request, g: tuple[str, ...]) -> Reply:
    vm = fleet.vm(*g[:3])
    return Reply(200 if fleet.delete_managed(vm, g[3]) else 204)


def _list_managed(fleet: Fleet, req: Request, g: tuple[str, ...]) -> Reply:
    vm = fleet.vm(*g)
    runs = [fleet.managed(vm, name) for name in list(vm.managed)]
    return Reply(200, {"value": [fleet.managed_json(vm, run, instance_view=_expand(req)) for run in runs]})


def _builtin_list(fleet: Fleet, req: Request, g: tuple[str, ...]) -> Reply:
    fleet.scope.check_subscription(g[0])
    keys = ("$schema", "id", "osType", "label", "description")
    return Reply(200, {"value": [{k: c[k] for k in keys} for c in BUILTIN_COMMANDS]})


def _builtin_get(fleet: Fleet, req: Request, g: tuple[str, ...]) -> Reply:
    fleet.scope.check_subscription(g[0])
    for command in BUILTIN_COMMANDS:
        if command["id"].lower() == g[2].lower():
            return Reply(200, dict(command))
    return error(404, "NotFound", f"The entity was not found. Run command '{g[2]}' not found.")


def _get_nsg(fleet: Fleet, req: Request, g: tuple[str, ...]) -> Reply:
    return Reply(200, fleet.network.nsg(*g))


def _put_nsg(fleet: Fleet, req: Request, g: tuple[str, ...]) -> Reply:
    if not isinstance(req.body, dict):
        return error(400, "InvalidRequestFormat", "Cannot parse the request.")
    nsg, created = fleet.network.put_nsg(g[0], g[1], g[2], req.body)
    return Reply(201 if created else 200, nsg, _network_operation(fleet, req, nsg))


def _get_rule(fleet: Fleet, req: Request, g: tuple[str, ...]) -> Reply:
    nsg = fleet.network.nsg(*g[:3])
    for rule in nsg["properties"]["securityRules"]:
        if rule["name"].lower() == g[3].lower():
            return Reply(200, rule)
    return error(404, "NotFound", f"Resource {nsg['id']}/securityRules/{g[3]} not found.")


def _list_rules(fleet: Fleet, req: Request, g: tuple[str, ...]) -> Reply:
    return Reply(200, {"value": fleet.network.nsg(*g)["properties"]["securityRules"]})


def _put_rule(fleet: Fleet, req: Request, g: tuple[str, ...]) -> Reply:
    if not isinstance(req.body, dict):
        return error(400, "InvalidRequestFormat", "Cannot parse the request.")
    nsg = fleet.network.nsg(*g[:3])
    rule, created = fleet.network.put_rule(nsg, g[3], req.body)
    return Reply(201 if created else 200, rule, _network_operation(fleet, req, nsg))


def _network_operation(fleet: Fleet, req: Request, nsg: dict[str, Any]) -> dict[str, str]:
    """Network writes answer with an async operation, as in Azure, so clients poll and then re-read."""
    subscription = nsg["id"].split("/")[2]
    op = fleet.new_operation(subscription, nsg["location"], provider="Microsoft.Network")
    return {"Azure-AsyncOperation": _operation_urls(req, op)["Azure-AsyncOperation"]}


def _delete_rule(fleet: Fleet, req: Request, g: tuple[str, ...]) -> Reply:
    nsg = fleet.network.nsg(*g[:3])
    rules = nsg["properties"]["securityRules"]
    kept = [r for r in rules if r["name"].lower() != g[3].lower()]
    nsg["properties"]["securityRules"] = kept
    return Reply(200 if len(kept) < len(rules) else 204)


def _get_nic(fleet: Fleet, req: Request, g: tuple[str, ...]) -> Reply:
    return Reply(200, fleet.network.nic(*g))


def _get_vnet(fleet: Fleet, req: Request, g: tuple[str, ...]) -> Reply:
    return Reply(200, fleet.network.vnet(*g))


def _get_subnet(fleet: Fleet, req: Request, g: tuple[str, ...]) -> Reply:
    vnet = fleet.network.vnet(*g[:3])
    return Reply(200, fleet.network.find_subnet(f"{vnet['id']}/subnets/{g[3]}"))


def _get_alert(fleet: Fleet, req: Request, g: tuple[str, ...]) -> Reply:
    fleet.scope.check_subscription(g[0])
    return Reply(200, fleet.alerting.alert_json(g[0], g[1]))


def _change_alert_state(fleet: Fleet, req: Request, g: tuple[str, ...]) -> Reply:
    fleet.scope.check_subscription(g[0])
    comment = req.body.get("comments") if isinstance(req.body, dict) else None
    return Reply(200, fleet.alerting.change_state(g[0], g[1], req.query.get("newState", ""), comment))


def _get_alert_rule(fleet: Fleet, req: Request, g: tuple[str, ...]) -> Reply:
    fleet.scope.check_group(g[0], g[1])
    return Reply(200, fleet.alerting.rule_json(*g))


class _Stuck:
    """A guest run that never ends (the "stuck" fault); only a kill ends it."""

    def __init__(self) -> None:
        self.killed = False

    def poll(self, now: float) -> GuestOutput | None:
        return GuestOutput(None, "", "", killed=True) if self.killed else None

    def kill(self) -> None:
        self.killed = True


def _route(
    method: str, pattern: str, handler: Callable[[Fleet, Request, tuple[str, ...]], Reply]
) -> tuple[str, re.Pattern[str], Callable[[Fleet, Request, tuple[str, ...]], Reply]]:
    return method, re.compile(f"^{pattern}$", re.IGNORECASE), handler


ROUTES = (
    _route("GET", rf"{_SUB}/providers/Microsoft\.Compute/virtualMachines", _list_vms_sub),
    _route("GET", rf"{_RG}/providers/Microsoft\.Compute/virtualMachines", _list_vms_rg),
    _route("GET", _VM, _get_vm),
    _route("GET", rf"{_VM}/instanceView", _instance_view),
    _route("POST", rf"{_VM}/runCommand", _run_command),
    _route("GET", rf"{_VM}/runCommands", _list_managed),
    _route("GET", rf"{_VM}/runCommands/{_SEG}", _get_managed),
    _route("PUT", rf"{_VM}/runCommands/{_SEG}", _put_managed),
    _route("DELETE", rf"{_VM}/runCommands/{_SEG}", _delete_managed),
    _route("GET", rf"{_LOC}/runCommands", _builtin_list),
    _route("GET", rf"{_LOC}/runCommands/{_SEG}", _builtin_get),
    _route("GET", rf"{_LOC}/operations/{_SEG}", _operation),
    _route(
        "GET",
        rf"{_SUB}/providers/Microsoft\.Network/locations/{_SEG}/operations/{_SEG}",
        _network_operation_status,
    ),
    _route("GET", rf"{_NET}/networkSecurityGroups/{_SEG}", _get_nsg),
    _route("PUT", rf"{_NET}/networkSecurityGroups/{_SEG}", _put_nsg),
    _route("GET", rf"{_NET}/networkSecurityGroups/{_SEG}/securityRules", _list_rules),
    _route("GET", rf"{_NET}/networkSecurityGroups/{_SEG}/securityRules/{_SEG}", _get_rule),
    _route("PUT", rf"{_NET}/networkSecurityGroups/{_SEG}/securityRules/{_SEG}", _put_rule),
    _route("DELETE", rf"{_NET}/networkSecurityGroups/{_SEG}/securityRules/{_SEG}", _delete_rule),
    _route("GET", rf"{_NET}/networkInterfaces/{_SEG}", _get_nic),
    _route("GET", rf"{_NET}/virtualNetworks/{_SEG}", _get_vnet),
    _route("GET", rf"{_NET}/virtualNetworks/{_SEG}/subnets/{_SEG}", _get_subnet),
    _route("GET", rf"{_SUB}/providers/Microsoft\.AlertsManagement/alerts/{_SEG}", _get_alert),
    _route(
        "POST",
        rf"{_SUB}/providers/Microsoft\.AlertsManagement/alerts/{_SEG}/changestate",
        _change_alert_state,
    ),
    _route(
        "GET",
        rf"{_RG}/providers/Microsoft\.Insights/(scheduledQueryRules|metricAlerts|activityLogAlerts)/{_SEG}",
        _get_alert_rule,
    ),
)


def dispatch(fleet: Fleet, base_url: str, method: str, raw_path: str, body: Any, stuck: bool) -> Reply:
    """Answer one ARM request; ``stuck`` makes a run it starts never end (the "stuck" fault)."""
    split = urlsplit(raw_path)
    query = {k: v[-1] for k, v in parse_qs(split.query).items()}
    request = Request(method, split.path.rstrip("/") or "/", query, body, base_url, stuck)
    for route_method, pattern, handler in ROUTES:
        if route_method != method:
            continue
        match = pattern.match(request.path)
        if match:
            with fleet.lock:
                return handler(fleet, request, match.groups())
    if any(p.match(request.path) for _, p, _ in ROUTES):
        return error(
            405, "MethodNotAllowed", f"The requested resource does not support http method '{method}'."
        )
    return error(
        404, "InvalidResourceType", f"The resource path '{request.path}' is not served by this fleet."
    )
