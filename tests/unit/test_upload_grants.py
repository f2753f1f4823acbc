"""The runner mints the diagnostics upload SAS at dispatch; it rests nowhere but the run command."""

from __future__ import annotations

import base64
import json
from dataclasses import asdict
from pathlib import Path

from autoremediation.catalog_load import load_catalog
from autoremediation.errors import Permanent, Transient
from autoremediation.intake import Intake
from autoremediation.planning import Planner
from autoremediation.ports import UploadGrant
from autoremediation.routing import load_routes
from tests.helpers.catalogs import SHIPPED, make_catalog
from tests.unit.test_runner import World

SAS = "sv=2026-10-06&sr=b&sp=cw&skoid=x&sig=U2VjcmV0U2lnbmF0dXJl%3D"


class Grants:
    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.asked: list[tuple[str, float]] = []

    def grant(self, blob_name: str, lifetime_seconds: float) -> UploadGrant:
        self.asked.append((blob_name, lifetime_seconds))
        if self.errors:
            raise self.errors.pop(0)
        url = f"https://diag01.blob.core.windows.net/diagnostics/{blob_name}"
        return UploadGrant(blob_url=url, sas=SAS, expires_at="2026-01-01T00:17:00+00:00")


def diagnostics_world(tmp_path: Path, grants: Grants | None) -> World:
    world = World(tmp_path)
    root = make_catalog(tmp_path / "catalog-diag")
    (root / "collect-diagnostics").mkdir()
    for name in ("remediation.yaml", "linux.sh", "windows.ps1", "README.md"):
        (root / "collect-diagnostics" / name).write_text((SHIPPED / "collect-diagnostics" / name).read_text())
    world.catalog = load_catalog(root)
    world.runner.catalog = world.catalog
    world.runner.upload_grants = grants
    world.intake = Intake(
        Planner(world.catalog, load_routes(root, world.catalog)), world.store, world.queue, world.clock
    )
    return world


def test_the_sas_goes_only_to_the_run_command_and_the_job_links_the_blob(tmp_path: Path) -> None:
    grants = Grants()
    world = diagnostics_world(tmp_path, grants)

    result = world.manual("collect-diagnostics", parameters={"maxLogLines": 500})
    world.drain()

    job = world.job(result)
    [request] = world.compute.requests
    [(blob, lifetime)] = grants.asked
    assert blob == f"vm1/{job.id}.tar.gz" and lifetime == 900 + 120
    assert request.parameters["UPLOAD_URL"] == f"https://diag01.blob.core.windows.net/diagnostics/{blob}"
    assert "UPLOAD_TOKEN" not in request.parameters
    assert base64.b64decode(request.protected_parameters["UPLOAD_TOKEN"]).decode() == SAS
    assert job.outcome["upload"]["blobUrl"] == request.parameters["UPLOAD_URL"]
    stored = json.dumps(asdict(world.store.get(job.id)), default=str)
    assert "U2VjcmV0U2lnbmF0dXJl" not in stored and request.protected_parameters["UPLOAD_TOKEN"] not in stored


def test_without_a_diagnostics_container_the_job_fails_with_the_reason(tmp_path: Path) -> None:
    world = diagnostics_world(tmp_path, None)

    result = world.manual("collect-diagnostics")
    world.drain()

    job = world.job(result)
    assert job.status == "failed"
    assert job.history[-1].reason == (
        "dispatch refused: collect-diagnostics uploads to the diagnostics container: none is configured"
    )
    assert world.compute.requests == []


def test_a_transient_storage_error_is_retried_and_a_refusal_fails(tmp_path: Path) -> None:
    grants = Grants(Transient("503 from storage"))
    world = diagnostics_world(tmp_path, grants)
    world.manual("collect-diagnostics")
    world.drain()
    assert len(grants.asked) == 2  # asked again after the back-off
    assert len(world.compute.requests) == 1

    refused = diagnostics_world(tmp_path / "second", Grants(Permanent("no delegation key for you")))
    result = refused.manual("collect-diagnostics")
    refused.drain()
    job = refused.job(result)
    assert job.status == "failed" and job.history[-1].reason == "dispatch refused: no delegation key for you"
