"""JSON answers for the HTTP functions, and the one mapping from the engine's errors to status codes.

Every refusal is ``{"error": "<reason>"}`` with the status that tells the caller what to do: fix the
request (400, 404, 409, 413), authenticate (401, 403), come back later (503 with Retry-After, which
Action Groups honour), or tell an administrator (500, 502). A traceback never reaches the caller.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from typing import Any

import azure.functions as func

from ..errors import (
    CloudError,
    ConcurrencyConflict,
    InvalidInput,
    InvalidTransition,
    NotFound,
    RemediationError,
    Throttled,
)

log = logging.getLogger("autoremediation.functions")

MAX_BODY_BYTES = 1024 * 1024  # 1 MB: far above any alert or request this app reads
RETRY_AFTER_SECONDS = 10


class PayloadTooLarge(InvalidInput):
    """The request body is larger than MAX_BODY_BYTES (413)."""


class Unauthenticated(RemediationError):
    """The caller's identity header cannot be read (401)."""


class Forbidden(RemediationError):
    """The caller is known but lacks the app role the function needs (403)."""


def json_response(
    status: int, body: Mapping[str, Any] | list[Any], headers: Mapping[str, str] | None = None
) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps(body, default=str),
        status_code=status,
        mimetype="application/json",
        headers=dict(headers or {}),
    )


def error_response(status: int, message: str, headers: Mapping[str, str] | None = None) -> func.HttpResponse:
    return json_response(status, {"error": message}, headers)


def read_json(req: func.HttpRequest) -> object:
    """The request body as JSON: PayloadTooLarge over 1 MB, InvalidInput (SignalError) when not JSON."""
    from ..signals import decode

    body = req.get_body() or b""
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"the request body is {len(body)} bytes; the limit is {MAX_BODY_BYTES} bytes")
    if not body.strip():
        raise InvalidInput("the request has no body: send a JSON document")
    return decode(body)


def response_for(error: Exception, *, caller_fault: bool = True) -> func.HttpResponse:
    """The answer for an error. ``caller_fault=False``: bad input can no longer be the caller's
    (the request was already accepted as valid), so InvalidInput means the app is misconfigured."""
    if isinstance(error, PayloadTooLarge):
        return error_response(413, str(error))
    if isinstance(error, Unauthenticated):
        return error_response(401, str(error))
    if isinstance(error, Forbidden):
        return error_response(403, str(error))
    if isinstance(error, NotFound):
        return error_response(404, str(error))
    if isinstance(error, InvalidTransition):
        return error_response(409, str(error))
    if isinstance(error, InvalidInput):
        if caller_fault:
            return error_response(400, str(error))
        log.error("configuration error while serving a valid request: %s", error)
        return error_response(500, f"the app cannot serve this request: {error}")
    if isinstance(error, Throttled):
        wait = max(1, math.ceil(error.retry_after or RETRY_AFTER_SECONDS))
        return error_response(503, f"try again later: {error}", {"Retry-After": str(wait)})
    if isinstance(error, ConcurrencyConflict) or (isinstance(error, CloudError) and error.retryable):
        log.warning("temporary failure, asking the caller to retry: %s", error)
        return error_response(503, f"try again later: {error}", {"Retry-After": str(RETRY_AFTER_SECONDS)})
    if isinstance(error, CloudError):
        log.error("an Azure service refused a request: %s", error)
        return error_response(502, f"an Azure service refused the request: {error}")
    if isinstance(error, RemediationError):
        log.error("cannot serve the request: %s", error)
        return error_response(500, f"the app cannot serve this request: {error}")
    log.exception("unexpected error")
    return error_response(500, "internal error: the app logged the details")
