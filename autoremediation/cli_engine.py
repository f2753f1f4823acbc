"""Where a ``remediate`` command finds ARM and its jobs.

ARM: ``--azure`` talks to Azure Resource Manager with ``DefaultAzureCredential`` (or the managed identity
named by ``AZURE_CLIENT_ID``); otherwise a loopback ``REMEDIATION_ARM_ENDPOINT`` (a running
``remediate fleet serve``) is used; otherwise a local fleet is started in-process for the command
(``--fleet FILE``, default: the demo fleet). Before the first job moves, the command checks that ARM can
be reached as set up (a token for Azure; a TLS handshake with the endpoint's CA), so a wrong CA bundle or a
missing sign-in is one line and exit 3, not minutes of retries.

Jobs: the SQLite file of ``REMEDIATION_SQLITE_PATH``, by default ``jobs.db`` in the per-user state folder
(``$XDG_STATE_HOME/autoremediation``, else ``~/.local/state/autoremediation``), or Table Storage per the
settings. Commands that only read never create that file.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

from .errors import InvalidInput, SetupProblem
from .jobs import Job, Transition
from .ports import JobStore
from .services import Services
from .settings import Settings
from .worker import drain

LOCAL_POLL_SECONDS = 0.25
PREFLIGHT_TIMEOUT_SECONDS = 10.0


def add_where(parser: argparse.ArgumentParser) -> None:
    """``--azure`` / ``--fleet FILE``: the same pair on every command that talks to ARM."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--azure",
        action="store_true",
        help="talk to Azure Resource Manager (DefaultAzureCredential / managed identity)",
    )
    group.add_argument(
        "--fleet", metavar="FILE", help="start a local fleet from this fleet file for the command"
    )


@contextmanager
def engine(
    args: argparse.Namespace,
    out: TextIO | None = None,
    *,
    dry_run: bool = False,
    settings: Settings | None = None,
    queue: Any = None,
) -> Iterator[Services]:
    """Services for one CLI command, with an in-process local fleet when no ARM is named."""
    settings = settings or Settings.from_env()
    catalog = getattr(args, "catalog", None)
    if catalog:
        settings = replace(settings, catalog_dir=catalog)
    server = None
    if getattr(args, "azure", False):
        if settings.arm_is_local:
            raise InvalidInput("--azure: REMEDIATION_ARM_ENDPOINT points at a local fleet, not Azure")
    elif getattr(args, "fleet", None) or not settings.arm_is_local:
        from .devfleet import fleet_server

        server = fleet_server().FleetServer(getattr(args, "fleet", None))
        settings = replace(
            settings,
            arm_endpoint=server.base_url,
            arm_ca_bundle=server.ca_bundle,
            subscription_id=server.subscription,
        )
    clock = None
    if settings.arm_is_local:
        # Local runs finish in moments: poll them like a person watching, not like a fleet-wide worker.
        settings = replace(settings, poll_seconds=min(settings.poll_seconds, LOCAL_POLL_SECONDS))
    if dry_run:
        settings = replace(settings, dry_run=True)
    try:
        preflight(settings)
        if settings.arm_is_local:
            clock, deployed = _local_deployment(settings)
            settings = replace(settings, trusted_alert_rules=(*settings.trusted_alert_rules, *deployed))
        printer = progress_printer(out) if out is not None else None
        services = Services(settings, clock=clock, on_transition=printer, queue=queue)
        yield services
    finally:
        if server is not None:
            server.stop()


def preflight(settings: Settings) -> None:
    """SetupProblem (exit 3) when ARM cannot be reached as set up; retrying would not change that."""
    parts = urlsplit(settings.arm_endpoint)
    if parts.scheme != "https" or not parts.hostname:
        raise InvalidInput(
            f"setting REMEDIATION_ARM_ENDPOINT={settings.arm_endpoint!r} must be an https:// URL"
        )
    if settings.arm_is_local:
        _tls_handshake(parts.hostname, parts.port or 443, settings.arm_ca_bundle)
        return
    from .azure.calls import NO_CREDENTIAL, credential_failure
    from .azure.clients import ARM_SCOPE, credential

    try:
        credential(settings).get_token(ARM_SCOPE)
    except Exception as error:  # azure-identity raises several types; each means "no usable sign-in"
        if credential_failure(error) or type(error).__module__.startswith("azure.identity"):
            raise SetupProblem(NO_CREDENTIAL) from None
        raise SetupProblem(f"cannot get a token for Azure Resource Manager: {_first_line(error)}") from None
    if settings.arm_ca_bundle:
        _tls_handshake(parts.hostname, parts.port or 443, settings.arm_ca_bundle)


