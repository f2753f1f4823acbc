"""SDK errors sorted into what retrying can mend (Transient) and what it cannot (SetupProblem)."""

from __future__ import annotations

import ssl
from typing import Any

import pytest
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ServiceRequestError

from autoremediation.azure.calls import Retrier, map_error
from autoremediation.errors import NotFound, Permanent, SetupProblem, Transient


class Response:
    def __init__(self, status: int, body: str = "") -> None:
        self.status_code = status
        self.reason = "x"
        self.headers: dict[str, str] = {}
        self.content_type = "application/json"
        self._body = body

    def text(self, encoding: Any = None) -> str:
        return self._body

    def body(self) -> bytes:
        return self._body.encode()


def http_error(status: int, code: str = "", message: str = "refused") -> HttpResponseError:
    body = f'{{"error": {{"code": "{code}", "message": "{message}"}}}}' if code else ""
    return HttpResponseError(response=Response(status, body))  # type: ignore[arg-type]


def tls_error() -> ServiceRequestError:
    cause = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    cause.verify_message = "unable to get local issuer certificate"
    try:
        try:
            raise cause
        except ssl.SSLError as inner:
            raise ServiceRequestError("Cannot connect to host", error=inner) from inner
    except ServiceRequestError as error:
        return error


def test_a_certificate_that_does_not_verify_is_a_setup_problem_naming_the_settings() -> None:
    error = map_error(tls_error(), "reading the VM")
    assert isinstance(error, SetupProblem)
    assert str(error) == (
        "reading the VM: the TLS certificate of the ARM endpoint does not verify (unable to get local issuer "
        "certificate): check REMEDIATION_ARM_ENDPOINT and REMEDIATION_ARM_CA_BUNDLE"
    )


def test_a_dropped_connection_stays_transient() -> None:
    assert isinstance(map_error(ServiceRequestError("connection reset"), "x"), Transient)


@pytest.mark.parametrize(
    ("status", "hint"),
    [(401, "the identity is not signed in"), (403, "the identity lacks a role for this")],
)
def test_401_and_403_are_setup_problems(status: int, hint: str) -> None:
    error = map_error(http_error(status, "AuthorizationFailed", "no access"), "reading the VM")
    assert isinstance(error, SetupProblem) and error.status == status
    assert str(error).endswith(f"({hint})")


def test_no_credential_is_a_setup_problem() -> None:
    error = map_error(ClientAuthenticationError("DefaultAzureCredential failed\nAttempted: ..."), "x")
    assert isinstance(error, SetupProblem)
    assert "\n" not in str(error) and "az login" in str(error)


def test_404_is_not_found_and_a_409_refusal_stays_permanent() -> None:
    assert isinstance(map_error(http_error(404, "ResourceNotFound"), "x"), NotFound)
    refused = map_error(http_error(400, "BadRequest"), "x")
    assert isinstance(refused, Permanent) and not isinstance(refused, SetupProblem)


def test_the_retrier_does_not_retry_a_setup_problem() -> None:
    calls, sleeps = [], []

    def call() -> None:
        calls.append(1)
        raise tls_error()

    with pytest.raises(SetupProblem):
        Retrier(sleep=sleeps.append).call("reading the VM", call)
    assert (len(calls), sleeps) == (1, [])
