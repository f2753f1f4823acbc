"""What ``remediate campaign`` shows: the progress bar on stderr, the summary, why VMs were skipped."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TextIO

from . import campaigns

if TYPE_CHECKING:
    from .services import Services


class Progress:
    """Where the campaign is, on stderr: a ``rich`` bar redrawn in place on a terminal; a plain line per
    change when stderr is a file or a pipe (a log reads top to bottom)."""

    def __init__(self, stream: TextIO, width: int = 24) -> None:
        self.stream = stream
        self.width = width
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self._last = ""
        self._bar: Any = None
        self._task: Any = None

    def line(self, text: str) -> None:
        if self._bar is not None:
            self._bar.console.print(text, markup=False, highlight=False)
            return
        self.stream.write(text + "\n")
        self.stream.flush()

    def update(self, status: Mapping[str, Any]) -> None:
        text = render(status, self.width)
        if text == self._last:
            return
        self._last = text
        if not self.tty:
            self.stream.write(text + "\n")
            self.stream.flush()
            return
        counts = status.get("counts", {})
        total = int(counts.get("total", 0)) or 1
        done = total - int(counts.get("planned", 0)) - int(counts.get("inFlight", 0))
        if self._bar is None:
            self._start(total)
        self._bar.update(self._task, total=total, completed=done, counts=_counts_text(status), refresh=True)

    def _start(self, total: int) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn

        from .cli_output import console

        self._bar = Progress(
            BarColumn(bar_width=self.width),
            TaskProgressColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[counts]}"),
            console=console(self.stream),
            auto_refresh=False,
        )
        self._task = self._bar.add_task("campaign", total=total, counts="")
        self._bar.start()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.refresh()
            self._bar.stop()
            self._bar = None


def _counts_text(status: Mapping[str, Any]) -> str:
    counts = status.get("counts", {})
    return (
        f"ok {counts.get('succeeded', 0)}  failed {counts.get('failed', 0)}  "
        f"skipped {counts.get('skipped', 0)}  cancelled {counts.get('cancelled', 0)}  "
        f"in flight {counts.get('inFlight', 0)}  ({status.get('status', '?')})"
    )


def render(status: Mapping[str, Any], width: int = 24) -> str:
    counts = status.get("counts", {})
    total = int(counts.get("total", 0)) or 1
    done = total - int(counts.get("planned", 0)) - int(counts.get("inFlight", 0))
    filled = round(width * done / total)
    bar = "#" * filled + "-" * (width - filled)
    return (
        f"[{bar}] {100 * done // total:3d}% {done}/{total}  ok {counts.get('succeeded', 0)}  "
        f"failed {counts.get('failed', 0)}  skipped {counts.get('skipped', 0)}  "
        f"cancelled {counts.get('cancelled', 0)}  in flight {counts.get('inFlight', 0)}  "
        f"planned {counts.get('planned', 0)}  ({status.get('status', '?')})"
    )


def summary(status: Mapping[str, Any]) -> str:
    counts = status.get("counts", {})
    went = "dry-run (nothing changed)" if status.get("dryRun") else "succeeded"
    text = (
        f"campaign {status.get('id')} {status.get('status')}: {counts.get('succeeded', 0)} {went}, "
        f"{counts.get('failed', 0)} failed, {counts.get('skipped', 0)} skipped, "
        f"{counts.get('cancelled', 0)} cancelled of {counts.get('total', 0)}"
    )
    if status.get("stopReason"):
        text += f"; stopped: {status['stopReason']}"
    if status.get("status") not in campaigns.FINAL:
        waiting = counts.get("inFlight", 0)
        text += f"; {waiting} job(s) wait for approval: resume with --resume {status.get('id')}"
    return text


def outcome_breakdown(services: Services, status: Mapping[str, Any]) -> list[str]:
    """Why VMs were skipped (grouped by reason), and for a dry run what would have been fixed."""
    from collections import Counter

    from . import jobs

    lines: list[str] = []
    counts = status.get("counts", {})
    listed = services.store.list(campaign_id=str(status.get("id")))
    if counts.get("skipped"):
        reasons = Counter(j.history[-1].reason for j in listed if j.status == jobs.SKIPPED)
        for reason, count in reasons.most_common():
            lines.append(f"skipped {count}: {reason}")
    if status.get("dryRun"):
        verdicts = Counter(
            str(j.outcome.get("verification") or j.history[-1].reason)
            for j in listed
            if j.status == jobs.SUCCEEDED
        )
        for verdict, count in verdicts.most_common():
            lines.append(f"{count} VM(s): {verdict}")
    return lines
