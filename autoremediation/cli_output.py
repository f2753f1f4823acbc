"""How ``remediate`` prints: tables and progress from ``rich``, plain text when the output is not a terminal.

``rich`` decides colour and width from the stream (a pipe or a file gets plain text, no escape codes), and
``NO_COLOR`` is honoured. It is imported when a table or a bar is drawn, never by the Function App.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from rich.console import Console

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
