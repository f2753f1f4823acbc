"""``remediate campaign``: run one remediation over many VMs from the command line, in this process.

The command starts (or, with ``--resume``, picks up) a campaign and drives it here: the runner works the
in-process queue and each job that ends releases the next one. A progress bar on
stderr shows where it is. Exit 0 when the campaign completed within its error budget, 1 when it stopped
on errors (or waits on approvals), 2 on bad input with one line on stderr, 3 when Azure cannot be reached as
set up, 130 on Ctrl-C (with the ``--resume`` command that picks the campaign up again). ``--azure`` /
``--fleet FILE`` say where ARM is, as for every command that talks to it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from . import campaigns
from .campaign_drive import drive
from .campaign_view import Progress, outcome_breakdown, render, summary
from .errors import InvalidInput, NotFound, RemediationError

if TYPE_CHECKING:
    from .services import Services

__all__ = ["Progress", "add_parser", "drive", "outcome_breakdown", "render", "run_campaign", "summary"]

EXIT_OK, EXIT_STOPPED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
ServicesFactory = Callable[[argparse.Namespace], "Services"]


def default_services(args: argparse.Namespace) -> Services:
    """Store and ARM from the environment (SQLite, Azure or the local fleet); the queue in memory."""
    from .services import Services
    from .settings import Settings
    from .store.memory_queue import InProcessQueue

    settings = Settings.from_env()
    catalog = getattr(args, "catalog", None)
    if catalog:
        settings = replace(settings, catalog_dir=catalog)
    return Services(settings, queue=InProcessQueue())


def add_parser(subparsers: Any, services_factory: ServicesFactory | None = None) -> argparse.ArgumentParser:
    """Register ``campaign`` on the ``remediate`` sub-commands."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "campaign",
        help="run a remediation over many VMs with a concurrency cap and an error budget",
        description="Run one remediation over every VM a selector names. --tag filters the VMs of "
        "--resource-group / --subscription (or of AZURE_SUBSCRIPTION_ID). Percentages are of the VM count.",
    )
    p.add_argument("--remediation", metavar="ID", help="the catalog remediation to run")
    p.add_argument("--tag", action="append", default=[], metavar="K=V", help="only VMs with this tag")
    p.add_argument("--resource-group", metavar="RG", help="every VM of a resource group (name or id)")
    p.add_argument("--subscription", metavar="S", help="every VM of a subscription")
    p.add_argument("--targets", metavar="FILE", help="VM resource ids, one a line (or a JSON list)")
    p.add_argument("--param", action="append", default=[], metavar="K=V", help="a remediation parameter")
    p.add_argument("--max-concurrency", metavar="N|P%", help="at most this many VMs at a time")
    p.add_argument("--max-errors", metavar="N|P%", help="stop once more VMs than this have failed")
    p.add_argument(
        "--dry-run", action="store_true", help="run the scripts with DRY_RUN=1: they change nothing"
    )
    p.add_argument("--id", metavar="ID", help="name the campaign; the same id again resumes it")
    p.add_argument("--resume", metavar="ID", help="drive an existing campaign to its end (after a crash)")
    p.add_argument("--json", action="store_true", help="print the final status as one JSON object")
    p.add_argument(
        "--workers", type=int, default=8, metavar="N", help="worker threads stepping jobs (default 8)"
    )
    from .cli_engine import add_where

    add_where(p)
    factory = services_factory or default_services

    def handler(args: argparse.Namespace, out: TextIO) -> int:
        return run_campaign(args, out, factory)

    p.set_defaults(handler=handler)
    return p


