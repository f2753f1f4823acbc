"""``make demo``: the whole flow on embedded defaults, against a local fleet, in under a minute.

A local ARM emulator serves the demo fleet (a Linux VM whose /var is nearly full, a Linux VM locked
out by an NSG deny rule, a Windows VM, a VM that has not opted in); Linux scripts run for real in a
sandbox when this runs as root. The samples are replayed through ``remediate`` exactly as an operator
would type the commands, the high-risk remediation is approved, and the job history is printed.

The jobs go to the per-user job store that later ``remediate`` commands read by default (see
``settings.user_state_dir``), so ``remediate jobs`` right after the demo lists them. A store that holds
only earlier demo jobs is started afresh; one that holds other jobs is left alone, and the demo uses a
file of its own next to it (and says so).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from io import StringIO
from pathlib import Path

from localfleet.server import FleetServer

from .cli import main as remediate
from .settings import Settings, user_state_dir

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"


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


def _remove_store(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(str(path) + suffix).unlink(missing_ok=True)


def demo_store(subscription: str) -> Path:
    """The job store the demo writes: the default one, unless it holds jobs that are not the demo's."""
    from .store.sqlite import SqliteJobStore

    path = Path(Settings.from_env().sqlite_path)
    if not path.is_file():
        return path
    store = SqliteJobStore(str(path))
    try:
        prefix = f"/subscriptions/{subscription}/"
        demo_only = all(job.target.lower().startswith(prefix) for job in store.list())
    finally:
        store.close()
    if not demo_only:
        path = path.with_name("demo-jobs.db")
        print(f"note: {Settings.from_env().sqlite_path} holds jobs of your own; the demo writes {path}")
    _remove_store(path)
    return path


def main() -> int:
    state = user_state_dir()
    fleet_dir = state / "demo-fleet"
    shutil.rmtree(fleet_dir, ignore_errors=True)
    fleet_dir.mkdir(parents=True)
    with FleetServer(workdir=fleet_dir) as fleet:
        jobs_db = demo_store(fleet.subscription)
        # The CLI finds ARM and its job store where an operator's shell would say.
        os.environ.update(
            REMEDIATION_SQLITE_PATH=str(jobs_db),
            REMEDIATION_ARM_ENDPOINT=fleet.base_url,
            REMEDIATION_ARM_CA_BUNDLE=fleet.ca_bundle,
            AZURE_SUBSCRIPTION_ID=fleet.subscription,
            # Concrete management sources (a bastion subnet): the guest firewall step opens the port to
            # these only, and a service tag such as VirtualNetwork would open nothing in the guest.
            REMEDIATION_MANAGEMENT_SOURCES="10.0.1.0/26",
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
        alert_id = json.loads((SAMPLES / "disk-full-alert.json").read_text())["data"]["essentials"]["alertId"]
        alerting = fleet.fleet.alerting
        print(f"\nAzure Monitor: alert {alert_id.rsplit('/', 1)[-1]} is {alerting.state_of(alert_id)}")
        for entry in alerting.history(alert_id):
            print(f"  -> {entry['state']}: {entry['comments']}")
        # The disk has room again: Azure Monitor resolves the alert, then sends the Resolved notification.
        resolved = json.loads((SAMPLES / "disk-full-alert-resolved.json").read_text())
        alerting.resolve(alert_id, resolved["data"]["essentials"]["resolvedDateTime"])
        step("resolved", "run", "samples/disk-full-alert-resolved.json")
        step("cooldown", "run", "samples/manual-request.json")
        step("history", "jobs")
        for job in waiting:
            step("show", "show", job["id"])
        # One request left for a second operator: the console shows it with its evidence.
        step("pending", "run", "samples/manual-request-restore-access.json", "--actor", "alice@contoso.com")
    default = Path(Settings().sqlite_path) == jobs_db
    prefix = "" if default else f"REMEDIATION_SQLITE_PATH={jobs_db} "
    print(f"\ndemo done: job records in {jobs_db}; see them with `{prefix}remediate jobs`")
    print("one request waits for approval: `make console`, then open http://127.0.0.1:8070/api/console")
    return 0


if __name__ == "__main__":
    sys.exit(main())
