"""Azurite for the test session: a pytest plugin module.

Use it with ``pytest_plugins = ["tests.azurite"]`` in the top-level ``conftest.py``, or import the fixtures
into a package's ``conftest.py`` (``from tests.azurite import azurite, azurite_connection_string``).

``azurite`` starts one in-memory Azurite per test session (per xdist worker) on free ports and stops it at
the end. Without Node or ``node_modules/.bin/azurite`` (``npm ci`` installs it) the tests that need it are
skipped, or fail when ``CI=true``: CI must not pass by skipping them.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
AZURITE_BIN = ROOT / "node_modules" / ".bin" / "azurite"
ACCOUNT = "devstoreaccount1"
# The well-known Azurite development key (public, documented, only valid against the emulator).
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
_START_TIMEOUT = 30.0
_ATTEMPTS = 3


@dataclass(frozen=True)
class Azurite:
    host: str
    blob_port: int
    queue_port: int
    table_port: int

    @property
    def blob_endpoint(self) -> str:
        return f"http://{self.host}:{self.blob_port}/{ACCOUNT}"

    @property
    def queue_endpoint(self) -> str:
        return f"http://{self.host}:{self.queue_port}/{ACCOUNT}"

    @property
    def table_endpoint(self) -> str:
        return f"http://{self.host}:{self.table_port}/{ACCOUNT}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint={self.blob_endpoint};QueueEndpoint={self.queue_endpoint};"
            f"TableEndpoint={self.table_endpoint};"
        )


def unique_name(prefix: str = "t") -> str:
    """A name no other test uses, valid as a table prefix (letters and digits) and as a queue name."""
    return f"{prefix}{uuid.uuid4().hex[:12]}"


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail(f"Azurite is required in CI: {reason}", pytrace=False)
    pytest.skip(f"Azurite not available: {reason}")


def _free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _start(workdir: str) -> tuple[subprocess.Popen[bytes], Azurite, Path]:
    blob, queue, table = _free_ports(3)
    log = Path(workdir) / f"azurite-{blob}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                str(AZURITE_BIN),
                "--skipApiVersionCheck",
                "--inMemoryPersistence",
                "--silent",
                "--disableTelemetry",
                "--blobHost", "127.0.0.1", "--blobPort", str(blob),
                "--queueHost", "127.0.0.1", "--queuePort", str(queue),
                "--tableHost", "127.0.0.1", "--tablePort", str(table),
            ],
            cwd=workdir,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
    return proc, Azurite("127.0.0.1", blob, queue, table), log


def _wait_ready(proc: subprocess.Popen[bytes], azurite: Azurite) -> bool:
    # Readiness is polled, not assumed after a fixed sleep: the deadline only bounds a broken start.
    deadline = time.monotonic() + _START_TIMEOUT
    ports = [azurite.blob_port, azurite.queue_port, azurite.table_port]
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if all(_listening(p) for p in ports):
            return True
        time.sleep(0.05)
    return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    """A running Azurite (blob, queue, table), in memory, on free loopback ports."""
    if shutil.which("node") is None:
        _unavailable("node is not on PATH (install nodejs and npm)")
    if not AZURITE_BIN.exists():
        _unavailable(f"{AZURITE_BIN.relative_to(ROOT)} is missing (run `npm ci` at the repository root)")
    with tempfile.TemporaryDirectory(prefix="azurite-") as workdir:
        failures = []
        for _ in range(_ATTEMPTS):
            proc, emulator, log = _start(workdir)
            if _wait_ready(proc, emulator):
                try:
                    yield emulator
                finally:
                    _stop(proc)
                return
            _stop(proc)
            # A port taken between choosing and binding it is the usual cause: try new ports.
            failures.append(log.read_text(errors="replace")[-2000:])
        _unavailable(f"it did not start after {_ATTEMPTS} attempts; last output:\n{failures[-1]}")


@pytest.fixture(scope="session")
def azurite_connection_string(azurite: Azurite) -> str:
    return azurite.connection_string
