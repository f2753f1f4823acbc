"""The ``remediate`` command.

Exit codes:

* 0 done;
* 1 the thing checked is not OK (``validate``), a remediation did not succeed (``run``), a campaign stopped;
* 2 bad input or usage: one line on stderr, never a traceback;
* 3 the environment is not set up to reach Azure (no credential, a TLS certificate that does not
  verify, access denied, ARM unreachable): one line on stderr; fix the setup and run the command again;
* 130 interrupted (Ctrl-C), with the command that picks the work up again when there is one;
* 141 the reader of the output went away (``remediate jobs --json | head``): no traceback, no message.

Global options come before the command (``remediate --catalog DIR validate``). Commands live in
``cli_jobs`` (jobs), ``campaign_cli`` (campaigns) and ``cli_authoring`` (the catalog).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any, NoReturn, TextIO

from .campaign_cli import add_parser as add_campaign_parser
from .catalog import Catalog
from .catalog_load import load_catalog
from .cli_authoring import add_parsers as add_authoring_parsers
from .cli_engine import add_where, configure_logging, engine
from .cli_jobs import add_parsers, default_actor
from .cli_output import write_plan
from .console.local import add_parser as add_console_parser
from .errors import RemediationError, SetupProblem
from .remote import add_app_option, remote_requested
from .routing import Route, load_routes
from .settings import Settings

EXIT_OK, EXIT_NOT_OK, EXIT_USAGE, EXIT_ENVIRONMENT, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as a shell reports a command whose reader went away
DISTRIBUTION = "azure-vm-autoremediation"


class UsageError(Exception):
    """Bad command line or unreadable input: exit 2 with one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def read_payloads(files: Sequence[str], stdin: TextIO) -> list[tuple[str, Any]]:
    payloads = []
    for name in files:
        try:
            text = stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
        except OSError as error:
            raise UsageError(f"{name}: cannot read: {error.strerror}") from None
        except UnicodeDecodeError:
            raise UsageError(f"{name}: not UTF-8 text") from None
        try:
            payloads.append((name, json.loads(text)))
        except json.JSONDecodeError as error:
            raise UsageError(f"{name}: not valid JSON: {error.msg} at line {error.lineno}") from None
    return payloads


def _catalog_and_routes(args: argparse.Namespace) -> tuple[Catalog, tuple[Route, ...]]:
    catalog = load_catalog(args.catalog)
    return catalog, load_routes(args.catalog, catalog)


def cmd_plan(args: argparse.Namespace, out: TextIO) -> int:
    from .planning import Planner, PlanReport

    payloads = read_payloads(args.files, sys.stdin)
    catalog, routes = _catalog_and_routes(args)
    report = PlanReport()
    with ExitStack() as stack:
        detect = gate = None
        services = None
        named = bool(getattr(args, "azure", False) or getattr(args, "fleet", None))
        if named or any(_needs_azure(payload, catalog, routes) for _, payload in payloads):
            # Only what needs a look at Azure (an alert to confirm, an NSG lockout), or a named ARM, starts
            # a fleet or reads ARM: alerts are confirmed with Azure Monitor exactly as the webhook does.
            services = stack.enter_context(engine(args))
            detect, gate = services.detect, services.gate
        planner = Planner(catalog, routes, detect=detect, gate=gate)
        for name, payload in payloads:
            try:
                report = report + planner.plan_payload(payload)
            except RemediationError as error:
                raise UsageError(f"{name}: {error}") from None
        report = _with_guards(report, services, catalog)
    if args.json:
        json.dump(report.to_dict(), out, indent=2)
        out.write("\n")
        return EXIT_OK
    write_plan(report.to_dict(), out)
    return EXIT_OK