def _tls_handshake(host: str, port: int, ca_bundle: str | None) -> None:
    import socket
    import ssl

    try:
        context = ssl.create_default_context(cafile=ca_bundle) if ca_bundle else ssl.create_default_context()
    except (OSError, ssl.SSLError) as error:
        raise SetupProblem(
            f"REMEDIATION_ARM_CA_BUNDLE={ca_bundle}: not a readable CA bundle ({error})"
        ) from None
    try:
        with (
            socket.create_connection((host, port), timeout=PREFLIGHT_TIMEOUT_SECONDS) as raw,
            context.wrap_socket(raw, server_hostname=host),
        ):
            return
    except ssl.SSLCertVerificationError as error:
        raise SetupProblem(
            f"the TLS certificate of https://{host}:{port} does not verify ({error.verify_message}): "
            "check REMEDIATION_ARM_ENDPOINT and REMEDIATION_ARM_CA_BUNDLE"
        ) from None
    except OSError as error:
        raise SetupProblem(f"cannot reach ARM at https://{host}:{port}: {error.strerror or error}") from None


def progress_printer(out: TextIO) -> Callable[[Job, Transition], None]:
    from .cli_output import short

    def show(job: Job, transition: Transition) -> None:
        out.write(
            f"  {short(job.target):<18} {job.remediation:<26} {transition.source or '-'} -> "
            f"{transition.target}: {transition.reason}\n"
        )
        out.flush()

    return show


def work(services: Services, out: TextIO | None = None) -> None:
    """Run the queue until every job rests (ended, or waiting for an operator); show retries as they come."""

    def wait(seconds: float) -> None:
        time.sleep(min(max(seconds, 0.0), 5.0))

    def on_step(step: Any) -> None:
        if out is not None and step.note.startswith("retry "):
            from .cli_output import short

            out.write(f"  {short(step.job.target):<18} {step.job.remediation:<26} {step.note}\n")
            out.flush()

    drain(
        services.runner,
        services.queue,
        wait=wait,
        due_in=getattr(services.queue, "due_in", None),
        on_step=on_step,
    )


def read_store(settings: Settings | None = None) -> JobStore | None:
    """The job store for a command that only reads; None when the SQLite file does not exist yet."""
    settings = settings or Settings.from_env()
    if settings.job_store == "sqlite" and not Path(settings.sqlite_path).is_file():
        return None
    return Services(settings).store


class _Stderr(logging.Handler):
    """Writes to ``sys.stderr`` as it is when the record is emitted (tests and callers swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        import sys

        with suppress(OSError, ValueError):
            sys.stderr.write(self.format(record) + "\n")


def configure_logging(verbose: bool = False) -> None:
    """One line per retry of an ARM call on stderr; the Azure SDK's own lines only with ``-v``.

    azure-identity logs a warning per credential it tries: a person needs one line, not fifteen.
    """
    level = logging.INFO if verbose else logging.ERROR
    for name in ("azure", "azure.identity", "azure.core.pipeline.policies.http_logging_policy"):
        logging.getLogger(name).setLevel(level)
    retries = logging.getLogger("autoremediation.azure.calls")
    if not any(getattr(h, "_remediate_cli", False) for h in retries.handlers):
        handler = _Stderr()
        handler.setFormatter(logging.Formatter("  retrying: %(message)s"))
        handler._remediate_cli = True  # type: ignore[attr-defined]
        retries.addHandler(handler)
        retries.setLevel(logging.INFO)


def _first_line(error: BaseException) -> str:
    text = str(error)
    return text.splitlines()[0] if text else type(error).__name__


class _OffsetClock:
    def __init__(self, offset: timedelta) -> None:
        self.offset = offset

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset


def _local_deployment(settings: Settings) -> tuple[_OffsetClock, tuple[str, ...]]:
    """A local fleet stands for a deployment: its wall clock, and the alert rules its infra deployed
    (trusted as infra/'s rules are in Azure). Read from the fleet's admin endpoint."""
    import json
    import ssl
    import urllib.request

    context = ssl.create_default_context(cafile=settings.arm_ca_bundle) if settings.arm_ca_bundle else None
    try:
        # An https:// URL: Settings.arm_is_local holds only for a loopback endpoint clients accept.
        with urllib.request.urlopen(  # noqa: S310
            f"{settings.arm_endpoint}/_admin/deployment", timeout=10, context=context
        ) as answer:
            data = json.load(answer)
        fleet_now = datetime.fromisoformat(str(data["now"]).replace("Z", "+00:00"))
        rules = tuple(str(rule) for rule in data.get("trustedAlertRules") or ())
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise InvalidInput(
            f"local fleet at {settings.arm_endpoint}: cannot read its deployment: {error}"
        ) from None
    return _OffsetClock(fleet_now - datetime.now(UTC)), rules
