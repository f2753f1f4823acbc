"""``remediate catalog | validate | new``: reading and writing the catalog of remediations.

``validate`` reports every problem at once: the schema (in words that say what to change), the scripts and
README against ``remediation.yaml``, and the routes; a remediation no route reaches is a note, not an
error. ``new ID`` scaffolds a remediation that ``validate`` accepts (see ``remediations/README.md``).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, TextIO

from .authoring import authoring_problems, unrouted
from .catalog import Catalog
from .catalog_load import catalog_problems, load_catalog
from .cli_output import dump_json, table
from .routing import load_routes, routes_problems

EXIT_OK, EXIT_NOT_OK = 0, 1


def cmd_catalog(args: argparse.Namespace, out: TextIO) -> int:
    catalog = load_catalog(args.catalog)
    load_routes(args.catalog, catalog)
    entries = [catalog.remediations[k].summary() for k in sorted(catalog.remediations)]
    if args.json:
        dump_json({"remediations": entries}, out)
        return EXIT_OK
    rows: list[Any] = [("ID", "RISK", "OS", "CONDITIONS", "TITLE")]
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
    table(rows, out)
    return EXIT_OK


def cmd_validate(args: argparse.Namespace, out: TextIO) -> int:
    problems, remediations = catalog_problems(args.catalog)
    problems += authoring_problems(remediations)
    # Routes are checked against what did load, so one run lists every problem of both files.
    catalog = Catalog(folder=Path(args.catalog), remediations=remediations)
    route_problems, routes = routes_problems(args.catalog, catalog)
    problems += route_problems
    for problem in problems:
        out.write(f"error: {problem}\n")
    if problems:
        out.write(f"{len(problems)} problem(s)\n")
        return EXIT_NOT_OK
    for rid in unrouted(remediations, routes):
        out.write(
            f"note: no route reaches {rid}: only a manual request or a campaign runs it "
            "(add one to routes.yaml, see remediations/README.md)\n"
        )
    out.write(f"ok: {len(remediations)} remediations, {len(routes)} routes\n")
    return EXIT_OK


def cmd_new(args: argparse.Namespace, out: TextIO) -> int:
    from .scaffold import scaffold

    catalog = Path(args.catalog)
    tests = Path(args.tests) if args.tests else catalog.resolve().parent / "tests" / "sandbox"
    written = scaffold(catalog, args.id, tests=tests, condition=args.condition or "")
    for path in written:
        out.write(f"wrote {path}\n")
    out.write(
        f"next: fill in the TODOs, run `remediate validate`, then the sandbox test; add a route for "
        f"condition {args.condition or args.id} to routes.yaml (see remediations/README.md)\n"
    )
    return EXIT_OK


def add_parsers(commands: Any) -> None:
    p = commands.add_parser("catalog", help="list the remediations")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_catalog)

    p = commands.add_parser("validate", help="check the catalog and the routes (exit 1 on any problem)")
    p.set_defaults(handler=cmd_validate)

    p = commands.add_parser("new", help="scaffold a new remediation in the catalog folder")
    p.add_argument("id", help="the remediation id, lowercase words joined by - (like clear-tmp)")
    p.add_argument("--condition", metavar="NAME", help="the condition it fixes (default: the id)")
    p.add_argument(
        "--tests",
        metavar="DIR",
        help="where the sandbox test goes (default: tests/sandbox next to the catalog)",
    )
    p.set_defaults(handler=cmd_new)
