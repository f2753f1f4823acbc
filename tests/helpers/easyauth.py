"""A small stand-in for App Service authentication in front of the registered Function App handlers.

It serves HTTPS on 127.0.0.1 and does what the platform front end does for the app, by its documented
header contract:

* strips every client-sent ``X-MS-*`` header;
* lets excluded paths through unauthenticated (``globalValidation.excludedPaths``);
* requires a signed-in caller everywhere else (``requireAuthentication``): a request without credentials
  is sent to sign in (``RedirectToLoginPage``; 401 for ``X-Requested-With: XMLHttpRequest``), and a
  bearer token must pass its signature, audience and expiry checks (401 otherwise);
* passes the caller on as ``X-MS-CLIENT-PRINCIPAL`` (base64 JSON with ``auth_typ``, ``claims`` of
  ``{typ, val}``, ``name_typ``, ``role_typ``), ``X-MS-CLIENT-PRINCIPAL-ID`` (the object id),
  ``X-MS-CLIENT-PRINCIPAL-NAME`` and ``X-MS-CLIENT-PRINCIPAL-IDP``.

Tokens are the stand-in's own (HMAC-signed JSON), issued by :meth:`EasyAuthFrontEnd.issue` and handed
out by :class:`TokenIssuer`, an azure-core ``TokenCredential``. The request then goes to the registered
function, called the way the host calls it, with a real ``func.HttpRequest``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import ssl
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import azure.functions as func

OID_CLAIM = "http://schemas.microsoft.com/identity/claims/objectidentifier"
# The tenant the test deployment lives in (AZURE_TENANT_ID) and that issues every token here.
TENANT_ID = "7e57a11d-0000-4000-8000-0000000000aa"
NAME_TYP = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name"
ROLE_TYP = "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"
EXCLUDED_PATHS = ("/api/health", "/api/openapi", "/api/alerts")


class EasyAuthFrontEnd:
    def __init__(
        self,
        registered: Mapping[str, Any],
        audience: str,
        excluded_paths: tuple[str, ...] = EXCLUDED_PATHS,
    ) -> None:
        self.audience = audience
        self.excluded_paths = excluded_paths
        self._key = secrets.token_bytes(32)
        self._routes = _routes(registered)
        self.seen: list[dict[str, str]] = []  # the headers each function received
        self._dir = tempfile.TemporaryDirectory(prefix="easyauth-")
        self.ca_bundle = str(Path(self._dir.name) / "ca.pem")
        self._server = _Server(("127.0.0.1", 0), _Handler, self, _tls_context(self.ca_bundle))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> EasyAuthFrontEnd:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._dir.cleanup()

    # -- tokens ----------------------------------------------------------------------------------

    def issue(
        self,
        *,
        oid: str,
        name: str,
        roles: tuple[str, ...] = (),
        audience: str | None = None,
        ttl: int = 3600,
        appid: str | None = None,
    ) -> str:
        claims = {
            "appid": appid,
            "aud": audience or self.audience,
            "oid": oid,
            "name": name,
            "roles": list(roles),
            "exp": int(time.time()) + ttl,
            "tid": TENANT_ID,
        }
        body = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
        return f"{body}.{self._sign(body)}"

    def _sign(self, body: str) -> str:
        return hmac.new(self._key, body.encode(), hashlib.sha256).hexdigest()

    def validate(self, authorization: str | None) -> dict[str, Any] | None:
        """The token's claims, or None when it is missing, forged, expired or for another audience."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or "." not in token:
            return None
        body, _, signature = token.partition(".")
        if not hmac.compare_digest(signature, self._sign(body)):
            return None
        claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        if claims.get("aud") != self.audience or int(claims.get("exp", 0)) < time.time():
            return None
        return claims

    # -- the front end ----------------------------------------------------------------------------

    def handle(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        parts = urlsplit(target)
        forwarded = {k: v for k, v in headers.items() if not k.lower().startswith("x-ms-")}
        if not any(parts.path == p or parts.path.startswith(p + "/") for p in self.excluded_paths):
            lookup = {k.lower(): v for k, v in headers.items()}
            claims = self.validate(lookup.get("authorization"))
            if (
                claims is None
                and "authorization" not in lookup
                and lookup.get("x-requested-with") != "XMLHttpRequest"
            ):
                # RedirectToLoginPage: a caller without any credential is sent to sign in.
                login = "/.auth/login/aad?post_login_redirect_uri=" + quote(target, safe="")
                return 302, {"Location": login}, b""
            if claims is None:
                return (
                    401,
                    {"WWW-Authenticate": 'Bearer realm="app"'},
                    b"You do not have permission to view this directory or page.",
                )
            forwarded.update(_principal_headers(claims))
        found = self._route(method, parts.path)
        if found is None:
            return 404, {}, b""
        function, route_params = found
        request = func.HttpRequest(
            method=method,
            url=f"https://app.example{target}",
            headers=forwarded,
            params=dict(parse_qsl(parts.query)),
            route_params=route_params,
            body=body,
        )
        self.seen.append(dict(forwarded))
        response: func.HttpResponse = function(request)
        answer_headers = dict(response.headers.items())
        answer_headers["Content-Type"] = response.mimetype or "application/json"
        return response.status_code, answer_headers, response.get_body()

    def _route(self, method: str, path: str) -> tuple[Callable[..., Any], dict[str, str]] | None:
        for pattern, methods, function in self._routes:
            match = pattern.fullmatch(path)
            if match and method.upper() in methods:
                return function, match.groupdict()
        return None


def _principal_headers(claims: Mapping[str, Any]) -> dict[str, str]:
    listed = [{"typ": OID_CLAIM, "val": claims["oid"]}, {"typ": NAME_TYP, "val": claims["name"]}]
    listed += [{"typ": ROLE_TYP, "val": role} for role in claims.get("roles", [])]
    if claims.get("appid"):
        listed.append({"typ": "appid", "val": claims["appid"]})
    if claims.get("tid"):
        listed.append({"typ": "tid", "val": claims["tid"]})
    principal = {"auth_typ": "aad", "claims": listed, "name_typ": NAME_TYP, "role_typ": ROLE_TYP}
    return {
        "X-MS-CLIENT-PRINCIPAL": base64.b64encode(json.dumps(principal).encode()).decode(),
        "X-MS-CLIENT-PRINCIPAL-ID": str(claims["oid"]),
        "X-MS-CLIENT-PRINCIPAL-NAME": str(claims["name"]),
        "X-MS-CLIENT-PRINCIPAL-IDP": "aad",
    }


def _routes(registered: Mapping[str, Any]) -> list[tuple[re.Pattern[str], set[str], Callable[..., Any]]]:
    found = []
    for function in registered.values():
        trigger = json.loads(function.get_function_json())["bindings"][0]
        if trigger["type"] != "httpTrigger":
            continue
        pattern = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", "/api/" + trigger["route"])
        found.append(
            (re.compile(pattern), {m.upper() for m in trigger["methods"]}, function.get_user_function())
        )
    # Literal routes before templated ones, as the host matches them (campaigns/x never hides a literal).
    return sorted(found, key=lambda item: item[0].pattern.count("(?P<"))


class TokenIssuer:
    """An azure-core TokenCredential that hands out the front end's tokens for one identity."""

    def __init__(self, front: EasyAuthFrontEnd, *, oid: str, name: str, roles: tuple[str, ...] = ()) -> None:
        self.front = front
        self.oid, self.name, self.roles = oid, name, roles
        self.scopes: list[str] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken

        self.scopes += scopes
        audience = scopes[0].removesuffix("/.default") if scopes else ""
        token = self.front.issue(oid=self.oid, name=self.name, roles=self.roles, audience=audience)
        return AccessToken(token, int(time.time()) + 3600)


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

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        owner: EasyAuthFrontEnd,
        context: ssl.SSLContext,
    ) -> None:
        super().__init__(address, handler)
        self.owner = owner
        self.socket = context.wrap_socket(self.socket, server_side=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        status, headers, payload = self.server.owner.handle(
            self.command, self.path, dict(self.headers.items()), body
        )
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = _serve
    do_POST = _serve
