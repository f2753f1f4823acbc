"""What the Table Storage adapters share: SDK errors as the engine's typed errors, and ETag helpers."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, ParamSpec, TypeVar

from ..errors import Permanent, RemediationError, Throttled, Transient
from ..settings import http_environment

P = ParamSpec("P")
R = TypeVar("R")


def storage_errors(method: Callable[P, R]) -> Callable[P, R]:
    """SDK exceptions leave as the engine's typed errors, with the operation named."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except RemediationError:
            raise
        except Exception as exc:
            raise translate_storage_error(exc, f"table storage {method.__name__}") from exc

    return wrapper


def translate_storage_error(exc: Exception, what: str) -> Exception:
    """An Azure SDK exception as a RemediationError; anything else is returned unchanged."""
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ServiceRequestError,
        ServiceResponseError,
    )

    if isinstance(exc, ServiceRequestError | ServiceResponseError):
        return Transient(f"{what}: cannot reach the storage account: {exc}")
    if isinstance(exc, ClientAuthenticationError):
        return Permanent(
            f"{what}: the storage account refused the credentials (check the connection string or the "
            f"identity's data-plane role): {_first_line(exc)}",
            status=exc.status_code,
        )
    if isinstance(exc, HttpResponseError):
        status = exc.status_code or 0
        code = getattr(exc, "error_code", None)
        code = str(code) if code else None
        if status == 429 or code == "ServerBusy":
            return Throttled(f"{what}: storage is throttling: {_first_line(exc)}", status=status, code=code)
        if status >= 500:
            return Transient(f"{what}: storage failed: {_first_line(exc)}", status=status, code=code)
        return Permanent(f"{what}: storage refused: {_first_line(exc)}", status=status, code=code)
    return exc


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def etag(entity: Any) -> str:
    return str(entity.metadata["etag"])


def delete_if_unchanged(table: Any, entity: Mapping[str, Any]) -> bool:
    """Delete ``entity`` only if nobody wrote it since it was read (its ETag); False if it changed or went."""
    from azure.core import MatchConditions
    from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError

    try:
        table.delete_entity(
            entity["PartitionKey"],
            entity["RowKey"],
            etag=etag(entity),
            match_condition=MatchConditions.IfNotModified,
        )
    except (ResourceModifiedError, ResourceNotFoundError):
        return False
    return True


def with_http_environment(build: Callable[[Mapping[str, Any]], Any], options: Mapping[str, Any]) -> Any:
    """The storage client ``build`` makes from ``options``, given the environment's proxy and CA bundle
    for its endpoint (``settings.http_environment``), resolved once; the caller's options win. The first
    client is made only to learn the endpoint, which a connection string names (nothing is sent)."""
    endpoint = build(options).url
    return build({**http_environment(endpoint), **options})
