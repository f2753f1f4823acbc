"""Worker processes on one Storage Queue and one Table store, as Function instances would be.

Each process is what the Functions host and the ``dispatch_worker`` queue trigger do: a listener fetches
batches of messages (backing off while the queue is empty), and ``--threads`` messages at a time each
advance their job (``worker.handle_message``: the job's steps, and when it ended as part of a campaign,
the campaign moving on with the job it releases), and are deleted.
A process shares nothing with the others but Azurite and ARM: no memory, no ARM budget. Used by the
throttled-campaign figures (``bench.campaign``) and the many-workers test (workers killed at random).

``python -m bench.fleetworkers --threads N --stop FILE`` runs one worker until FILE exists; its settings
come from the environment, as a Function App's do.
"""

from __future__ import annotations

import argparse
import contextlib
import json
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
# host.json extensions.queues: maxPollingInterval 2 s; the host starts fast again after a message.
MIN_POLL_SECONDS = 0.1
MAX_POLL_SECONDS = 2.0


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


def _step(services: Any, message: Any, counts: dict[str, int], lock: threading.Lock) -> None:
    """What the ``dispatch_worker`` function does with one message (the same call)."""
    from autoremediation.errors import NotFound
    from autoremediation.worker import handle_message

    try:
        handle_message(services, message.job_id, dequeue_count=message.dequeue_count)
    except NotFound:
        pass  # the job is gone: retrying cannot help
    except Exception:
        with lock:
            counts["errors"] += 1
        return  # the message comes back after its visibility timeout, as with the host
    services.queue.delete(message)
    with lock:
        counts["steps"] += 1


def _poll(services: Any, stop: Path, threads: int, counts: dict[str, int], lock: threading.Lock) -> None:
    """The host's queue listener: fetch a batch when fewer than half the slots are busy; when the queue
    is empty, poll less often, up to host.json's ``maxPollingInterval``; back to fast after a message."""
    from concurrent.futures import ThreadPoolExecutor

    busy = threading.Semaphore(threads)
    pause = MIN_POLL_SECONDS
    with ThreadPoolExecutor(threads) as executor:
        while not stop.exists():
            free = sum(1 for _ in range(threads) if busy.acquire(blocking=False))
            for _ in range(free):
                busy.release()
            if free < threads // 2:
                time.sleep(MIN_POLL_SECONDS)  # wait for slots, as the host's newBatchThreshold does
                continue
            messages = services.queue.receive(
                max_messages=min(free, 32), visibility_timeout=VISIBILITY_SECONDS
            )
            if not messages:
                time.sleep(pause)  # an empty queue: poll again later, as the host does
                pause = min(pause * 2, MAX_POLL_SECONDS)
                continue
            pause = MIN_POLL_SECONDS
            for message in messages:
                busy.acquire()

                def run(message: Any = message) -> None:
                    try:
                        _step(services, message, counts, lock)
                    finally:
                        busy.release()

                executor.submit(run)


def count_storage_requests(counts: dict[str, int], lock: threading.Lock) -> None:
    """Count every HTTP request this process sends to storage (Table and Queue): the bill's unit."""
    from urllib.parse import urlsplit

    from azure.core.pipeline.transport import RequestsTransport

    send = RequestsTransport.send

    def counted(self: Any, request: Any, **kwargs: Any) -> Any:
        path = urlsplit(request.url).path
        if "/devstoreaccount1" in path:  # Azurite's account: Table and Queue
            what = f"storage {request.method} {path.split('/')[2].split('(')[0]}"
            with lock:
                counts["storage"] += 1
                if os.environ.get("BENCH_STORAGE_DETAIL"):
                    counts[what] = counts.get(what, 0) + 1
        return send(self, request, **kwargs)

    RequestsTransport.send = counted  # type: ignore[method-assign]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fleetworkers")
    parser.add_argument("--threads", type=int, default=8, help="messages worked at once (host batchSize)")
    parser.add_argument("--stop", type=Path, required=True, help="the worker ends when this file exists")
    args = parser.parse_args(argv)
    from autoremediation.services import Services
    from autoremediation.settings import Settings

    services = Services(Settings.from_env())
    _ = services.runner, services.queue, services.store  # built before the threads share them
    counts = {"steps": 0, "errors": 0, "storage": 0}
    lock = threading.Lock()
    count_storage_requests(counts, lock)
    # Warm, as a Function instance is once the host started: the figures time the work, not imports.
    (args.stop.parent / f"ready-{os.getpid()}").touch()
    _poll(services, args.stop, args.threads, counts, lock)
    print(json.dumps(counts), flush=True)
    return 0


@dataclass
class Pool:
    """Worker processes the caller can kill and replace; all stop when the pool closes."""

    env: dict[str, str]
    stop: Path
    threads: int = 8
    processes: list[subprocess.Popen[str]] = field(default_factory=list)
    killed: int = 0
    totals: dict[str, int] = field(default_factory=dict)

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

    def ready(self) -> bool:
        """Every live worker has made its clients and is polling the queue."""
        live = [p for p in self.processes if p.poll() is None]
        return all((self.stop.parent / f"ready-{p.pid}").exists() for p in live)

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
        """Stop every worker; ``totals`` adds up what the ones that ended cleanly counted."""
        self.stop.touch()
        for process in self.processes:
            try:
                out, _ = process.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
                continue
            lines = [line for line in (out or "").splitlines() if line.startswith("{")]
            if process.returncode == 0 and lines:
                for key, value in json.loads(lines[-1]).items():
                    self.totals[key] = self.totals.get(key, 0) + int(value)


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