def _with_guards(report: Any, services: Any, catalog: Catalog) -> Any:
    """Plan like run: the runtime guards on fresh facts when ARM is read, else marked unchecked."""
    from .preview import NO_JOBS, static_only, with_runtime_guards
    from .runner import guard_settings

    if services is None:
        return static_only(report, "no ARM was read (name one with --azure or --fleet)")
    settings = services.settings
    store: Any
    if settings.job_store == "sqlite" and not Path(settings.sqlite_path).exists():
        store = NO_JOBS  # no job was ever recorded here: no cooldown, no breaker (and plan creates no file)
    else:
        try:
            store = services.store
        except RemediationError:
            store = None
    return with_runtime_guards(
        report, catalog, services.compute, store, guard_settings(services.settings), services.clock.now()
    )


def _needs_azure(payload: Any, catalog: Catalog, routes: Sequence[Route]) -> bool:
    from .routing import route_signal
    from .signals import parse

    try:
        return any(s.source == "alert" or route_signal(s, routes, catalog).detector for s in parse(payload))
    except RemediationError:
        return False  # reported with its file name when planned


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed(DISTRIBUTION)
    except PackageNotFoundError:
        return "unknown (not installed as a package)"


def add_global_options(parser: argparse.ArgumentParser, settings: Settings) -> None:
    """Options every command shares; they come before the command name."""
    parser.add_argument("--version", action="version", version=f"remediate {version()}")
    parser.add_argument(
        "--catalog",
        default=settings.catalog_dir,
        metavar="DIR",
        help="the catalog folder (default: REMEDIATION_CATALOG_DIR or the shipped remediations/)",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="show the Azure SDK's own log lines (credential probing)"
    )
    add_app_option(parser, settings)


def build_parser(settings: Settings, resources: ExitStack | None = None) -> argparse.ArgumentParser:
    """The parser; ``resources`` keeps what a command opens (a local fleet) until ``main`` returns."""
    parser = _Parser(prog="remediate", description="Event-driven auto-remediation for Azure VMs.")
    add_global_options(parser, settings)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    add_authoring_parsers(commands)

    p = commands.add_parser("plan", help="what would these alerts / events / requests do? (executes nothing)")
    p.add_argument("files", nargs="+", metavar="FILE", help="JSON payload files; - reads stdin")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_where(p)
    p.set_defaults(handler=cmd_plan)

    add_parsers(commands, default_actor())
    add_console_parser(commands, default_actor(), add_where)
    held = resources if resources is not None else ExitStack()
    add_campaign_parser(
        commands, services_factory=lambda args: held.enter_context(engine(args, queue=_queue()))
    )
    return parser


def _queue() -> Any:
    from .store.memory_queue import InProcessQueue

    return InProcessQueue()


Handler = Callable[[argparse.Namespace, TextIO], int]


def _first_line(error: BaseException) -> str:
    text = str(error)
    return text.splitlines()[0] if text else type(error).__name__


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    try:
        with ExitStack() as resources:
            settings = Settings.from_env()
            args = build_parser(settings, resources).parse_args(argv)
            configure_logging(args.verbose)
            if remote_requested(args):
                from .remote import run_remote

                return run_remote(args, settings, out)
            handler: Handler = args.handler
            return handler(args, out)
    except UsageError as error:
        print(_first_line(error) if str(error) else "usage error", file=sys.stderr)
        return EXIT_USAGE
    except SetupProblem as error:
        print(f"remediate: {_first_line(error)}", file=sys.stderr)
        return EXIT_ENVIRONMENT
    except RemediationError as error:
        print(f"remediate: {_first_line(error)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        # A campaign prints its own --resume line; other commands leave unfinished jobs on record.
        print(
            "\nremediate: interrupted; unfinished jobs stay on record (remediate jobs), "
            "stop one with: remediate cancel JOB",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _quiet_broken_pipe()
        return EXIT_BROKEN_PIPE


def _quiet_broken_pipe() -> None:
    """The reader went away (``remediate jobs --json | head``): stop without a traceback.

    Python flushes stdout once more at exit, which would raise again: point it at /dev/null first.
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


if __name__ == "__main__":
    raise SystemExit(main())
