"""``make demo``: the whole flow on embedded defaults, against a local fleet, in under a minute.

A local ARM emulator serves the demo fleet (a Linux VM whose /var is nearly full, a Linux VM locked
out by an NSG deny rule, a Windows VM, a VM that has not opted in); Linux scripts run for real in a
sandbox when this runs as root. The samples are replayed through ``remediate`` exactly as an operator
would type the commands, the high-risk remediation is approved, and the job history is printed.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from io import StringIO
from pathlib import Path

from .cli import main as remediate
from .localfleet.server import FleetServer

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
STATE = ROOT / ".state" / "demo"


def step(title: str, *argv: str, quiet: bool = False) -> str:
    """Run one ``remediate`` command as an operator would; ``quiet`` for the demo's own look-ups."""
    if not quiet:
        print(f"\n$ remediate {' '.join(argv)}", flush=True)
    captured = StringIO()
    code = remediate(list(argv), out=captured)
    if not quiet:
        print(captured.getvalue(), end="", flush=True)
    if code == 2:
        raise SystemExit(f"demo step failed: {title}")
    return captured.getvalue()


def main() -> int:
    shutil.rmtree(STATE, ignore_errors=True)
    STATE.mkdir(parents=True)
    with FleetServer(workdir=STATE / "fleet") as fleet:
        # The CLI finds ARM and its job store where an operator's shell would say.
        os.environ.update(
            REMEDIATION_SQLITE_PATH=str(STATE / "jobs.db"),
            REMEDIATION_ARM_ENDPOINT=fleet.base_url,
            REMEDIATION_ARM_CA_BUNDLE=fleet.ca_bundle,
            AZURE_SUBSCRIPTION_ID=fleet.subscription,
        )
        os.environ.pop("REMEDIATION_STORAGE", None)
        print(f"local fleet: {fleet.base_url} (subscription {fleet.subscription})")
        print(f"VMs: {', '.join(sorted(vm.spec.name for vm in fleet.fleet.vms.values()))}")
        os.chdir(ROOT)
        samples = [
            f"samples/{name}"
            for name in (
                "disk-full-alert.json",
                "windows-disk-full-alert.json",
                "not-opted-in-alert.json",
                "nsg-rule-write-event.json",
            )
        ]
        step("plan", "plan", *samples)
        step("run", "run", *samples)
        waiting = json.loads(step("list", "jobs", "--status", "awaiting-approval", "--json", quiet=True))[
            "jobs"
        ]
        for job in waiting:
            step(
                "approve", "approve", job["id"], "--actor", "demo-operator", "--reason", "locked out of prod"
            )
        step("resolved", "run", "samples/disk-full-alert-resolved.json")
        step("cooldown", "run", "samples/manual-request.json")
        step("history", "jobs")
        for job in waiting:
            step("show", "show", job["id"])
        # One request left for a second operator: the console shows it with its evidence.
        step("pending", "run", "samples/manual-request-restore-access.json", "--actor", "alice@contoso.com")
    print("\ndemo done: job records in .state/demo/jobs.db (REMEDIATION_SQLITE_PATH) for `remediate jobs`")
    print("one request waits for approval: `make console`, then open http://127.0.0.1:8070/api/console")
    return 0


if __name__ == "__main__":
    sys.exit(main())