def _pairs(items: list[str], what: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise InvalidInput(f"{what} {item!r} must look like NAME=VALUE")
        pairs[name.strip()] = value
    return pairs


def read_targets(path: str) -> list[str]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise InvalidInput(f"{path}: cannot read: {error.strerror}") from None
    except UnicodeDecodeError:
        raise InvalidInput(f"{path}: not UTF-8 text") from None
    if text.lstrip().startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise InvalidInput(f"{path}: not valid JSON: {error.msg} at line {error.lineno}") from None
        if not isinstance(data, list):
            raise InvalidInput(f"{path}: a JSON targets file holds a list of VM ids")
        return [str(item) for item in data]
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def request_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The command line as a campaign request, the same shape ``POST /api/campaigns`` takes."""
    targets: dict[str, Any] = {}
    if args.targets:
        if args.tag or args.resource_group or args.subscription:
            raise InvalidInput("--targets cannot be combined with --tag, --resource-group or --subscription")
        targets["vmIds"] = read_targets(args.targets)
    if args.tag:
        targets["tag"] = list(args.tag)
    if args.resource_group:
        targets["resourceGroup"] = args.resource_group
    if args.subscription:
        targets["subscription"] = args.subscription
    if not args.remediation:
        raise InvalidInput("--remediation is required (or --resume ID)")
    if not targets:
        raise InvalidInput("name the VMs: --tag, --resource-group, --subscription or --targets")
    for option in ("max_concurrency", "max_errors"):
        if getattr(args, option) is None:
            raise InvalidInput(
                f"--{option.replace('_', '-')} is required (a number or a percentage like 10%)"
            )
    request: dict[str, Any] = {
        "remediation": args.remediation,
        "targets": targets,
        "parameters": _pairs(args.param, "--param"),
        "maxConcurrency": args.max_concurrency,
        "maxErrors": args.max_errors,
        "dryRun": bool(args.dry_run),
    }
    if args.id:
        request["id"] = args.id
    return request


def run_campaign(
    args: argparse.Namespace, out: TextIO, factory: ServicesFactory, err: TextIO | None = None
) -> int:
    err = err or sys.stderr
    try:
        if args.workers < 1:
            raise InvalidInput(f"--workers {args.workers} must be at least 1")
        if args.resume:
            selectors = (
                args.remediation,
                args.tag,
                args.resource_group,
                args.subscription,
                args.targets,
                args.id,
            )
            if any(selectors):
                raise InvalidInput(
                    "--resume takes the campaign id alone: its targets and limits are on record"
                )
        else:
            request = request_from_args(args)
        services = factory(args)
        if args.resume:
            status = campaigns.resume(services, args.resume)
        else:
            existed = bool(request.get("id")) and _exists(services, request["id"])
            status = campaigns.start_campaign(services, request, actor=_actor())
            if existed:
                # Started before under this id: its released jobs need their messages again.
                status = campaigns.resume(services, status["id"])
    except (InvalidInput, NotFound) as error:
        print(f"remediate campaign: {_first_line(error)}", file=err)
        return EXIT_USAGE
    progress = Progress(err)
    progress.line(
        f"campaign {status['id']}: {status['remediation']} on {status['targetCount']} VM(s), "
        f"{status['concurrency']} at a time, stop after {status['errorLimit']} error(s)"
        + (" [dry run]" if status.get("dryRun") else "")
    )
    progress.update(status)
    try:
        manual_clock = callable(getattr(services.clock, "advance", None))
        workers = 1 if manual_clock else args.workers
        status = drive(services, status["id"], on_status=progress.update, workers=workers)
    except KeyboardInterrupt:
        progress.close()
        print(
            f"remediate campaign: interrupted; jobs already sent keep their state. "
            f"Resume with: remediate campaign --resume {status['id']}",
            file=err,
        )
        return EXIT_INTERRUPTED
    except RemediationError as error:
        progress.close()
        print(f"remediate campaign: {_first_line(error)} (resume with --resume {status['id']})", file=err)
        return EXIT_STOPPED
    progress.close()
    if args.json:
        json.dump(status, out, indent=2, sort_keys=True)
        out.write("\n")
    else:
        out.write(summary(status) + "\n")
        for line in outcome_breakdown(services, status):
            out.write(f"  {line}\n")
    return EXIT_OK if status["status"] == campaigns.COMPLETED else EXIT_STOPPED


def _exists(services: Services, campaign_id: str) -> bool:
    try:
        services.store.get_campaign(campaign_id)
    except NotFound:
        return False
    return True


def _actor() -> str:
    import getpass

    try:
        return "cli:" + getpass.getuser()
    except (OSError, KeyError):
        return "cli"


def _first_line(error: Exception) -> str:
    text = str(error)
    return text.splitlines()[0] if text else type(error).__name__
