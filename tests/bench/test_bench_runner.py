"""The benchmark runner at tiny sizes: every figure is produced, written, and sane."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.fleet


def test_quick_bench_writes_every_figure(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    figures = json.loads((tmp_path / "latest.json").read_text())
    expected = {
        "cold_import_ratio",
        "parse_route_alerts_per_s",
        "intake_alerts_per_s",
        "storm_100_alerts_10_vms_jobs",
        "storm_seconds",
        "dispatch_overhead_ratio",
        "campaign_ratio_to_ideal",
        "campaign_speedup_vs_serial",
        "campaign_vms_run_twice",
        "arm_calls_per_vm",
        "campaign_stop_within_window",
        "worker_peak_rss_mb",
        "nsg_path_verdicts_per_s",
        "nsg_detection_ms",
        "nsg_detection_arm_reads",
        "throttled_campaign_ratio",
        "throttled_campaign_429s",
        "storage_ops_per_job",
        "executions_per_job",
        "arm_calls_per_job",
        "multiprocess_vms_run_twice",
        "multiprocess_jobs_lost",
    }
    assert expected <= set(figures)
    assert figures["storm_100_alerts_10_vms_jobs"] == 10
    assert figures["campaign_vms_run_twice"] == 0
    assert figures["campaign_stop_within_window"] == 1
    assert 0 < figures["arm_calls_per_vm"] <= 5  # one of them the DELETE of a finished run command
    assert figures["intake_alerts_per_s"] > 0
    # 10 VMs' alerts delivered 10 times each: each alert read once, its rule once, duplicates from the store.
    assert figures["storm_azure_monitor_reads"] == 11
    assert figures["intake_alerts_per_s_https"] > 0
    assert figures["nsg_detection_arm_reads"] == 5  # NSG, NIC, subnet, VNet, VM: each read once
    assert figures["throttled_campaign_429s"] == 0
    assert figures["multiprocess_vms_run_twice"] == 0
    assert figures["multiprocess_jobs_lost"] == 0
    table = (tmp_path / "latest.md").read_text().splitlines()
    assert table[0] == "# Benchmark results"
    assert "| figure | value | baseline | goal | how measured |" in table
    assert sum(1 for line in table if line.startswith("| campaign_")) == 4
