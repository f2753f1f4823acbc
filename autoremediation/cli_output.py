"""How ``remediate`` prints: tables and progress from ``rich``, plain text when the output is not a terminal.

``rich`` decides colour and width from the stream (a pipe or a file gets plain text, no escape codes), and
``NO_COLOR`` is honoured. It is imported when a table or a bar is drawn, never by the Function App.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TextIO

from .jobs import AWAITING_APPROVAL, CANCELLED, EXPIRED, FAILED, TIMED_OUT, Job

if TYPE_CHECKING:
    from rich.console import Console

# Ended jobs ``remediate retry`` can start again.
RETRYABLE = frozenset({FAILED, TIMED_OUT, CANCELLED, EXPIRED})

STATUS_STYLES = {
    "succeeded": "green",
    "dry-run": "cyan",
    "failed": "bold red",
    "timed-out": "red",
    "skipped": "yellow",
    "cancelled": "magenta",
    "expired": "magenta",
    "awaiting-approval": "bold yellow",
}


def console(out: TextIO) -> Console:
    """A console on ``out``: colour on a terminal only; wide enough not to fold ids in files and pipes."""
    from rich.console import Console

    tty = bool(getattr(out, "isatty", lambda: False)())
    return Console(
        file=out,
        highlight=False,
        soft_wrap=not tty,
        width=None if tty else 240,
        force_terminal=tty,
        no_color=not tty or None,
    )


def table(rows: Sequence[Sequence[Any]], out: TextIO, *, styles: Sequence[str | None] = ()) -> None:
    """Rows under a header row; ``styles`` colours a column by its cell's value (e.g. a status)."""
    from rich import box
    from rich.table import Table

    header, *body = rows
    grid = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold")
    for name in header:
        grid.add_column(str(name), overflow="fold")
    for row in body:
        cells = []
        for index, cell in enumerate(row):
            text = str(cell)
            wants = styles[index] if index < len(styles) else None
            style = STATUS_STYLES.get(text) if wants == "status" else wants
            cells.append(f"[{style}]{_escape(text)}[/]" if style else _escape(text))
        grid.add_row(*cells)
    if bool(getattr(out, "isatty", lambda: False)()):
        console(out).print(grid)
        return
    # A file or a pipe: plain lines without the padding that ends every row, easy to grep and diff.
    import io

    buffer = io.StringIO()
    console(buffer).print(grid)
    out.write("".join(line.rstrip() + "\n" for line in buffer.getvalue().splitlines()))


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def short(resource_id: str) -> str:
    """The last segment of an ARM id: the VM name."""
    return resource_id.rstrip("/").rsplit("/", 1)[-1]


def compact(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={v}" for k, v in value.items()) + "}"
    return json.dumps(value)


def dump_json(data: Any, out: TextIO, *, sort_keys: bool = False) -> None:
    json.dump(data, out, indent=2, sort_keys=sort_keys)
    out.write("\n")


def outcome_lines(job: Job) -> list[str]:
    lines = [f"why: {job.history[-1].reason}"]
    if job.retry_of:
        lines.append(f"retry of {job.retry_of}")
    if job.status == AWAITING_APPROVAL:
        lines.append(f"approve with: remediate approve {job.id}   (expires {job.approval_expires_at})")
    control = job.outcome.get("controlPlane") or {}
    for step, record in control.items():
        for nsg in record.get("nsgs", []):
            rules = ", ".join(nsg.get("rules", [])) or "-"
            lines.append(
                f"{step}: {nsg['action']} {rules} in {short(nsg['nsg'])}"
                + (f" above {nsg['blockingRule']}" if nsg.get("blockingRule") else "")
            )
    result = job.outcome.get("result")
    if isinstance(result, dict):
        lines.append(
            f"script: {result.get('status')}  before {compact(result.get('before'))}"
            f"  after {compact(result.get('after'))}"
        )
    if job.outcome.get("exitCode") is not None:
        lines.append(f"exit code {job.outcome['exitCode']}, run {job.outcome.get('runSeconds', '?')} s")
    if job.dry_run:
        lines.append("dry run: nothing was changed")
    if job.status in RETRYABLE:
        lines.append(f"try again with: remediate retry {job.id}")
    return lines


def write_job(job: Job, parameters: Any, out: TextIO) -> None:
    """One job as ``show`` prints it, locally and from a deployed app alike; ``parameters`` are already
    redacted (the catalog locally, the app remotely)."""
    from .evidence import evidence_lines
    from .jobs import outcome_kind

    out.write(f"{job.id}  {outcome_kind(job).upper()}\n")
    out.write(f"  target       {job.target}\n  remediation  {job.remediation} ({job.condition})\n")
    out.write(f"  parameters   {compact(parameters)}\n")
    out.write(f"  requested by {job.requested_by}: {job.reason}\n")
    if job.campaign_id:
        out.write(f"  campaign     {job.campaign_id}\n")
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
    for line in outcome_lines(job):
        out.write(f"  {line}\n")
    tail = job.outcome.get("outputTail")
    if tail:
        out.write("output (tail):\n" + "".join(f"  | {line}\n" for line in str(tail).splitlines()[-15:]))


def write_plan(data: Any, out: TextIO) -> None:
    """A plan report (``PlanReport.to_dict()`` or the app's ``/api/plan`` answers) as ``plan`` prints it."""
    out.write(f"{len(data['signals'])} signal(s), {len(data['plans'])} plan(s)\n")
    for signal in data["signals"]:
        targets = ", ".join(t.rsplit("/", 1)[-1] for t in signal["targets"]) or "-"
        out.write(f"  {signal['source']:<6} {signal['type']} [{signal['state'] or '-'}] -> {targets}\n")
    if data["plans"]:
        rows: list[Sequence[Any]] = [("TARGET", "REMEDIATION", "PARAMETERS", "DECISION", "REASON")]
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
        table(rows, out)
        plan_reasons(data["plans"], out)
    for note in data["notes"]:
        out.write(f"note: {note['message']}\n")


def plan_reasons(plans: Sequence[Any], out: TextIO) -> None:
    """Under the plan table: why each NSG plan is made (the detector's evidence) and which runtime
    guards a plan could not check. Shared by the local and the remote ``plan``."""
    from .evidence import evidence_summary

    for p in plans:
        name = str(p["target"]).rsplit("/", 1)[-1]
        if why := evidence_summary(p.get("evidence")):
            out.write(f"why {name}: {why}\n")
        if p.get("unchecked"):
            out.write(f"not checked for {name}: {', '.join(p['unchecked'])}")
            out.write(f" ({p['uncheckedWhy']})\n" if p.get("uncheckedWhy") else "\n")
