"""What every benchmark shares: figures, timing, the ARM emulator in its own process, Azurite."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
SUB = "00000000-0000-0000-0000-000000000001"
FIXED = {"status": "fixed", "before": {"freePercent": 4}, "after": {"freePercent": 41}}
NOT_FIXED = {"status": "not-fixed", "before": {"freePercent": 4}, "after": {"freePercent": 4}}


@dataclass
class Figure:
    name: str
    value: float | int | None
    baseline: float | int | None
    goal: str
    how: str
    note: str = ""


def median_of(runs: int, fn: Callable[[], float]) -> float:
    return statistics.median(fn() for _ in range(runs))


def timed(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def vm_group(name: str, pattern: str, count: int, outcome: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "location": "westeurope",
        "virtualMachines": [
            {"name": pattern, "count": count, "tags": {"autoremediation": "enabled"}, "outcomes": [outcome]}
        ],
    }


def write_fleet(folder: Path, groups: list[dict[str, Any]]) -> Path:
    path = folder / "fleet.yaml"
    path.write_text(yaml.safe_dump({"subscriptions": [{"id": SUB, "resourceGroups": groups}]}))
    return path


@dataclass
class Emulator:
    """The local ARM emulator in a process of its own, as a real ARM would be: it does not share our GIL."""

    base_url: str
    ca_bundle: str
    process: subprocess.Popen[str]

    def admin(self, method: str, path: str) -> Any:
        context = ssl.create_default_context(cafile=self.ca_bundle)
        request = urllib.request.Request(self.base_url + path, method=method)
        with urllib.request.urlopen(request, context=context, timeout=60) as response:
            body = response.read()
        return json.loads(body) if body else None

    def calls(self) -> list[tuple[str, str]]:
        return [(c["method"], c["path"]) for c in self.admin("GET", "/_admin/calls")["calls"]]

    def reset_calls(self) -> None:
        self.admin("DELETE", "/_admin/calls")


@contextlib.contextmanager
def emulator(fleet_file: Path) -> Iterator[Emulator]:
    code = "import sys\nfrom localfleet.server import run_server\nrun_server(sys.argv[1], 0)\n"
    process = subprocess.Popen(
        [sys.executable, "-c", code, str(fleet_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            raise RuntimeError("the ARM emulator did not start")
        info = json.loads(line)
        yield Emulator(info["base_url"], info["ca_bundle"], process)
    finally:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


@contextlib.contextmanager
def azurite() -> Iterator[str | None]:
    """An in-memory Azurite on free ports; yields its connection string, or None when it is not installed."""
    binary = ROOT / "node_modules" / ".bin" / "azurite"
    if not binary.exists() or shutil.which("node") is None:
        yield None
        return
    blob, queue, table = _free_port(), _free_port(), _free_port()
    process = subprocess.Popen(
        [
            str(binary),
            "--inMemoryPersistence",
            "--skipApiVersionCheck",
            "--silent",
            "--disableTelemetry",
            "--blobHost",
            "127.0.0.1",
            "--queueHost",
            "127.0.0.1",
            "--tableHost",
            "127.0.0.1",
            "--blobPort",
            str(blob),
            "--queuePort",
            str(queue),
            "--tablePort",
            str(table),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ},
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if _listening(table) and _listening(queue):
                break
            if process.poll() is not None:
                break
            time.sleep(0.1)  # startup wait for an external process, not a timed assertion
        else:
            yield None
            return
        if process.poll() is not None:
            yield None
            return
        account = "devstoreaccount1"
        yield (
            f"DefaultEndpointsProtocol=http;AccountName={account};AccountKey={AZURITE_KEY};"
            f"QueueEndpoint=http://127.0.0.1:{queue}/{account};TableEndpoint=http://127.0.0.1:{table}/{account};"
        )
    finally:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)


def memory_folder() -> str | None:
    """A RAM-backed temporary folder where the system has one (Linux: /dev/shm), else the default."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None
