"""The exception hierarchy.

Every error the engine raises on purpose derives from :class:`RemediationError`, so callers (the CLI,
the HTTP triggers) can turn it into a clear message without a traceback::

    RemediationError
    ├── InvalidInput            bad payload, request or parameter: the caller can fix it (HTTP 400, exit 2)
    │   ├── SignalError         an inbound payload that is malformed or not recognised
    │   └── UnknownRemediation  a request names a remediation the catalog does not have
    ├── CatalogError            catalog or routes invalid: names the file and the field
    ├── NotFound                a job, VM or resource that does not exist
    ├── ConcurrencyConflict     a compare-and-swap lost: re-read and try again
    ├── InvalidTransition       the job state machine refused a step
    ├── RemoteError             the remote CLI: a deployed app refused the call or could not be reached
    └── CloudError              talking to ARM went wrong (see ``CloudError`` subclasses)
        ├── Busy                another action run command runs on the VM (409): retry later
        ├── Throttled           429: ``retry_after`` seconds
        ├── AgentNotReady       the VM agent cannot take a run command
        ├── VmNotRunning        the VM is stopped or deallocated
        ├── OsMismatch          the command does not fit the VM's OS
        ├── Transient           5xx, dropped connection: retry with backoff
        └── Permanent           anything else ARM refused
            ├── OutcomeUnknown  a run command was accepted, then its result was lost: never send it again
            └── SetupProblem    Azure cannot be reached as configured (TLS verification, no credential,
                                401/403): fails at once, retrying changes nothing; the CLI exits 3
"""

from __future__ import annotations


class RemediationError(Exception):
    """Base class of every error the engine raises on purpose."""


class InvalidInput(RemediationError):
    """Input the caller can fix: a malformed payload, request or parameter."""


class SignalError(InvalidInput):
    """An inbound payload that is malformed or not recognised."""


class UnknownRemediation(InvalidInput):
    """A request names a remediation that is not in the catalog."""


class CatalogError(RemediationError):
    """The catalog or the routes are invalid. The message names the file and the field."""


class NotFound(RemediationError):
    """A job, VM or resource that does not exist."""


class ConcurrencyConflict(RemediationError):
    """A compare-and-swap update lost the race: re-read and decide again."""


class InvalidTransition(RemediationError):
    """The job state machine refused a transition."""


class RemoteError(RemediationError):
    """A deployed app's operator API refused a call (``status``) or could not be reached (``status`` None)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class CloudError(RemediationError):
    """Talking to Azure Resource Manager went wrong."""

    retryable = False

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class Busy(CloudError):
    """Another action run command is running on this VM (409 Conflict)."""

    retryable = True


class Throttled(CloudError):
    """ARM answered 429; wait ``retry_after`` seconds."""

    retryable = True

    def __init__(
        self, message: str, *, retry_after: float = 0.0, status: int | None = 429, code: str | None = None
    ) -> None:
        super().__init__(message, status=status, code=code)
        self.retry_after = retry_after


class AgentNotReady(CloudError):
    """The VM agent is not Ready, so no run command can reach the guest."""


class VmNotRunning(CloudError):
    """The VM is not running (stopped, deallocated, starting)."""


class OsMismatch(CloudError):
    """The run command does not fit the VM's operating system."""


class Transient(CloudError):
    """A 5xx answer or a dropped connection: worth retrying with backoff."""

    retryable = True


class Permanent(CloudError):
    """ARM refused the request for a reason retrying will not change."""


class OutcomeUnknown(Permanent):
    """ARM accepted a run command, then waiting for its result failed.

    The script may be running or may have run: its outcome is unknown and it must not be sent again
    (a classic run command has no resource to re-attach to).
    """


class SetupProblem(Permanent):
    """Azure cannot be reached as this process is set up: the TLS certificate does not verify, there is
    no credential, or the identity is not allowed (401/403). Retrying changes nothing: fix the setup."""
