"""Fixtures for the console: an engine behind App Service authentication, and jobs in each state."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from autoremediation import jobs
from autoremediation.blueprints import runtime
from autoremediation.services import set_services
from autoremediation.settings import Settings
from tests.functions.conftest import Engine, engine, make_engine, vm_id

__all__ = ["add_job", "console_engine", "engine"]

NSG_EVIDENCE = {
    "rule": "deny-ssh-subnet",
    "priority": 100,
    "nsg_id": "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-demo/providers/"
    "Microsoft.Network/networkSecurityGroups/nsg-subnet",
    "level": "subnet",
    "direction": "Inbound",
    "port": 22,
    "source": "10.0.1.0/26",
}


@pytest.fixture
def console_engine(tmp_path: Path) -> Iterator[Engine]:
    settings = Settings(sqlite_path=str(tmp_path / "jobs.db"), poll_seconds=15, platform_auth=True)
    made = make_engine(tmp_path, settings)
    set_services(made.services)
    runtime.reset_telemetry_flag()
    yield made
    set_services(None)
    made.store.close()


def add_job(
    engine: Engine,
    key: str,
    *,
    vm: str = "vm-linux-locked",
    remediation: str = "restore-management-access",
    status: str = jobs.AWAITING_APPROVAL,
    requested_by: str = "alert",
    reason: str = "denied by rule deny-ssh-subnet (priority 100) of subnet NSG nsg-subnet",
    parameters: dict[str, str] | None = None,
    **extra: Any,
) -> str:
    """A job stored in ``status`` the way the engine would have left it there."""
    now = engine.clock.now()
    job = jobs.new_job(
        idempotency_key=key,
        remediation=remediation,
        condition="nsg-lockout" if remediation == "restore-management-access" else "disk-full",
        target=vm_id(vm),
        parameters=parameters if parameters is not None else {"port": "22"},
        now=now,
        actor=requested_by,
        reason=reason,
        evidence=extra.pop("evidence", NSG_EVIDENCE),
        **extra,
    )
    if status == jobs.AWAITING_APPROVAL:
        job = jobs.transition(
            job,
            jobs.AWAITING_APPROVAL,
            now=now,
            actor="worker",
            reason="risk high: an operator must approve",
            approval_required=True,
            approval_expires_at=(now + timedelta(minutes=60)).isoformat(),
        )
    elif status != jobs.PLANNED:
        job = jobs.transition(job, jobs.DISPATCHING, now=now, actor="worker", reason="all guards passed")
        if status != jobs.DISPATCHING:
            job = jobs.transition(job, jobs.RUNNING, now=now, actor="worker", reason="run command started")
            job = jobs.transition(job, jobs.VERIFYING, now=now, actor="worker", reason="run ended")
            job = jobs.transition(
                job,
                status,
                now=now,
                actor="worker",
                reason="script reported fixed" if status == jobs.SUCCEEDED else "script reported not-fixed",
                outcome={
                    "exitCode": 0 if status == jobs.SUCCEEDED else 1,
                    "result": {
                        "status": "fixed",
                        "before": {"freePercent": 7.0},
                        "after": {"freePercent": 21.5},
                    },
                    "outputTail": 'cleaning /var/log\nREMEDIATION_RESULT {"status": "fixed"}',
                },
            )
    created, _ = engine.store.create(job)
    return created.id
