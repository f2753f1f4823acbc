"""``run_server``: the foreground emulator behind ``remediate fleet serve``."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from localfleet.fleetfile import FleetFileError
from localfleet.server import FleetServer, run_server

from autoremediation.azure.compute import AzureCompute
from autoremediation.settings import Settings

from .conftest import REPO_ROOT, vm_id

pytestmark = pytest.mark.fleet


def test_serves_until_sigterm_after_one_ready_line() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    code = "from localfleet.server import run_server; raise SystemExit(run_server(None, 0))"
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
        env=env,
    )
    try:
        assert proc.stdout is not None
        ready = json.loads(proc.stdout.readline())
        assert set(ready) == {"base_url", "ca_bundle", "subscription"}
        assert ready["base_url"].startswith("https://127.0.0.1:")
        assert Path(ready["ca_bundle"]).read_text().startswith("-----BEGIN CERTIFICATE-----")
        settings = Settings(arm_endpoint=ready["base_url"], arm_ca_bundle=ready["ca_bundle"])
        assert AzureCompute(settings).get_vm(vm_id("vm-windows")).os_type == "windows"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert proc.stdout.read() == ""  # exactly one line on stdout
        assert not Path(ready["ca_bundle"]).exists()  # its state went with it
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_bad_fleet_file_is_a_typed_error_before_serving(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "fleet.yaml"
    bad.write_text("subscriptions: [{id: nope}]\n")
    with pytest.raises(FleetFileError, match=re.escape("fleet.yaml: subscriptions[0].id")):
        run_server(str(bad), 0)
    assert capsys.readouterr().out == ""


def test_a_taken_port_is_a_typed_error(fleet: FleetServer) -> None:
    from autoremediation.errors import InvalidInput

    with pytest.raises(InvalidInput, match=f"cannot listen on 127.0.0.1:{fleet.port}"):
        FleetServer(port=fleet.port, sandbox=False)
