"""``python -m bench``: every figure, each against its baseline in the same run; results in bench/results/.

``--quick`` runs tiny sizes (the smoke test); ``--out DIR`` writes elsewhere; ``--only NAME`` runs one
section (imports, intake, arm, notify, campaign, scale).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from . import arm, campaign, imports, intake, notify, nsg, scale
from .common import Figure

RESULTS = Path(__file__).resolve().parent / "results"

FULL = {
    "imports": lambda: imports.figures(runs=5),
    "intake": lambda: intake.figures(alerts=400, storm_alerts=10_000, storm_vms=100),
    "arm": lambda: arm.figures(dispatches=30),
    "nsg": lambda: nsg.figures(rounds=300, detections=20),
    "notify": lambda: notify.figures(writes=300, rounds=30),
    "campaign": lambda: campaign.figures(
        {
            "vms": 1000,
            "concurrency": 50,
            "run_seconds": 2.0,
            "serial_vms": 20,
            "fail_vms": 200,
            "fail_concurrency": 10,
            "fail_errors": 5,
            "workers": 16,
        }
    ),
    "scale": lambda: scale.figures(
        {
            "throttled": {
                # ARM's own bucket sizes and refill rates: the bound (writes and deletes, 10 a second
                # after a burst of 200) is 180 s for 2,000 VMs, the few minutes a real one would take.
                "vms": 2000,
                "concurrency": 100,
                "run_seconds": 0.5,
                "processes": 2,
                "threads": 8,
                "scale": 1.0,
                "deadline": 1800,
            },
            "many": {
                "jobs": 500,
                "run_seconds": 0.5,
                "processes": 4,
                "threads": 8,
                "kills": 4,
                "deadline": 900,
            },
        }
    ),
}
QUICK = {
    "imports": lambda: imports.figures(runs=1),
    "intake": lambda: intake.figures(alerts=10, storm_alerts=100, storm_vms=10, with_azurite=False),
    "arm": lambda: arm.figures(dispatches=3),
    "nsg": lambda: nsg.figures(rounds=5, detections=2),
    "notify": lambda: notify.figures(writes=10, rounds=2),
    "campaign": lambda: campaign.figures(
        {
            "vms": 12,
            "concurrency": 4,
            "run_seconds": 0.2,
            "serial_vms": 2,
            "fail_vms": 8,
            "fail_concurrency": 2,
            "fail_errors": 1,
            "workers": 2,
        }
    ),
    "scale": lambda: scale.figures(
        {
            "throttled": {
                "vms": 30,
                "concurrency": 10,
                "run_seconds": 0.2,
                "processes": 2,
                "threads": 2,
                "scale": 0.2,
                "deadline": 300,
            },
            "many": {
                "jobs": 12,
                "run_seconds": 0.2,
                "processes": 2,
                "threads": 2,
                "kills": 1,
                "deadline": 300,
            },
        }
    ),
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the runner, measures little")
    parser.add_argument("--out", type=Path, default=RESULTS, metavar="DIR")
    parser.add_argument("--only", choices=sorted(FULL), action="append")
    args = parser.parse_args(argv)
    sections: dict[str, Callable[[], list[Figure]]] = QUICK if args.quick else FULL
    started = time.perf_counter()
    figures: list[Figure] = []
    failed = False
    for name, run in sections.items():
        if args.only and name not in args.only:
            continue
        print(f"bench: {name} ...", file=sys.stderr, flush=True)
        try:
            got = run()
        except Exception as error:  # one broken section must not hide the others' figures
            failed = True
            print(f"bench: {name} failed: {error}", file=sys.stderr)
            continue
        for figure in got:
            print(
                f"  {figure.name} = {figure.value} (baseline {figure.baseline}, goal {figure.goal})",
                file=sys.stderr,
            )
        figures += got
    json_path, md_path = write_results(figures, args.out, time.perf_counter() - started)
    print(f"bench: wrote {json_path} and {md_path}", file=sys.stderr)
    return 1 if failed else 0


def write_results(figures: list[Figure], folder: Path, seconds: float) -> tuple[Path, Path]:
    from .report import write

    return write(figures, folder, seconds)


if __name__ == "__main__":
    raise SystemExit(main())
