"""``remediate run | jobs | show | approve | reject | retry | cancel | fleet serve``: jobs from a terminal.

Commands that move jobs (run, approve, retry, cancel) take ``--azure`` / ``--fleet FILE`` (see
``cli_engine``) and work their own queue until every job rests. ``jobs`` and ``show`` only read: they
never create the job store. A job is named by its id or a prefix of it, a VM by its id or its name.
JSON output is the job as the HTTP API shows it (camelCase, ``openapi.yaml``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from contextlib import suppress
from datetime import datetime
from typing import TYPE_CHECKING, Any, TextIO

from . import jobs, operations
from .catalog import Catalog
from .catalog_load import load_catalog
from .cli_engine import add_where, engine, read_store, work
from .cli_find import find_job, find_target
from .cli_output import dump_json, outcome_lines, short, table, write_job
from .errors import InvalidInput, NotFound, RemediationError
from .jobs import Job, outcome_kind
from .settings import Settings

if TYPE_CHECKING:
    from .services import Services

FAILED_STATES = frozenset({jobs.FAILED, jobs.TIMED_OUT})
# Names other command modules (the local console) import from here.
_work, _where = work, add_where


def _catalog(args: argparse.Namespace) -> Catalog:
    return load_catalog(getattr(args, "catalog", None) or Settings.from_env().catalog_dir)


def public(job: Job, catalog: Catalog) -> dict[str, Any]:
    """The job as shown to a person: camelCase like the API; secret parameters never printed."""
    return {**job.to_json(), "parameters": catalog.redacted(job.remediation, job.parameters)}


def _read_payloads(files: Sequence[str]) -> list[tuple[str, Any]]:
    from .cli import read_payloads

    return read_payloads(files, sys.stdin)


def cmd_run(args: argparse.Namespace, out: TextIO) -> int:
    payloads = _read_payloads(args.files)
    final = out
    if args.json:
        out = sys.stderr  # progress stays readable; stdout carries exactly one JSON object
    with engine(args, out, dry_run=args.dry_run) as services:
        admitted: list[str] = []
        for name, payload in payloads:
            missing_id = isinstance(payload, dict) and "remediation" in payload and "requestId" not in payload
            try:
                result = services.intake.submit(payload, actor=args.actor, dry_run=args.dry_run)
            except RemediationError as error:
                raise InvalidInput(f"{name}: {error}") from None
            out.write(f"{name}: {len(result.jobs)} job(s)" + (" [dry run]" if args.dry_run else ""))
            if result.resolved:
                out.write(f", resolved {len(result.resolved)}")
            out.write("\n")
            if missing_id:
                generated = result.report.signals[0].id if result.report.signals else "?"
                out.write(f"  requestId {generated} (generated: add it to {name} to make a repeat a no-op)\n")
            for note in result.report.notes:
                out.write(f"  note: {note.message}\n")
            for entry in result.jobs:
                state = "new" if entry.created else f"already known ({outcome_kind(entry.job)})"
                out.write(f"  {entry.job.id} {short(entry.job.target)} {entry.job.remediation}: {state}\n")
                if not entry.created and entry.job.terminal:
                    out.write(f"    run it again with: remediate retry {entry.job.id}\n")
                admitted.append(entry.job.id)
            for job_id in result.resolved:
                job = services.store.get(job_id)
                out.write(f"  {job_id} {short(job.target)}: {job.status} ({job.history[-1].reason})\n")
        work(services, out)
        finished = [services.store.get(job_id) for job_id in dict.fromkeys(admitted)]
        return report(finished, services.catalog, final, as_json=args.json)


def report(finished: Sequence[Job], catalog: Catalog, out: TextIO, *, as_json: bool) -> int:
    if as_json:
        dump_json({"jobs": [public(j, catalog) for j in finished]}, out)
    else:
        if finished:
            out.write("\noutcomes:\n")
        for job in finished:
            out.write(f"  {job.id}  {short(job.target)}  {job.remediation}  {outcome_kind(job).upper()}\n")
            for line in outcome_lines(job):
                out.write(f"      {line}\n")
    return 1 if any(j.status in FAILED_STATES for j in finished) else 0


def cmd_jobs(args: argparse.Namespace, out: TextIO) -> int:
    store = read_store()
    since = _parse_since(args.since) if args.since else None
    if args.limit < 0:
        raise InvalidInput(f"--limit {args.limit} must be 0 or more")
    found: list[Job] = []
    if store is not None:
        target = find_target(store, args.target) if args.target else None
        found = store.list(
            target=target, status=args.status, since=since, limit=args.limit, campaign_id=args.campaign
        )
    if args.json:
        catalog = _catalog(args)
        dump_json({"jobs": [public(j, catalog) for j in found]}, out)
        return 0
    rows: list[Sequence[Any]] = [
        ("JOB", "STATUS", "DRY RUN", "TARGET", "REMEDIATION", "UPDATED", "LAST STEP")
    ]
    rows += [
        (
            j.id,
            outcome_kind(j),
            "yes" if j.dry_run else "",
            short(j.target),
            j.remediation,
            j.updated_at[:19],
            j.history[-1].reason[:70],
        )
        for j in found
    ]
    table(rows, out, styles=(None, "status"))
    if store is None:
        out.write("no jobs yet (run one with: remediate run FILE)\n")
    return 0


def _parse_since(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"--since {text!r} is not an ISO 8601 time") from None
    if value.tzinfo is None:
        raise InvalidInput(f"--since {text!r} needs a time zone (e.g. 2026-11-25T10:00:00+00:00)")
    return value


def cmd_show(args: argparse.Namespace, out: TextIO) -> int:
    job = find_job(read_store(), args.job)
    catalog = _catalog(args)
    if args.json:
        dump_json(public(job, catalog), out)
        return 0
    write_job(job, public(job, catalog)["parameters"], out)
    return 0


def cmd_approve(args: argparse.Namespace, out: TextIO) -> int:
    with engine(args, out) as services:
        job_id = find_job(services.store, args.job).id
        job = operations.approve(
            services.store, services.queue, services.clock, job_id, actor=args.actor, reason=args.reason
        )
        out.write(f"{job.id}: approved by {args.actor}\n")
        if args.no_wait:
            return 0
        work(services, out)
        return report([services.store.get(job_id)], services.catalog, out, as_json=False)


def cmd_reject(args: argparse.Namespace, out: TextIO) -> int:
    from .services import Services

    services = Services(Settings.from_env())
    job_id = find_job(read_store(), args.job).id
    job = operations.reject(services.store, services.clock, job_id, actor=args.actor, reason=args.reason)
    _campaign_moves_on(services, job)
    out.write(f"{job.id}: {job.status} ({job.history[-1].reason})\n")
    return 0


def cmd_retry(args: argparse.Namespace, out: TextIO) -> int:
    with engine(args, out) as services:
        old = find_job(services.store, args.job)
        job, created = operations.retry(
            services.store, services.queue, services.clock, old.id, actor=args.actor, reason=args.reason
        )
        if not created:
            out.write(f"{old.id} was retried before as {job.id} ({outcome_kind(job)})\n")
            if job.terminal:
                out.write(f"  to try once more: remediate retry {job.id}\n")
                return report([job], services.catalog, out, as_json=False)
        else:
            out.write(f"{job.id}: new attempt of {old.id} ({old.remediation} on {short(old.target)})\n")
        if args.no_wait:
            return 0
        work(services, out)
        return report([services.store.get(job.id)], services.catalog, out, as_json=False)


def cmd_cancel(args: argparse.Namespace, out: TextIO) -> int:
    store = read_store()
    job = find_job(store, args.job)
    if job.status != jobs.RUNNING:
        from .services import Services

        services = Services(Settings.from_env())
        saved = operations.cancel(
            services.store, services.clock, job.id, actor=args.actor, reason=args.reason
        )
        _campaign_moves_on(services, saved)
    else:
        with engine(args, out) as services:

            def stop_run(running: Job) -> tuple[str, bool]:
                name = running.run.get("name", "")
                if running.run.get("mode") == "action":
                    return "a classic run command cannot be stopped: it runs to its end", False
                try:
                    services.compute.cancel_run(running.target, name)
                except NotFound:
                    return f"run command {name} was already gone", True
                except RemediationError as error:
                    return f"run command {name} could not be deleted ({error}): it may run to its end", False
                return f"run command {name} deleted, which stops its script", True

            saved = operations.cancel(
                services.store,
                services.clock,
                job.id,
                actor=args.actor,
                reason=args.reason,
                stop_run=stop_run,
            )
            _campaign_moves_on(services, saved)
    out.write(f"{saved.id}: {saved.status} ({saved.history[-1].reason})\n")
    return 0


def _campaign_moves_on(services: Services, job: Job) -> None:
    """A campaign job an operator ended: the job it releases takes the freed slot now."""
    if job.campaign_id:
        from .campaign_chain import on_operator_end

        on_operator_end(services, job)


def cmd_fleet_serve(args: argparse.Namespace, out: TextIO) -> int:
    from .devfleet import fleet_server

    return int(fleet_server().run_server(args.fleet, args.port))


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port number (0-65535)")
    return value


def add_parsers(commands: Any, default_actor: str) -> None:
    p = commands.add_parser("run", help="admit alerts / events / requests and run them to the end")
    p.add_argument("files", nargs="+", metavar="FILE", help="JSON payload files; - reads stdin")
    p.add_argument("--json", action="store_true", help="print the jobs as one JSON object")
    p.add_argument("--actor", default="cli", help="who is recorded as the requester (default: cli)")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="the scripts run with DRY_RUN=1: they say what they would change",
    )
    add_where(p)
    p.set_defaults(handler=cmd_run)

    p = commands.add_parser("jobs", help="list jobs, newest first")
    p.add_argument("--target", metavar="VM", help="a VM name or resource id")
    p.add_argument("--status", choices=jobs.STATES)
    p.add_argument("--campaign", metavar="ID", help="only the jobs of this campaign")
    p.add_argument("--since", metavar="ISO_TIME")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_jobs)

    p = commands.add_parser("show", help="one job: history, outcome, output")
    p.add_argument("job", help="a job id or the start of one")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_show)

    for name, handler, text in (
        ("approve", cmd_approve, "approve a job awaiting approval"),
        ("reject", cmd_reject, "reject a job awaiting approval"),
        ("retry", cmd_retry, "run an ended job again as a new job (linked to the old one)"),
        ("cancel", cmd_cancel, "stop a planned, waiting or running job"),
    ):
        p = commands.add_parser(name, help=text)
        p.add_argument("job", help="a job id or the start of one")
        p.add_argument("--reason", default="")
        p.add_argument("--actor", default=default_actor, help=f"who does it (default: {default_actor})")
        if name in ("approve", "retry"):
            p.add_argument("--no-wait", action="store_true", help="record it; do not run the job here")
        if name != "reject":
            add_where(p)
        p.set_defaults(handler=handler)

    fleet = commands.add_parser("fleet", help="the local ARM emulator")
    fleet_commands = fleet.add_subparsers(dest="fleet_command", required=True, parser_class=type(fleet))
    p = fleet_commands.add_parser("serve", help="serve a fleet over HTTPS on loopback until interrupted")
    p.add_argument("--fleet", metavar="FILE", help="fleet file (default: the demo fleet)")
    p.add_argument("--port", type=_port, default=0, help="port (0: any free port)")
    p.set_defaults(handler=cmd_fleet_serve)


def default_actor() -> str:
    import getpass

    with suppress(Exception):
        return getpass.getuser()
    return "operator"
