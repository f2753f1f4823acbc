"""``remediate console``: the console on this machine, for a look at local jobs (the demo's included).

A small HTTP server on loopback plays the part App Service plays in Azure: it strips any identity header
a client sends, signs every request in as the local operator (``X-MS-CLIENT-PRINCIPAL`` with the chosen
app role), and hands the request to the same console functions the Function App registers. After a
decision it runs the local queue, as ``remediate approve`` does, so an approved job runs here and its
page shows the outcome.
"""

from __future__ import annotations

import argparse
import base64
import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TextIO
from urllib.parse import parse_qsl, urlsplit

MAX_BODY_BYTES = 64 * 1024
# The console's routes as the host sees them (``{name}`` is one path segment); a test keeps this list
# equal to what the Function App registers.
ROUTES = (
    ("GET", "console", "console_home"),
    ("GET", "console/jobs", "console_jobs"),
    ("GET", "console/jobs/{id}", "console_job"),
    ("POST", "console/jobs/{id}/{decision}", "console_decide"),
    ("GET", "console/campaigns", "console_campaigns"),
    ("POST", "console/campaigns/{id}/stop", "console_campaign_stop"),
    ("GET", "console/static/{name}", "console_static"),
)
ROLES = {"operator": "Remediation.Operator", "reader": "Remediation.Reader"}


def _pattern(template: str) -> re.Pattern[str]:
    parts = (
        f"(?P<{part[1:-1]}>[^/]+)" if part.startswith("{") else re.escape(part)
        for part in template.split("/")
    )
    return re.compile("^/api/" + "/".join(parts) + "/?$")


def principal_headers(name: str, object_id: str, role: str) -> dict[str, str]:
    """The identity headers App Service authentication would send for this operator."""
    claims = [
        {"typ": "name", "val": name},
        {"typ": "http://schemas.microsoft.com/identity/claims/objectidentifier", "val": object_id},
        {"typ": "roles", "val": role},
    ]
    data = {"auth_typ": "local", "claims": claims, "name_typ": "name", "role_typ": "roles"}
    return {
        "X-MS-CLIENT-PRINCIPAL": base64.b64encode(json.dumps(data).encode()).decode(),
        "X-MS-CLIENT-PRINCIPAL-ID": object_id,
        "X-MS-CLIENT-PRINCIPAL-NAME": name,
    }


class ConsoleServer(ThreadingHTTPServer):
    # A browser opens connections ahead of use: one idle socket must not hold up every other request.
    daemon_threads = True

    def __init__(
        self,
        port: int,
        identity: dict[str, str],
        after_decision: Callable[[], None] | None = None,
    ) -> None:
        from ..blueprints import console

        self.identity = identity
        self.after_decision = after_decision
        self.table = [(method, _pattern(route), getattr(console, name)) for method, route, name in ROUTES]
        super().__init__(("127.0.0.1", port), _Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/api/console"


class _Handler(BaseHTTPRequestHandler):
    server: ConsoleServer
    disable_nagle_algorithm = True
    timeout = 30  # an idle connection is closed, never waited on forever

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the terminal shows the URL only
        return

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        import azure.functions as func

        parts = urlsplit(self.path)
        if parts.path in {"/", "/api", "/api/"}:
            self._send(303, {"Location": "/api/console"}, b"")
            return
        found = [
            (function, match)
            for wanted, pattern, function in self.server.table
            if wanted == method and (match := pattern.match(parts.path))
        ]
        if not found:
            self._send(404, {"Content-Type": "text/plain"}, b"not found")
            return
        function, match = found[0]
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self._send(413, {"Content-Type": "text/plain"}, b"too large")
            return
        body = self.rfile.read(length) if length else b""
        # The platform's rule: identity headers come from the front end, never from the client.
        headers = {k: v for k, v in self.headers.items() if not k.lower().startswith("x-ms-")}
        headers.update(self.server.identity)
        request = func.HttpRequest(
            method=method,
            url=f"http://{self.headers.get('Host', '127.0.0.1')}{self.path}",
            headers=headers,
            params=dict(parse_qsl(parts.query, keep_blank_values=True)),
            route_params=match.groupdict(),
            body=body,
        )
        response = function(request)
        if method == "POST" and response.status_code == 303 and self.server.after_decision:
            self.server.after_decision()
        sent = dict(response.headers)
        sent.setdefault("Content-Type", f"{response.mimetype}; charset={response.charset}")
        self._send(response.status_code, sent, response.get_body())

    def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@contextmanager
def serving(
    port: int, *, name: str, role: str, after_decision: Callable[[], None] | None = None
) -> Iterator[ConsoleServer]:
    """A console server on loopback (port 0: any free one), closed on exit; requests are served by
    ``serve_forever`` on the caller's thread, or by a thread the caller starts."""
    identity = principal_headers(name, f"local:{name}", ROLES[role])
    server = ConsoleServer(port, identity, after_decision)
    try:
        yield server
    finally:
        server.server_close()


def cmd_console(args: argparse.Namespace, out: TextIO) -> int:
    from .. import services as services_module
    from ..cli_jobs import _work, engine

    with engine(args) as services:
        services = type(services)(
            replace(services.settings, platform_auth=True),
            clock=services.clock,
            on_transition=services.on_transition,
        )
        services_module.set_services(services)

        def run_queue() -> None:
            _work(services)

        with serving(args.port, name=args.actor, role=args.role, after_decision=run_queue) as server:
            out.write(f"console: {server.url}  (signed in as {args.actor}, {args.role}; Ctrl-C stops)\n")
            out.flush()
            try:
                server.serve_forever()
            except KeyboardInterrupt:
                out.write("\nconsole stopped\n")
    return 0


def add_parser(commands: Any, default_actor: str, where: Callable[[argparse.ArgumentParser], None]) -> None:
    from ..cli_jobs import _port

    p = commands.add_parser("console", help="the operator console in a browser, on this machine")
    p.add_argument("--port", type=_port, default=8070, help="port on 127.0.0.1 (default 8070; 0: any)")
    p.add_argument(
        "--as", dest="actor", default=default_actor, help=f"who you are (default: {default_actor})"
    )
    p.add_argument(
        "--role", choices=sorted(ROLES), default="operator", help="your app role (default operator)"
    )
    where(p)
    p.set_defaults(handler=cmd_console)
