"""Cold start: importing the Function App against importing the Functions library alone."""

from __future__ import annotations

import statistics
import subprocess
import sys

from .common import ROOT, Figure

_PROBE = "import time\nt = time.perf_counter()\nimport {module}\nprint(time.perf_counter() - t)\n"


def _import_seconds(module: str) -> float:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE.format(module=module)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["failed"])[-1]
        raise RuntimeError(f"import {module}: {last}")
    return float(done.stdout.strip().splitlines()[-1])


def figures(runs: int = 5) -> list[Figure]:
    how = f"fresh interpreter per import, median of {runs}"
    base = statistics.median(_import_seconds("azure.functions") for _ in range(runs))
    try:
        app = statistics.median(_import_seconds("function_app") for _ in range(runs))
    except RuntimeError as error:
        return [Figure("cold_import_ratio", None, round(base * 1000, 1), "-", how, note=str(error))]
    return [
        Figure(
            "cold_import_ratio",
            round(app / base, 3),
            round(base * 1000, 1),
            "-",
            how + f"; baseline = import azure.functions in ms; function_app took {app * 1000:.1f} ms",
        )
    ]
