"""SDK errors mapped to the typed hierarchy, and bounded retries that honour Retry-After."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..errors import (
    AgentNotReady,
    Busy,
    CloudError,
    InvalidInput,
    NotFound,
    OsMismatch,
    Permanent,
    RemediationError,
    SetupProblem,
    Throttled,
    Transient,
    VmNotRunning,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

NO_CREDENTIAL = (
    "no Azure credential: sign in with `az login`, or run with a managed identity "
    "(AZURE_CLIENT_ID names a user-assigned one)"
)

_ARM_PATH = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/(?P<ns>[^/]+)/(?P<type>[^/]+)/"
    r"(?P<name>[^/]+)(?:/(?P<child_type>[^/]+)/(?P<child>[^/]+))?/?$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class ArmId:
    subscription: str
    resource_group: str
    name: str
    child: str | None = None


def parse_id(resource_id: str, namespace: str, kind: str, child_kind: str | None = None) -> ArmId:
    """Split an ARM id of the expected type; InvalidInput names what was expected."""
    match = _ARM_PATH.match((resource_id or "").strip()) if isinstance(resource_id, str) else None
    expected = f"{namespace}/{kind}" + (f"/{child_kind}" if child_kind else "")
    if (
        not match
        or match["ns"].lower() != namespace.lower()
        or match["type"].lower() != kind.lower()
        or (child_kind is None) != (match["child_type"] is None)
        or (child_kind is not None and match["child_type"].lower() != child_kind.lower())
    ):
        raise InvalidInput(f"{resource_id!r} is not a {expected} resource id")
    return ArmId(match["sub"], match["rg"], match["name"], match["child"])


def _retry_after(response: Any) -> float:
    from .budget import retry_after_seconds

    headers = getattr(response, "headers", None) or {}
    seconds = retry_after_seconds(dict(headers))
    return 1.0 if seconds is None else max(0.0, seconds)


def _causes(exc: BaseException) -> list[BaseException]:
    """The exception and what it wraps (``inner_exception``, ``__cause__``, ``__context__``, args)."""
    seen: list[BaseException] = []
    pending: list[object] = [exc]
    while pending and len(seen) < 20:
        item = pending.pop()
        if not isinstance(item, BaseException) or any(item is s for s in seen):
            continue
        seen.append(item)
        pending += [getattr(item, "inner_exception", None), item.__cause__, item.__context__, *item.args]
    return seen


def tls_failure(exc: BaseException) -> str | None:
    """Why the TLS certificate did not verify, when that is what ``exc`` is about (else None)."""
    import ssl

    for cause in _causes(exc):
        if isinstance(cause, ssl.SSLCertVerificationError):
            return cause.verify_message or str(cause)
        if "CERTIFICATE_VERIFY_FAILED" in str(cause):
            return "certificate verify failed"
    return None


def credential_failure(exc: BaseException) -> bool:
    """True when ``exc`` says no token could be had (azure-identity found no usable credential)."""
    from azure.core.exceptions import ClientAuthenticationError

    return isinstance(exc, ClientAuthenticationError) and getattr(exc, "status_code", None) is None


def map_error(exc: Exception, what: str) -> RemediationError:
    """The typed error for an SDK exception raised while doing ``what``.

    Errors that retrying cannot mend are ``SetupProblem`` (TLS verification, no credential, 401/403) so
    that callers fail at once instead of retrying for minutes.
    """
    from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError

    if isinstance(exc, RemediationError):
        return exc
    if isinstance(exc, ServiceRequestError | ServiceResponseError):
        tls = tls_failure(exc)
        if tls is not None:
            return SetupProblem(
                f"{what}: the TLS certificate of the ARM endpoint does not verify ({tls}): "
                "check REMEDIATION_ARM_ENDPOINT and REMEDIATION_ARM_CA_BUNDLE"
            )
        return Transient(f"{what}: connection failed: {exc}")
    if credential_failure(exc):
        return SetupProblem(f"{what}: {NO_CREDENTIAL}")
    if not isinstance(exc, HttpResponseError):
        return Permanent(f"{what}: {type(exc).__name__}: {exc}")
    status = exc.status_code
    error = getattr(exc, "error", None)
    code = getattr(error, "code", None) or ""
    message = getattr(error, "message", None) or str(exc.message or exc)
    text = f"{what}: {code + ': ' if code else ''}{message}"
    lowered = message.lower()
    if code == "VMAgentStatusCommunicationError" or ("vm agent" in lowered and "not ready" in lowered):
        return AgentNotReady(text, status=status, code=code)
    if status == 429:
        return Throttled(text, retry_after=_retry_after(exc.response), status=status, code=code)
    if status == 404:
        return NotFound(text)
    if status == 409 and "does not match the target os" in lowered:
        return OsMismatch(text, status=status, code=code)
    if (
        status == 409
        and code == "OperationNotAllowed"
        and any(word in lowered for word in ("not running", "deallocated", "stopped"))
    ):
        return VmNotRunning(text, status=status, code=code)
    if status == 409 and ("in progress" in lowered or code == "Conflict"):
        return Busy(text, status=status, code=code)
    if status in (408, 500, 502, 503, 504):
        return Transient(text, status=status, code=code)
    if status in (401, 403):
        hint = "the identity is not signed in" if status == 401 else "the identity lacks a role for this"
        return SetupProblem(f"{text} ({hint})", status=status, code=code)
    return Permanent(text, status=status, code=code)


@dataclass
class Retrier:
    """Bounded retries of Transient and Throttled errors with exponential backoff.

    ``sleep`` is injected so tests never wait; Retry-After from ARM replaces the backoff when longer.
    Calls that are not safe to repeat (a POST that may have started a script) retry only on answers that
    prove the request was not taken: 429 and 503.
    """

    attempts: int = 4
    backoff: float = 1.0
    max_delay: float = 60.0
    sleep: Callable[[float], None] = field(default=time.sleep)

    def call(self, what: str, fn: Callable[[], T], *, idempotent: bool = True) -> T:
        attempt = 0
        while True:
            attempt += 1
            try:
                return fn()
            except Exception as exc:
                error = map_error(exc, what)
                if not self._should_retry(error, idempotent) or attempt >= self.attempts:
                    raise error from exc
                delay = min(self.max_delay, self.backoff * 2 ** (attempt - 1))
                if isinstance(error, Throttled):
                    delay = max(delay, min(self.max_delay, error.retry_after))
                log.info(
                    "%s failed (%s), retry %d/%d in %.1fs", what, error, attempt, self.attempts - 1, delay
                )
                self.sleep(delay)

    @staticmethod
    def _should_retry(error: RemediationError, idempotent: bool) -> bool:
        if not isinstance(error, Transient | Throttled):
            return False
        if idempotent:
            return True
        return isinstance(error, Throttled) or (isinstance(error, CloudError) and error.status == 503)
