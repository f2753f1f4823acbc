"""The results files: ``latest.json`` (figure -> number) and ``latest.md`` (a short table)."""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from .common import Figure


def write(figures: Sequence[Figure], folder: Path, seconds: float) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    flat = {f.name: f.value for f in figures}
    json_path = folder / "latest.json"
    json_path.write_text(json.dumps(flat, indent=2) + "\n")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines = [
        "# Benchmark results",
        "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} CPU(s), Python "
        f"{platform.python_version()}, load average {load:.1f} at the end; the run took {seconds:.0f} s. "
        "Each figure is measured against its baseline in the same run.",
        "",
        "| figure | value | baseline | goal | how measured |",
        "|---|---|---|---|---|",
    ]
    for f in figures:
        value = "n/a" if f.value is None else str(f.value)
        how = f.how + (f" ({f.note})" if f.note else "")
        lines.append(
            f"| {f.name} | {value} | {f.baseline if f.baseline is not None else '-'} | {f.goal} | {how} |"
        )
    md_path = folder / "latest.md"
    md_path.write_text("\n".join(lines) + "\n")
    return json_path, md_path
