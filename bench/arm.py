"""Dispatch overhead: one dispatch through AzureCompute against the bare SDK call, both on the emulator."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from .common import FIXED, Figure, emulator, vm_group, write_fleet


def figures(dispatches: int) -> list[Figure]:
    from azure.mgmt.compute import ComputeManagementClient
    from localfleet.credential import FleetCredential

    from autoremediation.azure.compute import AzureCompute
    from autoremediation.ports import RunRequest
    from autoremediation.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        fleet_file = write_fleet(
            Path(tmp),
            [
                vm_group(
                    "rg-dispatch",
                    "vm-{index:03d}",
                    2 * dispatches + 2,
                    {"durationSeconds": 600, "result": FIXED},
                )
            ],
        )
        with emulator(fleet_file) as fleet:
            settings = Settings(arm_endpoint=fleet.base_url, arm_ca_bundle=fleet.ca_bundle)
            compute = AzureCompute(settings, polling_interval=0)
            sub = "00000000-0000-0000-0000-000000000001"
            sdk = ComputeManagementClient(
                FleetCredential(),
                sub,
                base_url=fleet.base_url,
                connection_verify=fleet.ca_bundle,
                retry_total=0,
                polling_interval=0,
            )
            rg = (
                f"/subscriptions/{sub}/resourceGroups/rg-dispatch/providers/Microsoft.Compute/virtualMachines"
            )
            compute.list_vms(
                f"/subscriptions/{sub}/resourceGroups/rg-dispatch"
            )  # locations known, as in a campaign
            body = {
                "location": "westeurope",
                "properties": {
                    "source": {"script": "echo hi"},
                    "asyncExecution": True,
                    "timeoutInSeconds": 600,
                },
            }

            def ours(index: int) -> float:
                request = RunRequest(
                    vm_id=f"{rg}/vm-{index + 1:03d}",
                    run_name=f"bench-{index}",
                    os_type="linux",
                    script="echo hi",
                    timeout_seconds=600,
                    # As the runner sends a first dispatch: nothing to re-attach to, the VM's region
                    # known from the guards' read of the VM.
                    may_exist=False,
                    location="westeurope",
                )
                started = time.perf_counter()
                compute.start_run(request)
                return time.perf_counter() - started

            def bare(index: int) -> float:
                started = time.perf_counter()
                sdk.virtual_machine_run_commands.begin_create_or_update(
                    "rg-dispatch", f"vm-{index + 1:03d}", f"bare-{index}", body, polling=False
                )
                return time.perf_counter() - started

            ours(2 * dispatches + 1)
            bare(2 * dispatches)
            ours_s = statistics.median(ours(i) for i in range(dispatches))
            bare_s = statistics.median(bare(dispatches + i) for i in range(dispatches))
    return [
        Figure(
            "dispatch_overhead_ratio",
            round(ours_s / bare_s, 2),
            round(bare_s * 1000, 2),
            "<= 1.2",
            f"median of {dispatches} AzureCompute.start_run of a first dispatch (the PUT alone: the runner's "
            "claim says nothing was sent before, the guards read the VM's region) / median bare "
            "SDK begin_create_or_update(polling=False); baseline = the bare call in ms",
        )
    ]
