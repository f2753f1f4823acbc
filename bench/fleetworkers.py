"""Worker processes on one Storage Queue and one Table store, as Function instances would be.

Each process is what the ``dispatch_worker`` queue trigger does, in a loop: receive a message, advance
its job one step (``worker.handle``), tick the job's campaign when the job ended, delete the message.
A process shares nothing with the others but Azurite and ARM: no memory, no ARM budget. Used by the
throttled-campaign figures (``bench.campaign``) and the many-workers test (workers killed at random).

``python -m bench.fleetworkers --threads N --stop FILE`` runs one worker until FILE exists; its settings
come from the environment, as a Function App's do.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# Short, so a killed worker's messages come back soon; the host renews it while a step runs.
VISIBILITY_SECONDS = 10
IDLE_PAUSE_SECONDS = 0.05


def worker_env(
    *,
    storage: str,
    arm_endpoint: str,
    ca_bundle: str,
    subscription: str,
    name: str,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The app settings of every worker of one run (a Function App's environment)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REMEDIATION_", "AZURE_"))}
    env.update(
        REMEDIATION_JOB_STORE="table",
        REMEDIATION_STORAGE=storage,
        REMEDIATION_QUEUE_NAME=f"{name}-jobs",
        REMEDIATION_TABLE_PREFIX=name.replace("-", ""),
        REMEDIATION_ARM_ENDPOINT=arm_endpoint,
        REMEDIATION_ARM_CA_BUNDLE=ca_bundle,
        AZURE_SUBSCRIPTION_ID=subscription,
        REMEDIATION_BREAKER_THRESHOLD="1000000",  # the campaign's error budget is what is measured
        PYTHONPATH=str(ROOT),
    )
    env.update(extra or {})
    return env


def _work(services: Any, stop: Path, counts: dict[str, int], lock: threading.Lock) -> None:
    from autoremediation.campaigns import on_job_finished
    from autoremediation.errors import NotFound
    from autoremediation.worker import handle

    queue = services.queue
    while not stop.exists():
        messages = queue.receive(max_messages=4, visibility_timeout=VISIBILITY_SECONDS)
        if not messages:
            time.sleep(IDLE_PAUSE_SECONDS)  # an empty queue: poll again, as the host does
            continue
        for message in messages:
            try:
                step = handle(services.runner, queue, message.job_id, dequeue_count=message.dequeue_count)
                if step.job.terminal and step.job.campaign_id:
                    on_job_finished(services, step.job)
            except NotFound:
                pass  # the job is gone: retrying cannot help
            except Exception:
                with lock:
                    counts["errors"] += 1
                continue  # the message comes back after its visibility timeout, as with the host
            queue.delete(message)
            with lock:
                counts["steps"] += 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fleetworkers")
    parser.add_argument("--threads", type=int, default=8, help="messages worked at once (host batchSize)")
    parser.add_argument("--stop", type=Path, required=True, help="the worker ends when this file exists")
    args = parser.parse_args(argv)
    from autoremediation.services import Services
    from autoremediation.settings import Settings

    services = Services(Settings.from_env())
    _ = services.runner, services.queue, services.store  # built before the threads share them
    counts = {"steps": 0, "errors": 0}
    lock = threading.Lock()
    threads = [
        threading.Thread(target=_work, args=(services, args.stop, counts, lock), daemon=True)
        for _ in range(args.threads)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(f"steps={counts['steps']} errors={counts['errors']}", flush=True)
    return 0


@dataclass
class Pool:
    """Worker processes the caller can kill and replace; all stop when the pool closes."""

    env: dict[str, str]
    stop: Path
    threads: int = 8
    processes: list[subprocess.Popen[str]] = field(default_factory=list)
    killed: int = 0

    def start(self) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.fleetworkers",
                "--threads",
                str(self.threads),
                "--stop",
                str(self.stop),
            ],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.processes.append(process)
        return process

    def kill_one(self, index: int) -> None:
        """SIGKILL a live worker wherever it is (mid-step, mid-PUT), and start another in its place."""
        live = [p for p in self.processes if p.poll() is None]
        if not live:
            return
        victim = live[index % len(live)]
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)
        self.killed += 1
        self.start()

    def close(self) -> None:
        self.stop.touch()
        for process in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=30)
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)


@contextlib.contextmanager
def pool(env: dict[str, str], folder: Path, processes: int, threads: int = 8) -> Iterator[Pool]:
    folder.mkdir(parents=True, exist_ok=True)
    workers = Pool(env, folder / "stop", threads)
    for _ in range(processes):
        workers.start()
    try:
        yield workers
    finally:
        workers.close()


if __name__ == "__main__":
    sys.exit(main())
