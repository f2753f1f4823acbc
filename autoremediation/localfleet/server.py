"""The local ARM emulator: HTTPS on loopback, the Compute and Network routes the app calls, an admin API.

``FleetServer`` runs in-process (tests, the demo); ``run_server`` runs it in the foreground for
``remediate fleet serve``. The server keeps the SDK honest: TLS with a locally generated CA (so bearer-token
auth stays on), a bearer token required on every ARM route, and whatever api-version the client sends.

Admin API (Python and HTTP under ``/_admin``): the call log, fault injection, the fleet clock, VM state.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import logging
import re
import shutil
import signal
import ssl
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ..errors import InvalidInput
from .faults import FaultTable
from .fleetfile import FaultSpec, FleetSpec, load_fleet, parse_fault
from .guest import GuestOutput
from .state import BUILTIN_COMMANDS, ArmError, Fleet, Operation, Vm, iso

log = logging.getLogger(__name__)

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


Handler = Callable[["_Request", tuple[str, ...]], Reply]


@dataclass
class _Request:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    base_url: str
    stuck: bool


class FleetServer:
    """The emulator, serving on 127.0.0.1 in a background thread until ``stop()`` (or the ``with`` ends)."""

    def __init__(
        self,
        fleet: FleetSpec | str | Path | None = None,
        *,
        port: int = 0,
        sandbox: bool | None = None,
        workdir: Path | None = None,
    ) -> None:
        spec = fleet if isinstance(fleet, FleetSpec) else load_fleet(fleet)
        self._own_workdir = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix="localfleet-")) if workdir is None else workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.fleet = Fleet(spec, self.workdir, sandbox=sandbox)
        self.faults = FaultTable()
        for fault in spec.faults:
            self.faults.inject(fault)
        self.calls: list[tuple[str, str]] = []
        self._calls_lock = threading.Lock()
        self.ca_bundle = str(self.workdir / "ca.pem")
        context = _tls_context(self.ca_bundle)
        try:
            self._httpd = _Server(("127.0.0.1", port), _Handler, self, context)
        except OSError as exc:
            if self._own_workdir:
                shutil.rmtree(self.workdir, ignore_errors=True)
            raise InvalidInput(f"cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}") from None
        self.port = self._httpd.server_address[1]
        self.base_url = f"https://127.0.0.1:{self.port}"
        self.subscription = spec.subscription
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="localfleet", daemon=True
        )
        self._thread.start()
        self._stopped = False

    def __enter__(self) -> FleetServer:
        return self

    def __exit__(self, *args: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)
        with self.fleet.lock:
            for vm in self.fleet.vms.values():
                for run in [vm.action, *vm.managed.values()]:
                    if run is not None and run.ended is None:
                        run.guest.kill()
        self.fleet.sandboxes.close()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # ---- admin API -----------------------------------------------------------------------------

    def inject(
        self, route: str, fault: FaultSpec | str | Mapping[str, Any] = "error", **options: Any
    ) -> None:
        """Inject a fault on calls matching ``route`` ("POST */runCommand", "*/networkSecurityGroups/*").

        ``fault`` is a FaultSpec, a kind ("latency", "throttle", "error", "drop", "stuck") with options in
        the fleet file's spelling (``status``, ``retryAfter``, ``delaySeconds``, ``times``), or a mapping.
        """
        if isinstance(fault, FaultSpec):
            self.faults.inject(fault)
            return
        data = dict(fault) if isinstance(fault, Mapping) else {"kind": fault}
        data.update(options)
        data["route"] = route
        self.faults.inject(parse_fault(data))

    def clear_faults(self) -> None:
        self.faults.clear()

    def calls_matching(self, method: str, pattern: str = "*") -> list[str]:
        """Paths of logged calls with this method whose path matches a case-insensitive regex or glob."""
        with self._calls_lock:
            calls = list(self.calls)
        return [
            p for m, p in calls if m == method.upper() and fnmatch.fnmatchcase(p.lower(), pattern.lower())
        ]

    def reset_calls(self) -> None:
        with self._calls_lock:
            self.calls.clear()

    def advance(self, seconds: float) -> None:
        """Move the fleet clock forward: declared runs and timeouts see the time pass."""
        with self.fleet.lock:
            self.fleet.clock.advance(seconds)

    def vm(self, name: str, resource_group: str | None = None) -> Vm:
        with self.fleet.lock:
            for vm in self.fleet.vms.values():
                if vm.spec.name.lower() == name.lower() and (
                    resource_group is None or vm.spec.resource_group.lower() == resource_group.lower()
                ):
                    return vm
        raise KeyError(name)

    def vm_id(self, name: str) -> str:
        return self.vm(name).id

    def set_vm(self, name: str, *, power_state: str | None = None, agent_status: str | None = None) -> None:
        vm = self.vm(name)
        with self.fleet.lock:
            if power_state is not None:
                vm.power_state = power_state
            if agent_status is not None:
                vm.agent_status = agent_status

    def runs_started(self, name: str) -> int:
        """How many scripts the VM has started, over both run command kinds."""
        return self.vm(name).runs_started

    def _log(self, method: str, path: str) -> None:
        with self._calls_lock:
            self.calls.append((method, path))

    # ---- routing -------------------------------------------------------------------------------

    def handle(self, method: str, raw_path: str, body: Any, stuck: bool) -> Reply:
        split = urlsplit(raw_path)
        query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        request = _Request(method, split.path.rstrip("/") or "/", query, body, self.base_url, stuck)
        for route_method, pattern, handler in _ROUTES:
            if route_method != method:
                continue
            match = pattern.match(request.path)
            if match:
                with self.fleet.lock:
                    return handler(self, request, match.groups())
        allowed = [m for m, p, _ in _ROUTES if p.match(request.path)]
        if allowed:
            return _error(
                405, "MethodNotAllowed", f"The requested resource does not support http method '{method}'."
            )
        return _error(
            404, "InvalidResourceType", f"The resource path '{request.path}' is not served by this fleet."
        )

    def admin(self, method: str, raw_path: str, body: Any) -> Reply:
        path = urlsplit(raw_path).path.rstrip("/")
        if path == "/_admin/calls" and method == "GET":
            with self._calls_lock:
                return Reply(200, {"calls": [{"method": m, "path": p} for m, p in self.calls]})
        if path == "/_admin/calls" and method == "DELETE":
            self.reset_calls()
            return Reply(204)
        if path == "/_admin/faults" and method == "GET":
            return Reply(200, {"faults": self.faults.describe()})
        if path == "/_admin/faults" and method == "POST":
            if not isinstance(body, dict):
                return _error(
                    400, "InvalidFault", "POST a JSON object: {route, kind, status, retryAfter, times}"
                )
            self.faults.inject(parse_fault(body))
            return Reply(201, {"faults": self.faults.describe()})
        if path == "/_admin/faults" and method == "DELETE":
            self.clear_faults()
            return Reply(204)
        if path == "/_admin/clock" and method == "POST":
            seconds = body.get("advanceSeconds") if isinstance(body, dict) else None
            if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
                return _error(400, "InvalidClock", 'POST {"advanceSeconds": N} with N >= 0')
            self.advance(float(seconds))
            return Reply(200, {"now": iso(self.fleet.clock.now())})
        match = re.fullmatch(r"/_admin/vms/([^/]+)", path)
        if match:
            try:
                vm = self.vm(match[1])
            except KeyError:
                return _error(404, "NotFound", f"no fleet VM named {match[1]!r}")
            if method == "PATCH" and isinstance(body, dict):
                self.set_vm(
                    vm.spec.name, power_state=body.get("powerState"), agent_status=body.get("agentStatus")
                )
            return Reply(
                200,
                {
                    "id": vm.id,
                    "powerState": vm.power_state,
                    "agentStatus": vm.agent_status,
                    "runsStarted": vm.runs_started,
                },
            )
        return _error(404, "NotFound", f"no admin route {method} {path}")


# ---- route handlers ----------------------------------------------------------------------------------


def _error(status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> Reply:
    return Reply(status, {"error": {"code": code, "message": message}}, headers)


def _page(items: list[dict[str, Any]], req: _Request) -> Reply:
    try:
        skip = max(0, int(req.query.get("$skiptoken", "0")))
    except ValueError:
        skip = 0
    body: dict[str, Any] = {"value": items[skip : skip + PAGE_SIZE]}
    if skip + PAGE_SIZE < len(items):
        version = req.query.get("api-version", "")
        expand = "&$expand=instanceView" if req.query.get("$expand", "").lower() == "instanceview" else ""
        body["nextLink"] = (
            f"{req.base_url}{req.path}?api-version={version}{expand}&$skiptoken={skip + PAGE_SIZE}"
        )
    return Reply(200, body)


def _expand(req: _Request) -> bool:
    return req.query.get("$expand", "").lower() == "instanceview" or req.query.get("statusOnly", "") == "true"


def _list_vms_sub(srv: FleetServer, req: _Request, g: tuple[str, ...]) -> Reply:
    vms = srv.fleet.list_vms(g[0], None)
    return _page([srv.fleet.vm_json(vm, instance_view=_expand(req)) for vm in vms], req)


def _list_vms_rg(srv: FleetServer, req: _Request, g: tuple[str, ...]) -> Reply:
    vms = srv.fleet.list_vms(g[0], g[1])
    return _page([srv.fleet.vm_json(vm, instance_view=_expand(req)) for vm in vms], req)


def _get_vm(srv: FleetServer, req: _Request, g: tuple[str, ...]) -> Reply:
    return Reply(200, srv.fleet.vm_json(srv.fleet.vm(*g), instance_view=_expand(req)))


def _instance_view(srv: FleetServer, req: _Request, g: tuple[str, ...]) -> Reply:
    return Reply(200, srv.fleet.instance_view_json(srv.fleet.vm(*g)))


def _operation_urls(req: _Request, op: Operation) -> dict[str, str]:
    version = req.query.get("api-version", "")
    base = f"{req.base_url}/subscriptions/{op.subscription}/providers/{op.provider}/locations/{op.location}"
    return {
        "Azure-AsyncOperation": f"{base}/operations/{op.id}?api-version={version}",
        "Location": f"{base}/operations/{op.id}?monitor=true&api-version={version}",
    }


def _stick(op: Operation) -> None:
    if op.run is not None:
        op.run.guest = _Stuck()


def _run_command(srv: FleetServer, req: _Request, g: tuple[str, ...]) -> Reply:
    if not isinstance(req.body, dict):
        return _error(
            400, "InvalidRequestContent", "The request content was invalid and could not be deserialized."
        )
    op = srv.fleet.action_run(srv.fleet.vm(*g), req.body)
    if req.stuck:
        _stick(op)
    return Reply(202, None, _operation_urls(req, op))


def _network_operation_status(srv: FleetServer, req: _Request, g: tuple[str, ...]) -> Reply:
    op, status = srv.fleet.operation_status(g[0], g[2], provider="Microsoft.Network")
    return Reply(200, srv.fleet.operation_json(op, status))


def _operation(srv: FleetServer, req: _Request, g: tuple[str, ...]) -> Reply:
    op, status = srv.fleet.operation_status(g[0], g[2])
    if req.query.get("monitor", "").lower() != "true":
        return Reply(200, srv.fleet.operation_json(op, status))
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
        return _error(409 if code == "VMAgentStatusCommunicationError" else 500, code, message)
    if op.run is not None and op.run.kind == "action":
        return Reply(200, srv.fleet.action_result(op))
    return Reply(204)


def _get_managed(srv: FleetServer, req: _Request, g: tuple[str, ...]) -> Reply:
    vm = srv.fleet.vm(*g[:3])
    return Reply(200, srv.fleet.managed_json(vm, srv.fleet.managed(vm, g[3]), instance_view=_expand(req)))


def _put_managed(srv: FleetServer, req: _Request, g: tuple[str, ...]) -> Reply:
    if not isinstance(req.body, dict):
        return _error(
            400, "InvalidRequestContent", "The request content was invalid and could not be deserialized."
        )
    vm = srv.fleet.vm(*g[:3])
    run, created, op = srv.fleet.put_managed(vm, g[3], req.body)
    if req.stuck and run.ended is None:
        run.guest = _Stuck()
    body = srv.fleet.managed_json(vm, run, instance_view=False)
    body["properties"]["provisioningState"] = "Creating" if created else "Updating"
    urls = _operation_urls(req, op)
    return Reply(201 if created else 200, body, {"Azure-AsyncOperation": urls["Azure-AsyncOperation"]})


def _delete_managed(srv: FleetServer, req: _Request, g: tuple[str, ...]) -> Reply:
    vm = srv.fleet.vm(*g[:3])
    return Reply(200 if srv.fleet.delete_managed(vm, g[3]) else 204)


def _list_managed(srv: FleetServer, req: _Request, g: tuple[str, ...]) -> Reply:
    vm = srv.fleet.vm(*g)
    runs = [srv.fleet.managed(vm, name) for name in list(vm.managed)]
    return Reply(
        200, {"value": [srv.fleet.managed_json(vm, run, instance_view=_expand(req)) for run in runs]}
    )


def _builtin_list(srv: FleetServer, req: _Request, g: tuple[str, ...]) -> Reply:
    srv.fleet.list_vms(g[0], None)  # checks the subscription
    keys = ("$schema", "id", "osType", "label", "description")
    return Reply(200, {"value": [{k: c[k] for k in keys} for c in BUILTIN_COMMANDS]})


def _builtin_get(srv: FleetServer, req: _Request, g: tuple[str, ...]) -> Reply:
    srv.fleet.list_vms(g[0], None)
    for command in BUILTIN_COMMANDS:
        if command["id"].lower() == g[2].lower():
            return Reply(200, dict(command))
    return _error(404, "NotFound", f"The entity was not found. Run command '{g[2]}' not found.")


def _get_nsg(srv: FleetServer, req: _Request, g: tuple[str, ...]) -> Reply:
    return Reply(200, srv.fleet.nsg(*g))


def _put_nsg(srv: FleetServer, req: _Request, g: tuple[str, ...]) -> Reply:
    if not isinstance(req.body, dict):
        return _error(400, "InvalidRequestFormat", "Cannot parse the request.")
    nsg, created = srv.fleet.put_nsg(g[0], g[1], g[2], req.body)
    return Reply(201 if created else 200, nsg, _network_operation(srv, req, nsg))


def _get_rule(srv: FleetServer, req: _Request, g: tuple[str, ...]) -> Reply:
    nsg = srv.fleet.nsg(*g[:3])
    for rule in nsg["properties"]["securityRules"]:
        if rule["name"].lower() == g[3].lower():
            return Reply(200, rule)
    return _error(404, "NotFound", f"Resource {nsg['id']}/securityRules/{g[3]} not found.")


def _list_rules(srv: FleetServer, req: _Request, g: tuple[str, ...]) -> Reply:
    return Reply(200, {"value": srv.fleet.nsg(*g)["properties"]["securityRules"]})


def _put_rule(srv: FleetServer, req: _Request, g: tuple[str, ...]) -> Reply:
    if not isinstance(req.body, dict):
        return _error(400, "InvalidRequestFormat", "Cannot parse the request.")
    nsg = srv.fleet.nsg(*g[:3])
    rule, created = srv.fleet.put_rule(nsg, g[3], req.body)
    return Reply(201 if created else 200, rule, _network_operation(srv, req, nsg))


def _network_operation(srv: FleetServer, req: _Request, nsg: dict[str, Any]) -> dict[str, str]:
    """Network writes answer with an async operation, as in Azure, so clients poll and then re-read."""
    subscription = nsg["id"].split("/")[2]
    op = srv.fleet.new_operation(subscription, nsg["location"], provider="Microsoft.Network")
    return {"Azure-AsyncOperation": _operation_urls(req, op)["Azure-AsyncOperation"]}


def _delete_rule(srv: FleetServer, req: _Request, g: tuple[str, ...]) -> Reply:
    nsg = srv.fleet.nsg(*g[:3])
    rules = nsg["properties"]["securityRules"]
    kept = [r for r in rules if r["name"].lower() != g[3].lower()]
    nsg["properties"]["securityRules"] = kept
    return Reply(200 if len(kept) < len(rules) else 204)


def _get_nic(srv: FleetServer, req: _Request, g: tuple[str, ...]) -> Reply:
    return Reply(200, srv.fleet.nic(*g))


def _get_vnet(srv: FleetServer, req: _Request, g: tuple[str, ...]) -> Reply:
    return Reply(200, srv.fleet.vnet(*g))


def _get_subnet(srv: FleetServer, req: _Request, g: tuple[str, ...]) -> Reply:
    vnet = srv.fleet.vnet(*g[:3])
    return Reply(200, srv.fleet.find_subnet(f"{vnet['id']}/subnets/{g[3]}"))


class _Stuck:
    """A guest run that never ends (the "stuck" fault); only a kill ends it."""

    def __init__(self) -> None:
        self.killed = False

    def poll(self, now: float) -> GuestOutput | None:
        return GuestOutput(None, "", "", killed=True) if self.killed else None

    def kill(self) -> None:
        self.killed = True


def _route(
    method: str, pattern: str, handler: Callable[[FleetServer, _Request, tuple[str, ...]], Reply]
) -> tuple[str, re.Pattern[str], Callable[[FleetServer, _Request, tuple[str, ...]], Reply]]:
    return method, re.compile(f"^{pattern}$", re.IGNORECASE), handler


_ROUTES = (
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
)


# ---- HTTP plumbing -----------------------------------------------------------------------------------


def _tls_context(ca_path: str) -> ssl.SSLContext:
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ca.cert_pem.write_to_path(ca_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    return context


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        owner: FleetServer,
        context: ssl.SSLContext,
    ) -> None:
        super().__init__(address, handler)
        self.owner = owner
        # The handshake happens in the request thread, so a slow client never blocks accept().
        self.socket = context.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def _read_body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        if not length:
            return None
        raw = self.rfile.read(length)
        try:
            return json.loads(raw)
        except ValueError:
            return _BAD_JSON

    def _send(self, reply: Reply) -> None:
        data = b"" if reply.body is None else json.dumps(reply.body).encode("utf-8")
        self.send_response(reply.status)
        for name, value in (reply.headers or {}).items():
            self.send_header(name, value)
        self.send_header("x-ms-request-id", str(time.time_ns()))
        if reply.body is not None:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _serve(self) -> None:
        owner = self.server.owner
        body = self._read_body()
        path = urlsplit(self.path).path
        if path.startswith("/_admin"):
            try:
                self._send(owner.admin(self.command, self.path, None if body is _BAD_JSON else body))
            except Exception as exc:  # the admin API answers errors as JSON too
                self._send(_error(400, "AdminError", str(exc)))
            return
        owner._log(self.command, path)
        fault = owner.faults.take(self.command, path)
        stuck = False
        if fault is not None:
            if fault.kind == "latency":
                time.sleep(fault.delay_seconds)
            elif fault.kind == "throttle":
                self._send(
                    _error(
                        429,
                        "TooManyRequests",
                        "The request is being throttled.",
                        {"Retry-After": f"{fault.retry_after:g}"},
                    )
                )
                return
            elif fault.kind == "error":
                code = "ServiceUnavailable" if fault.status == 503 else "InternalServerError"
                headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.status == 503 else None
                self._send(_error(fault.status, code, "The server encountered an injected fault.", headers))
                return
            elif fault.kind == "drop":
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(2)
                return
            elif fault.kind == "stuck":
                stuck = True
        if not self.headers.get("Authorization", "").startswith("Bearer "):
            self._send(
                _error(
                    401,
                    "AuthenticationFailed",
                    "Authentication failed. The 'Authorization' header is missing.",
                )
            )
            return
        if body is _BAD_JSON:
            self._send(
                _error(
                    400,
                    "InvalidRequestContent",
                    "The request content was invalid and could not be deserialized.",
                )
            )
            return
        if "api-version" not in urlsplit(self.path).query:
            self._send(
                _error(
                    400,
                    "MissingApiVersionParameter",
                    "The api-version query parameter (?api-version=) is required for all requests.",
                )
            )
            return
        try:
            reply = owner.handle(self.command, self.path, body, stuck)
        except ArmError as exc:
            reply = Reply(exc.status, exc.body(), exc.headers)
        except Exception:
            log.exception("fleet route failed: %s %s", self.command, self.path)
            reply = _error(500, "InternalServerError", "The emulator failed on this request.")
        self._send(reply)

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()


_BAD_JSON = object()


def run_server(fleet_file: str | None, port: int) -> int:
    """Serve the fleet in the foreground until SIGINT/SIGTERM; print one JSON line when ready.

    Raises FleetFileError (an InvalidInput) for a bad fleet file, before anything is printed.
    """
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with FleetServer(fleet_file, port=port) as server:
            print(
                json.dumps(
                    {
                        "base_url": server.base_url,
                        "ca_bundle": server.ca_bundle,
                        "subscription": server.subscription,
                    }
                ),
                flush=True,
            )
            while not stop.wait(3600):
                pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("fleet stopped", file=sys.stderr)
    return 0
