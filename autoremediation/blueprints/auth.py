"""Who calls the operator API, and whether they may.

Two layers, by design:

* the function key (auth level FUNCTION) is always required by the host, before any code runs;
* when App Service authentication is on, the platform strips any client-sent ``X-MS-CLIENT-PRINCIPAL``
  and sets its own (base64 JSON: ``auth_typ``, ``claims`` of ``{typ, val}``, ``name_typ``, ``role_typ``).
  Then the caller's app roles decide: the operator role (``Remediation.Operator``) may request, approve
  and reject; the reader role (``Remediation.Reader``) or the operator role may read.

Without the header (authentication off) the function key alone authorises every call, and the actor on
record is ``function-key``: whoever holds a function key is trusted as an operator. Turn App Service
authentication on (requiring authentication) to tell people apart: with it off, nothing strips a
client-sent principal header, so a key holder could put any name on record.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from .responses import Forbidden, Unauthenticated

PRINCIPAL_HEADER = "X-MS-CLIENT-PRINCIPAL"
PRINCIPAL_NAME_HEADER = "X-MS-CLIENT-PRINCIPAL-NAME"
FUNCTION_KEY_ACTOR = "function-key"
ROLE_CLAIMS = frozenset({"roles", "role", "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"})
NAME_CLAIMS = ("name", "preferred_username")
MAX_HEADER_CHARS = 32 * 1024
MAX_ACTOR_CHARS = 256

Need = Literal["read", "operate"]


@dataclass(frozen=True)
class Caller:
    name: str  # the actor recorded on jobs
    roles: frozenset[str]
    authenticated: bool  # False: no principal header, the function key alone let the call in


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


def caller_of(headers: Mapping[str, str]) -> Caller:
    """The caller, from the platform's identity headers (``headers`` must be case-insensitive)."""
    raw = headers.get(PRINCIPAL_HEADER)
    if raw is None or not raw.strip():
        return Caller(FUNCTION_KEY_ACTOR, frozenset(), authenticated=False)
    principal = _decode_principal(raw)
    role_types = set(ROLE_CLAIMS)
    if isinstance(principal.get("role_typ"), str):
        role_types.add(str(principal["role_typ"]))
    name_types = list(NAME_CLAIMS)
    if isinstance(principal.get("name_typ"), str):
        name_types.append(str(principal["name_typ"]))
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
    name = next((_clean(claims[t]) for t in name_types if _clean(claims.get(t, ""))), "")
    if not name:
        name = _clean(headers.get(PRINCIPAL_NAME_HEADER) or "")
    return Caller(name or "unnamed-principal", frozenset(roles), authenticated=True)


def authorize(headers: Mapping[str, str], need: Need, *, operator_role: str, reader_role: str) -> Caller:
    """The caller if they may do ``need``; Unauthenticated or Forbidden otherwise."""
    caller = caller_of(headers)
    if not caller.authenticated:
        return caller
    allowed = {operator_role} if need == "operate" else {operator_role, reader_role}
    if caller.roles & allowed:
        return caller
    wanted = " or ".join(sorted(allowed))
    raise Forbidden(f"{caller.name} needs the app role {wanted} for this call")
