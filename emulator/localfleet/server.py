"""The local ARM emulator: HTTPS on loopback, the Compute and Network routes the app calls, an admin API.

``FleetServer`` runs in-process (tests, the demo); ``run_server`` runs it in the foreground for
``remediate fleet serve``. The server keeps the SDK honest: TLS with a locally generated CA (so bearer-token
auth stays on), a bearer token required on every ARM route, and whatever api-version the client sends.

Admin API (Python and HTTP under ``/_admin``): the call log, fault injection, the fleet clock, VM state, runs
started per VM, throttling counts.
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
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

from autoremediation.errors import InvalidInput

from .arm import ArmError, iso
from .faults import FaultTable
from .fleetfile import FaultSpec, FleetSpec, load_fleet, parse_fault
from .routes import Reply, dispatch, error
from .state import Fleet, Vm
from .throttle import Throttle

log = logging.getLogger(__name__)


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
        self.throttle = Throttle(spec.throttling) if spec.throttling is not None else None
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
        return dispatch(self.fleet, self.base_url, method, raw_path, body, stuck)

    def admin(self, method: str, raw_path: str, body: Any) -> Reply:
        path = urlsplit(raw_path).path.rstrip("/")
        if path == "/_admin/calls" and method == "GET":
            with self._calls_lock:
                return Reply(200, {"calls": [{"method": m, "path": p} for m, p in self.calls]})
        if path == "/_admin/calls" and method == "DELETE":
            self.reset_calls()
            return Reply(204)
        if path == "/_admin/runs" and method == "GET":
            started = {vm.spec.name: vm.runs_started for vm in self.fleet.vms.values() if vm.runs_started}
            return Reply(200, {"runsStarted": started})
        if path == "/_admin/throttling" and method == "GET":
            if self.throttle is None:
                return Reply(200, {"enabled": False})
            return Reply(
                200,
                {"enabled": True, "taken": dict(self.throttle.taken), "refused": dict(self.throttle.refused)},
            )
        if path == "/_admin/faults" and method == "GET":
            return Reply(200, {"faults": self.faults.describe()})
        if path == "/_admin/faults" and method == "POST":
            if not isinstance(body, dict):
                return error(
                    400, "InvalidFault", "POST a JSON object: {route, kind, status, retryAfter, times}"
                )
            self.faults.inject(parse_fault(body))
            return Reply(201, {"faults": self.faults.describe()})
        if path == "/_admin/faults" and method == "DELETE":
            self.clear_faults()
            return Reply(204)
        if path == "/_admin/deployment" and method == "GET":
            # What the deployment around this fleet configures: its wall clock, the rules infra deploys.
            return Reply(
                200,
                {
                    "now": iso(self.fleet.clock.now()),
                    "trustedAlertRules": self.fleet.alerting.deployed_rules(),
                },
            )
        if path == "/_admin/clock" and method == "POST":
            seconds = body.get("advanceSeconds") if isinstance(body, dict) else None
            if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
                return error(400, "InvalidClock", 'POST {"advanceSeconds": N} with N >= 0')
            self.advance(float(seconds))
            return Reply(200, {"now": iso(self.fleet.clock.now())})
        match = re.fullmatch(r"/_admin/vms/([^/]+)", path)
        if match:
            try:
                vm = self.vm(match[1])
            except KeyError:
                return error(404, "NotFound", f"no fleet VM named {match[1]!r}")
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
        return error(404, "NotFound", f"no admin route {method} {path}")


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
                self._send(error(400, "AdminError", str(exc)))
            return
        owner._log(self.command, path)
        fault = owner.faults.take(self.command, path)
        stuck = False
        if fault is not None:
            if fault.kind == "latency":
                time.sleep(fault.delay_seconds)
            elif fault.kind == "throttle":
                self._send(
                    error(
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
                self._send(error(fault.status, code, "The server encountered an injected fault.", headers))
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
                error(
                    401,
                    "AuthenticationFailed",
                    "Authentication failed. The 'Authorization' header is missing.",
                )
            )
            return
        if body is _BAD_JSON:
            self._send(
                error(
                    400,
                    "InvalidRequestContent",
                    "The request content was invalid and could not be deserialized.",
                )
            )
            return
        if "api-version" not in urlsplit(self.path).query:
            self._send(
                error(
                    400,
                    "MissingApiVersionParameter",
                    "The api-version query parameter (?api-version=) is required for all requests.",
                )
            )
            return
        verdict = owner.throttle.take(_subscription_of(path), self.command) if owner.throttle else None
        if verdict is not None and not verdict.allowed:
            message = (
                f"Number of '{verdict.kind}' requests for subscription '{_subscription_of(path)}' "
                "exceeded the limit. Please try again later."
            )
            self._send(error(429, "SubscriptionRequestsThrottled", message, verdict.headers()))
            return
        try:
            reply = owner.handle(self.command, self.path, body, stuck)
        except ArmError as exc:
            reply = Reply(exc.status, exc.body(), exc.headers)
        except Exception:
            log.exception("fleet route failed: %s %s", self.command, self.path)
            reply = error(500, "InternalServerError", "The emulator failed on this request.")
        if verdict is not None:
            reply = Reply(reply.status, reply.body, {**(reply.headers or {}), **verdict.headers()})
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
_SUBSCRIPTION_IN_PATH = re.compile(r"^/subscriptions/([^/]+)", re.IGNORECASE)


def _subscription_of(path: str) -> str:
    match = _SUBSCRIPTION_IN_PATH.match(path)
    return match[1].lower() if match else ""


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
