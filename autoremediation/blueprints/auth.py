"""Who calls the operator API, and whether they may.

The operator API trusts one authenticator: App Service authentication, the platform front end that
validates the caller's Entra token before the request reaches the app. When it is on, the platform sets
``WEBSITE_AUTH_ENABLED=True``, strips any client-sent ``X-MS-*`` header and sends its own:
``X-MS-CLIENT-PRINCIPAL`` (base64 JSON: ``auth_typ``, ``claims`` of ``{typ, val}``, ``name_typ``,
``role_typ``), ``X-MS-CLIENT-PRINCIPAL-ID`` (the object id) and ``X-MS-CLIENT-PRINCIPAL-NAME``.

* Authentication on: a call without a principal is refused (401); the caller's app roles decide the rest
  (403 without them): ``Remediation.Operator`` may request, approve and reject (and read),
  ``Remediation.Reader`` may read. A caller is recorded by object id (``oid``), with a display name.
* Authentication off: nothing strips a client-sent principal header, so the app ignores it and knows no
  caller: every operator call is refused, unless ``REMEDIATION_ALLOW_UNAUTHENTICATED_OPERATORS`` is on
  (development only), which lets every caller act as one shared development identity. That identity is
  held to separation of duties like any other: it cannot approve its own requests.

A function key proves nothing about a person, so it never names an actor.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from .responses import Forbidden, Unauthenticated

if TYPE_CHECKING:
    from ..settings import Settings

PRINCIPAL_HEADER = "X-MS-CLIENT-PRINCIPAL"
PRINCIPAL_ID_HEADER = "X-MS-CLIENT-PRINCIPAL-ID"
PRINCIPAL_NAME_HEADER = "X-MS-CLIENT-PRINCIPAL-NAME"
OBJECT_ID_CLAIMS = ("http://schemas.microsoft.com/identity/claims/objectidentifier", "oid")
ROLE_CLAIMS = frozenset({"roles", "role", "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"})
NAME_CLAIMS = ("name", "preferred_username")
MAX_HEADER_CHARS = 32 * 1024
MAX_ACTOR_CHARS = 256
# The one identity of every caller when authentication is off and development access is allowed.
DEVELOPMENT_ACTOR = "unauthenticated-development"

Need = Literal["read", "operate"]


@dataclass(frozen=True)
class Caller:
    object_id: str  # the actor on record: separation of duties compares these
    name: str  # a display name for people reading the record
    roles: frozenset[str]
    authenticated: bool  # False: the development identity, with App Service authentication off


def _clean(text: str) -> str:
    printable = "".join(ch for ch in text if ch.isprintable()).strip()
    return printable[:MAX_ACTOR_CHARS]


def _decode_principal(raw: str) -> Mapping[str, object]:
    if len(raw) > MAX_HEADER_CHARS:
        raise Unauthenticated(f"the {PRINCIPAL_HEADER} header is too long")
    try:
        padded = raw.strip() + "=" * (-len(raw.strip()) % 4)
        data = json.loads(base64.b64decode(padded, validate=True).decode("utf-8"))
    except (binascii.Error, UnicodeDecodeError, ValueError, RecursionError):
        raise Unauthenticated(f"the {PRINCIPAL_HEADER} header is not base64-encoded JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("claims", []), list):
        raise Unauthenticated(f"the {PRINCIPAL_HEADER} header is not a client principal with claims")
    return data


def caller_of(headers: Mapping[str, str]) -> Caller | None:
    """The principal App Service authentication sent (``headers`` must be case-insensitive); None if none.

    Only call this when the platform fronts the app: without it these headers are the client's own.
    """
    raw = headers.get(PRINCIPAL_HEADER)
    if raw is None or not raw.strip():
        return None
    principal = _decode_principal(raw)
    role_types = set(ROLE_CLAIMS)
    if isinstance(principal.get("role_typ"), str):
        role_types.add(str(principal["role_typ"]))
    name_types = list(NAME_CLAIMS)
    if isinstance(principal.get("name_typ"), str):
        name_types.insert(0, str(principal["name_typ"]))
    roles: set[str] = set()
    claims: dict[str, str] = {}
    listed = principal.get("claims")
    for claim in listed if isinstance(listed, list) else []:
        if not isinstance(claim, dict):
            continue
        typ, val = claim.get("typ"), claim.get("val")
        if not isinstance(typ, str) or not isinstance(val, str):
            continue
        if typ in role_types:
            roles.add(val)
        claims.setdefault(typ, val)
    object_id = _object_id(claims, headers)
    name = next((_clean(claims[t]) for t in name_types if _clean(claims.get(t, ""))), "")
    name = name or _clean(headers.get(PRINCIPAL_NAME_HEADER) or "") or object_id
    return Caller(object_id, name, frozenset(roles), authenticated=True)


def _object_id(claims: Mapping[str, str], headers: Mapping[str, str]) -> str:
    from_claims = next((_clean(claims[t]) for t in OBJECT_ID_CLAIMS if _clean(claims.get(t, ""))), "")
    from_header = _clean(headers.get(PRINCIPAL_ID_HEADER) or "")
    if from_claims and from_header and from_claims.lower() != from_header.lower():
        raise Unauthenticated(f"the {PRINCIPAL_HEADER} object id and {PRINCIPAL_ID_HEADER} disagree")
    object_id = (from_claims or from_header).lower()
    if not object_id:
        raise Unauthenticated(f"the principal has no object id (oid claim or {PRINCIPAL_ID_HEADER})")
    return object_id


def authorize(headers: Mapping[str, str], need: Need, settings: Settings) -> Caller:
    """The caller if they may do ``need``; Unauthenticated (401) or Forbidden (403) otherwise."""
    if not settings.platform_auth:
        # No front end strips client-sent X-MS-* headers: they are claims anyone can make. Ignore them.
        if not settings.allow_unauthenticated_operators:
            raise Forbidden(
                "App Service authentication is off, so the operator API cannot tell who calls: turn it on "
                "(or, on a development machine only, set REMEDIATION_ALLOW_UNAUTHENTICATED_OPERATORS=true)"
            )
        roles = frozenset({settings.operator_role, settings.reader_role})
        return Caller(DEVELOPMENT_ACTOR, "unauthenticated development caller", roles, authenticated=False)
    caller = caller_of(headers)
    if caller is None:
        raise Unauthenticated("sign in: the operator API needs an Entra identity, and the request had none")
    allowed = (
        {settings.operator_role} if need == "operate" else {settings.operator_role, settings.reader_role}
    )
    if caller.roles & allowed:
        return caller
    wanted = " or ".join(sorted(allowed))
    raise Forbidden(f"{caller.name} needs the app role {wanted} for this call")
