"""collect-diagnostics uploads for real: curl in the guest PUTs the archive over TLS to a receiver.

The receiver listens on 127.0.0.1:443 inside the guest's network namespace with a certificate for the
storage account's host name; the guest's /etc/hosts and CA bundle point curl at it. While the upload
is in flight the receiver looks through every process's command line for the SAS: it must not be
there (the SAS reaches curl through a config file only root can read).
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from localfleet.sandbox import GuestSpec, Sandbox

from .conftest import MakeSandbox, run_raw, tree

HOST = "diagstore01.blob.core.windows.net"
BLOB_URL = f"https://{HOST}/diagnostics/vm-linux-disk/job-0123.tar.gz"
SAS = "sv=2024-11-04&sr=b&sp=cw&se=2030-01-01T00%3A00%3A00Z&sig=dGVzdC1zaWduYXR1cmUtN2YzYQ/%3D%3D"
SIGNATURE = "dGVzdC1zaWduYXR1cmUtN2YzYQ"
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"

RECEIVER = r"""
import http.server, json, os, ssl, sys
out, cert, key, needle = sys.argv[1:5]

def argv_holding(needle):
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as fh:
                    if needle.encode() in fh.read():
                        found.append(int(pid))
            except OSError:
                pass
    return found

class Handler(http.server.BaseHTTPRequestHandler):
    def do_PUT(self):
        seen_in_argv = [p for p in argv_holding(needle) if p != os.getpid()]
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with open(os.path.join(out, "archive.tar.gz"), "wb") as fh:
            fh.write(body)
        with open(os.path.join(out, "request.json"), "w") as fh:
            json.dump({"path": self.path, "headers": dict(self.headers), "argvHolding": seen_in_argv}, fh)
        self.send_response(201)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass

server = http.server.HTTPServer(("127.0.0.1", 443), Handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
server.socket = context.wrap_socket(server.socket, server_side=True)
open(os.path.join(out, "ready"), "w").close()
server.serve_forever()
"""


@pytest.fixture
def tls(tmp_path: Path) -> tuple[trustme.CA, Path, Path]:
    ca = trustme.CA()
    cert = ca.issue_cert(HOST)
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_path))
    cert.private_key_pem.write_to_path(str(key_path))
    return ca, cert_path, key_path


@pytest.fixture
def storage(make_sandbox: MakeSandbox, tls, tmp_path: Path) -> Iterator[tuple[Sandbox, Path]]:
    ca, cert_path, key_path = tls
    if not Path(CA_BUNDLE).is_file() or not Path("/etc/hosts").is_file():
        pytest.skip(f"this machine has no {CA_BUNDLE} or /etc/hosts to bind over")
    box = make_sandbox(
        GuestSpec(
            files=(("/etc/hosts", f"127.0.0.1 localhost {HOST}\n"), (CA_BUNDLE, ca.cert_pem.bytes().decode()))
        )
    )
    out = tmp_path / "received"
    out.mkdir()
    receiver = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            box.netns,
            sys.executable,
            "-c",
            RECEIVER,
            str(out),
            str(cert_path),
            str(key_path),
            SIGNATURE,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(200):
            if (out / "ready").exists() or receiver.poll() is not None:
                break
            time.sleep(0.02)  # waiting for the receiver to bind, not timing anything
        assert (out / "ready").exists(), "the receiver did not start"
        yield box, out
    finally:
        receiver.kill()
        receiver.wait()


def test_the_archive_reaches_the_blob_and_the_sas_never_shows(storage: tuple[Sandbox, Path]) -> None:
    box, out = storage
    guest_tmp = tree(box.host_path("/tmp"))
    env = {
        "UPLOAD_URL": BLOB_URL,
        "UPLOAD_TOKEN": base64.b64encode(SAS.encode()).decode(),
        "MAX_LOG_LINES": "200",
        "DRY_RUN": "0",
    }

    run = run_raw(box, "collect-diagnostics", env)

    assert run.status == "fixed", run.raw.stdout
    assert run.result["after"]["uploaded"] is True and run.result["after"]["httpStatus"] == 201
    assert run.result["blobUrl"] == BLOB_URL  # the outcome links to the archive, without the SAS
    request = json.loads((out / "request.json").read_text())
    assert request["path"] == f"/diagnostics/vm-linux-disk/job-0123.tar.gz?{SAS}"
    assert request["headers"]["x-ms-blob-type"] == "BlockBlob"
    assert request["argvHolding"] == []  # no process had the SAS on its command line
    with tarfile.open(out / "archive.tar.gz") as archive:
        names = archive.getnames()
    assert "diag/uname.txt" in names and "diag/processes.txt" in names
    assert SIGNATURE not in run.raw.stdout + run.raw.stderr
    assert tree(box.host_path("/tmp")) == guest_tmp  # the config file and the archive are gone
