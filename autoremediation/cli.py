"""The ``remediate`` command.

Exit codes: 0 done; 1 the thing checked is not OK (``validate``) or a remediation did not succeed
(``run``); 2 bad input or usage, with one line on stderr and never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any, NoReturn, TextIO

from .campaign_cli import add_parser as add_campaign_parser
from .catalog import Catalog, catalog_problems, load_catalog
from .cli_jobs import _where, add_parsers, default_actor, engine
from .console.local import add_parser as add_console_parser
from .errors import RemediationError
from .routing import Route, load_routes, routes_problems
from .settings import Settings

EXIT_OK, EXIT_NOT_OK, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad command line or unreadable input: exit 2 with one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def _read_payloads(files: Sequence[str], stdin: TextIO) -> list[tuple[str, Any]]:
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


def cmd_catalog(args: argparse.Namespace, out: TextIO) -> int:
    catalog, _ = _catalog_and_routes(args)
    entries = [catalog.remediations[k].summary() for k in sorted(catalog.remediations)]
    if args.json:
        json.dump({"remediations": entries}, out, indent=2)
        out.write("\n")
        return EXIT_OK
    rows = [("ID", "RISK", "OS", "CONDITIONS", "TITLE")]
    rows += [
        (
            e["id"],
            e["risk"] + (" (approval)" if e["approvalRequired"] else ""),
            ",".join(e["os"]),
            ",".join(e["conditions"]),
            e["title"],
        )
        for e in entries
    ]
    _table(rows, out)
    return EXIT_OK


def cmd_validate(args: argparse.Namespace, out: TextIO) -> int:
    problems, remediations = catalog_problems(args.catalog)
    # Routes are checked against what did load, so one run lists every problem of both files.
    catalog = Catalog(folder=Path(args.catalog), remediations=remediations)
    route_problems, routes = routes_problems(args.catalog, catalog)
    problems += route_problems
    for problem in problems:
        out.write(f"error: {problem}\n")
    if problems:
        out.write(f"{len(problems)} problem(s)\n")
        return EXIT_NOT_OK
    out.write(f"ok: {len(remediations)} remediations, {len(routes)} routes\n")
    return EXIT_OK


def cmd_plan(args: argparse.Namespace, out: TextIO) -> int:
    from .evidence import evidence_summary
    from .planning import Planner, PlanReport

    payloads = _read_payloads(args.files, sys.stdin)
    catalog, routes = _catalog_and_routes(args)
    report = PlanReport()
    with ExitStack() as stack:
        detect = None
        services = None
        named = bool(getattr(args, "azure", False) or getattr(args, "fleet", None))
        if named or any(_needs_detector(payload, catalog, routes) for _, payload in payloads):
            # Only what needs a look at Azure (NSG lockout), or a named ARM, starts a fleet or reads ARM.
            services = stack.enter_context(engine(args))
            detect = services.detect
        planner = Planner(catalog, routes, detect=detect)
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
    data = report.to_dict()
    out.write(f"{len(data['signals'])} signal(s), {len(data['plans'])} plan(s)\n")
    for signal in data["signals"]:
        targets = ", ".join(t.rsplit("/", 1)[-1] for t in signal["targets"]) or "-"
        out.write(f"  {signal['source']:<6} {signal['type']} [{signal['state'] or '-'}] -> {targets}\n")
    if data["plans"]:
        rows = [("TARGET", "REMEDIATION", "PARAMETERS", "DECISION", "REASON")]
        rows += [
            (
                p["target"].rsplit("/", 1)[-1],
                p["remediation"] or p["condition"],
                " ".join(f"{k}={v}" for k, v in p["parameters"].items()) or "-",
                p["decision"],
                p["reason"],
            )
            for p in data["plans"]
        ]
        out.write("\n")
        _table(rows, out)
        for p in data["plans"]:
            if why := evidence_summary(p.get("evidence")):
                out.write(f"why {p['target'].rsplit('/', 1)[-1]}: {why}\n")
            if p.get("unchecked"):
                out.write(f"not checked for {p['target'].rsplit('/', 1)[-1]}: {', '.join(p['unchecked'])}")
                out.write(f" ({p['uncheckedWhy']})\n" if p.get("uncheckedWhy") else "\n")
    for note in data["notes"]:
        out.write(f"note: {note['message']}\n")
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


def _needs_detector(payload: Any, catalog: Catalog, routes: Sequence[Route]) -> bool:
    from .routing import route_signal
    from .signals import parse

    try:
        return any(route_signal(s, routes, catalog).detector for s in parse(payload))
    except RemediationError:
        return False  # reported with its file name when planned


def _table(rows: Sequence[Sequence[str]], out: TextIO) -> None:
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        out.write("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
        out.write("\n")


def build_parser(settings: Settings, resources: ExitStack | None = None) -> argparse.ArgumentParser:
    """The parser; ``resources`` keeps what a command opens (a local fleet) until ``main`` returns."""
    parser = _Parser(prog="remediate", description="Event-driven auto-remediation for Azure VMs.")
    parser.add_argument(
        "--catalog",
        default=settings.catalog_dir,
        metavar="DIR",
        help="the catalog folder (default: REMEDIATION_CATALOG_DIR or the shipped remediations/)",
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = commands.add_parser("catalog", help="list the remediations")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_catalog)

    p = commands.add_parser("validate", help="check the catalog and the routes (exit 1 on any problem)")
    p.set_defaults(handler=cmd_validate)

    p = commands.add_parser("plan", help="what would these alerts / events / requests do? (executes nothing)")
    p.add_argument("files", nargs="+", metavar="FILE", help="JSON payload files; - reads stdin")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    _where(p)
    p.set_defaults(handler=cmd_plan)

    add_parsers(commands, default_actor())
    add_console_parser(commands, default_actor(), _where)
    held = resources if resources is not None else ExitStack()
    add_campaign_parser(commands, services_factory=lambda args: held.enter_context(engine(args)))
    return parser


Handler = Callable[[argparse.Namespace, TextIO], int]


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    try:
        with ExitStack() as resources:
            settings = Settings.from_env()
            args = build_parser(settings, resources).parse_args(argv)
            handler: Handler = args.handler
            return handler(args, out)
    except UsageError as error:
        print(str(error).splitlines()[0] if str(error) else "usage error", file=sys.stderr)
        return EXIT_USAGE
    except RemediationError as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        print(f"remediate: {first}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
