"""``remediate run | jobs | show | approve | reject | fleet serve``: the engine driven from a terminal.

Where ARM is: ``--azure`` talks to Azure Resource Manager with ``DefaultAzureCredential`` (or the managed
identity named by ``AZURE_CLIENT_ID``); otherwise a loopback ``REMEDIATION_ARM_ENDPOINT`` (a running
``remediate fleet serve``) is used; otherwise a local fleet is started in-process for the command
(``--fleet FILE``, default: the demo fleet). Jobs live in the SQLite file of ``REMEDIATION_SQLITE_PATH``
(or Table Storage, per settings); the CLI works its own queue until every job rests.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import replace
from datetime import datetime
from typing import Any, TextIO

from . import jobs, operations
from .catalog import Catalog
from .errors import InvalidInput, RemediationError
from .jobs import Job, Transition
from .services import Services
from .settings import Settings
from .worker import drain

LOCAL_POLL_SECONDS = 0.25
FAILED_STATES = frozenset({jobs.FAILED, jobs.TIMED_OUT})


@contextmanager
def engine(args: argparse.Namespace, out: TextIO | None = None) -> Iterator[Services]:
    """Services for one CLI command, with an in-process local fleet when no ARM is named."""
    settings = Settings.from_env()
    server = None
    if getattr(args, "azure", False):
        if settings.arm_is_local:
            raise InvalidInput("--azure: REMEDIATION_ARM_ENDPOINT points at a local fleet, not Azure")
    elif getattr(args, "fleet", None) or not settings.arm_is_local:
        from .localfleet.server import FleetServer

        server = FleetServer(getattr(args, "fleet", None))
        settings = replace(
            settings,
            arm_endpoint=server.base_url,
            arm_ca_bundle=server.ca_bundle,
            subscription_id=server.subscription,
        )
    if settings.arm_is_local:
        # Local runs finish in moments: poll them like a person watching, not like a fleet-wide worker.
        settings = replace(settings, poll_seconds=min(settings.poll_seconds, LOCAL_POLL_SECONDS))
    printer = _progress_printer(out) if out is not None else None
    services = Services(settings, on_transition=printer)
    try:
        yield services
    finally:
        if server is not None:
            server.stop()


def _progress_printer(out: TextIO) -> Any:
    def show(job: Job, transition: Transition) -> None:
        out.write(
            f"  {_short(job.target):<18} {job.remediation:<26} {transition.source or '-'} -> "
            f"{transition.target}: {transition.reason}\n"
        )
        out.flush()

    return show


def _short(resource_id: str) -> str:
    return resource_id.rstrip("/").rsplit("/", 1)[-1]


def _work(services: Services) -> None:
    """Run the queue until every job rests (ended, or waiting for an operator)."""
    queue = services.queue
    due_in = getattr(queue, "due_in", None)

    def wait(seconds: float) -> None:
        import time

        time.sleep(min(max(seconds, 0.0), 5.0))

    drain(services.runner, queue, wait=wait, due_in=due_in)


def _read_payloads(files: Sequence[str]) -> list[tuple[str, Any]]:
    from .cli import _read_payloads as read

    return read(files, sys.stdin)


def cmd_run(args: argparse.Namespace, out: TextIO) -> int:
    payloads = _read_payloads(args.files)
    final = out
    if args.json:
        out = sys.stderr  # progress stays readable; stdout carries exactly one JSON object
    with engine(args, out) as services:
        admitted: list[str] = []
        for name, payload in payloads:
            try:
                result = services.intake.submit(payload, actor=args.actor)
            except RemediationError as error:
                raise InvalidInput(f"{name}: {error}") from None
            out.write(f"{name}: {len(result.jobs)} job(s)")
            if result.resolved:
                out.write(f", resolved {len(result.resolved)}")
            out.write("\n")
            for note in result.report.notes:
                out.write(f"  note: {note.message}\n")
            for entry in result.jobs:
                state = "new" if entry.created else f"already known ({entry.job.status})"
                out.write(f"  {entry.job.id} {_short(entry.job.target)} {entry.job.remediation}: {state}\n")
                admitted.append(entry.job.id)
            for job_id in result.resolved:
                job = services.store.get(job_id)
                out.write(f"  {job_id} {_short(job.target)}: {job.status} ({job.history[-1].reason})\n")
        _work(services)
        finished = [services.store.get(job_id) for job_id in dict.fromkeys(admitted)]
        return _report(finished, services.catalog, final, as_json=args.json)


def public(job: Job, catalog: Catalog) -> dict[str, Any]:
    """The job as shown to a person: secret parameters (upload SAS URLs) are never printed."""
    return {**job.to_dict(), "parameters": catalog.redacted(job.remediation, job.parameters)}


def _report(finished: Sequence[Job], catalog: Catalog, out: TextIO, *, as_json: bool) -> int:
    if as_json:
        json.dump({"jobs": [public(j, catalog) for j in finished]}, out, indent=2)
        out.write("\n")
    else:
        if finished:
            out.write("\noutcomes:\n")
        for job in finished:
            out.write(f"  {job.id}  {_short(job.target)}  {job.remediation}  {job.status.upper()}\n")
            for line in _outcome_lines(job):
                out.write(f"      {line}\n")
    return 1 if any(j.status in FAILED_STATES for j in finished) else 0


def _outcome_lines(job: Job) -> list[str]:
    lines = [f"why: {job.history[-1].reason}"]
    if job.status == jobs.AWAITING_APPROVAL:
        lines.append(f"approve with: remediate approve {job.id}   (expires {job.approval_expires_at})")
    control = job.outcome.get("controlPlane") or {}
    for step, record in control.items():
        for nsg in record.get("nsgs", []):
            rules = ", ".join(nsg.get("rules", [])) or "-"
            lines.append(
                f"{step}: {nsg['action']} {rules} in {_short(nsg['nsg'])}"
                + (f" above {nsg['blockingRule']}" if nsg.get("blockingRule") else "")
            )
    result = job.outcome.get("result")
    if isinstance(result, dict):
        lines.append(
            f"script: {result.get('status')}  before {_compact(result.get('before'))}"
            f"  after {_compact(result.get('after'))}"
        )
    if job.outcome.get("exitCode") is not None:
        lines.append(f"exit code {job.outcome['exitCode']}, run {job.outcome.get('runSeconds', '?')} s")
    if job.dry_run:
        lines.append("dry run: nothing was changed")
    return lines


def _compact(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={v}" for k, v in value.items()) + "}"
    return json.dumps(value)


def cmd_jobs(args: argparse.Namespace, out: TextIO) -> int:
    services = Services(Settings.from_env())
    since = _parse_since(args.since) if args.since else None
    found = services.store.list(target=args.target, status=args.status, since=since, limit=args.limit)
    if args.json:
        json.dump({"jobs": [public(j, services.catalog) for j in found]}, out, indent=2)
        out.write("\n")
        return 0
    from .cli import _table

    rows = [("JOB", "STATUS", "TARGET", "REMEDIATION", "UPDATED", "LAST STEP")]
    rows += [
        (j.id, j.status, _short(j.target), j.remediation, j.updated_at[:19], j.history[-1].reason[:70])
        for j in found
    ]
    _table(rows, out)
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
    from .evidence import evidence_lines

    services = Services(Settings.from_env())
    job = services.store.get(args.job)
    if args.json:
        json.dump(public(job, services.catalog), out, indent=2)
        out.write("\n")
        return 0
    out.write(f"{job.id}  {job.status.upper()}\n")
    out.write(f"  target       {job.target}\n  remediation  {job.remediation} ({job.condition})\n")
    out.write(f"  parameters   {_compact(public(job, services.catalog)['parameters'])}\n")
    out.write(f"  requested by {job.requested_by}: {job.reason}\n")
    if job.dry_run:
        out.write("  dry run\n")
    if job.evidence:
        out.write("evidence:\n" + "".join(f"  {line}\n" for line in evidence_lines(job.evidence)))
    out.write("history:\n")
    for t in job.history:
        out.write(f"  {t.at[:19]}  {t.source or '-':>17} -> {t.target:<17} {t.actor}: {t.reason}\n")
    for note_text in job.notes:
        out.write(f"  note {note_text}\n")
    out.write("outcome:\n")
    for line in _outcome_lines(job):
        out.write(f"  {line}\n")
    tail = job.outcome.get("outputTail")
    if tail:
        out.write("output (tail):\n" + "".join(f"  | {line}\n" for line in str(tail).splitlines()[-15:]))
    return 0


def cmd_approve(args: argparse.Namespace, out: TextIO) -> int:
    with engine(args, out) as services:
        job = operations.approve(
            services.store, services.queue, services.clock, args.job, actor=args.actor, reason=args.reason
        )
        out.write(f"{job.id}: approved by {args.actor}\n")
        if args.no_wait:
            return 0
        _work(services)
        return _report([services.store.get(args.job)], services.catalog, out, as_json=False)


def cmd_reject(args: argparse.Namespace, out: TextIO) -> int:
    services = Services(Settings.from_env())
    job = operations.reject(services.store, services.clock, args.job, actor=args.actor, reason=args.reason)
    out.write(f"{job.id}: {job.status} ({job.history[-1].reason})\n")
    return 0


def cmd_fleet_serve(args: argparse.Namespace, out: TextIO) -> int:
    from .localfleet.server import run_server

    return run_server(args.fleet, args.port)


def _where(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--azure",
        action="store_true",
        help="talk to Azure Resource Manager (DefaultAzureCredential / managed identity)",
    )
    group.add_argument(
        "--fleet", metavar="FILE", help="start a local fleet from this fleet file for the command"
    )


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
    _where(p)
    p.set_defaults(handler=cmd_run)

    p = commands.add_parser("jobs", help="list jobs, newest first")
    p.add_argument("--target", metavar="VM_ID")
    p.add_argument("--status", choices=jobs.STATES)
    p.add_argument("--since", metavar="ISO_TIME")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_jobs)

    p = commands.add_parser("show", help="one job: history, outcome, output")
    p.add_argument("job")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_show)

    for name, handler, verb in (("approve", cmd_approve, "approve"), ("reject", cmd_reject, "reject")):
        p = commands.add_parser(name, help=f"{verb} a job awaiting approval")
        p.add_argument("job")
        p.add_argument("--reason", default="")
        p.add_argument("--actor", default=default_actor, help=f"who approves (default: {default_actor})")
        if name == "approve":
            p.add_argument(
                "--no-wait", action="store_true", help="record the approval, do not run the job here"
            )
            _where(p)
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
