"""Driving a campaign in this process: worker threads take the in-process queue's messages one step at a
time, and a campaign job that ends releases its successor there and then, as the queue worker does.

Used by ``remediate campaign`` (and the benchmark). A worker with nothing due sleeps until the next
message is due or until a step wakes it; a step wakes one sleeper only when it queued something due
before every sleeper would look again, so a step's end does not set every idle thread scanning the queue.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from . import campaigns
from .errors import InvalidInput

if TYPE_CHECKING:
    from .jobs import Job
    from .services import Services

__all__ = ["drive"]


def drive(
    services: Services,
    campaign_id: str,
    *,
    on_status: Callable[[Mapping[str, Any]], None] | None = None,
    wait: Callable[[float], None] | None = None,
    refresh_seconds: float = 0.5,
    workers: int = 1,
) -> dict[str, Any]:
    """Work the queue until the campaign ends, or nothing here can move it any more.

    Like ``worker.drain``, one runner step per message, on ``workers`` threads (the Functions host runs
    many workers too); a campaign job that ends releases its successor there and then, as the queue
    worker does. ``on_status`` gets the full status at most every ``refresh_seconds`` (a campaign of
    thousands of VMs is not re-counted for every job) and once at the end. With a clock that only moves
    when told (``ManualClock``), waiting advances it, and one worker keeps that deterministic.
    """
    if workers < 1:
        raise InvalidInput(f"workers {workers} must be at least 1")
    advance = getattr(services.clock, "advance", None)
    if wait is None:
        wait = advance if callable(advance) else time.sleep
    if callable(advance) and workers > 1:
        raise InvalidInput("a manual clock moves with one worker only")
    driver = _Driver(services, campaign_id, wait, on_status, refresh_seconds, workers)
    runner = services.runner
    with _WIRING:
        wired = runner.on_end
        other = getattr(wired, "__self__", None)
        if isinstance(other, _Driver):
            # The runner has one ``on_end``: a second drive would take it from the first, whose jobs
            # would then move their campaign on only from the look after each step.
            raise InvalidInput(f"campaign {other.campaign_id} is already being driven by this process")
        runner.on_end = driver.job_ended
    try:
        if workers == 1:
            driver.work()
        else:
            threads = [threading.Thread(target=driver.work, name=f"campaign-{i}") for i in range(workers)]
            for thread in threads:
                thread.start()
            try:
                for thread in threads:
                    thread.join()
            except KeyboardInterrupt:
                # Each worker finishes the step it is in (a step is one write), then stops.
                driver._halt()
                for thread in threads:
                    thread.join()
                raise
    finally:
        with _WIRING:
            runner.on_end = wired
    if driver.error is not None:
        raise driver.error
    final = campaigns.campaign_status(services, campaign_id)
    if on_status is not None:
        on_status(final)
    return final


# Guards the runner's ``on_end`` while a drive wires or unwires it (threads of one process).
_WIRING = threading.Lock()


class _Driver:
    """The loop each worker thread runs; stops when the campaign ends or nothing here can move it."""

    def __init__(
        self,
        services: Services,
        campaign_id: str,
        wait: Callable[[float], None],
        on_status: Callable[[Mapping[str, Any]], None] | None,
        refresh_seconds: float,
        workers: int,
    ) -> None:
        self.services = services
        self.campaign_id = campaign_id
        self.wait = wait
        self.on_status = on_status
        self.refresh_seconds = refresh_seconds
        self.workers = workers
        self.due_in: Callable[[], float | None] | None = getattr(services.queue, "due_in", None)
        self.stop = threading.Event()
        self.real_time = wait is time.sleep
        self.lock = threading.Lock()
        # Idle workers sleep on it until the next message is due; ``sleepers`` holds when each will look
        # again (time.monotonic), so a step wakes one only when it queued something due sooner.
        self.wakeup = threading.Condition(self.lock)
        self.sleepers: dict[int, float] = {}
        self.busy = 0
        self.repairing = False
        # Jobs whose step moved the campaign on (``job_ended``), until the look after that step.
        self.moved_on: set[str] = set()
        self.shown = float("-inf")
        self.error: BaseException | None = None

    def job_ended(self, job: Job) -> None:
        """The runner's ``on_end`` while this drives: a job of this campaign whose run result ended it
        moves the campaign on from that step, before its VM's lease goes back and its run command is
        deleted, and an idle worker is woken for the job it released. The look after the step then
        does nothing for it; should this fail, that look does it."""
        if job.campaign_id != self.campaign_id:
            return
        record = campaigns.on_job_finished(self.services, job)
        with self.lock:
            self.moved_on.add(job.id)
        self._moved_on(record)

    def _moved_on_already(self, job: Job) -> bool:
        with self.lock:
            if job.id not in self.moved_on:
                return False
            self.moved_on.discard(job.id)
            return True

    def _moved_on(self, record: Mapping[str, Any] | None) -> None:
        if record is not None and record.get("status") in campaigns.FINAL:
            self._halt()
            return
        self._wake_if_sooner()

    def _halt(self) -> None:
        """Every worker stops after its step; sleeping ones at once."""
        self.stop.set()
        with self.lock:
            self.wakeup.notify_all()

    def _wake_if_sooner(self) -> None:
        """Wake one sleeping worker when a message is due before any sleeper would look again, or when
        nothing is queued and no worker is busy (a sleeper then repairs or ends the drive)."""
        with self.lock:
            if not self.sleepers:
                return
            due = self.due_in() if self.due_in is not None else None
            if due is None:
                if self.busy == 0:
                    self.wakeup.notify()
            elif time.monotonic() + due < min(self.sleepers.values()):
                self.wakeup.notify()

    def work(self) -> None:
        try:
            self._loop()
        except BaseException as error:  # a crash stops every worker, and the caller sees it
            with self.lock:
                self.error = self.error or error
            self._halt()

    def _loop(self) -> None:
        from .worker import handle

        queue, runner = self.services.queue, self.services.runner
        if self.services.store.get_campaign(self.campaign_id).get("status") in campaigns.FINAL:
            self._halt()
        while not self.stop.is_set():
            with self.lock:
                # Threads take one message each: a poll that is due is never held behind another
                # thread's batch while a thread is free.
                messages = queue.receive(max_messages=1 if self.workers > 1 else 16, visibility_timeout=300)
                if messages:
                    self.busy += 1
                    if self.sleepers and self.due_in is not None and self.due_in() == 0:
                        self.wakeup.notify()  # another message is due now: one more worker for it
                idle = self.busy == 0
            if not messages:
                self._idle(idle)
                continue
            try:
                for message in messages:
                    step = handle(runner, queue, message.job_id, dequeue_count=message.dequeue_count)
                    if step.job.terminal and step.job.campaign_id == self.campaign_id:
                        # What the queue worker does: the ended job releases its successor (before the
                        # message goes, so a crash in between sends it again on the next delivery).
                        if not self._moved_on_already(step.job):
                            self._moved_on(campaigns.on_job_finished(self.services, step.job))
                        self._show()
                    queue.delete(message)
            finally:
                with self.lock:
                    self.busy -= 1
                self._wake_if_sooner()

    def _idle(self, idle: bool) -> None:
        pending = self.due_in() if self.due_in is not None else None
        if pending is not None:
            self._nap(max(pending, 0.0))
            return
        if not idle:
            self._nap(1.0)  # another worker is mid-step: its end wakes one if it queued something
            return
        with self.lock:
            busy_elsewhere = self.repairing
            self.repairing = True
        if busy_elsewhere:
            self._nap(0.05)
            return
        try:
            # Nothing queued and nobody working: a released job has no message here (none is lost in
            # this process, but an earlier one may have died), so the repair sends it now.
            status = campaigns.tick(self.services, self.campaign_id, resend_after=timedelta(0))
        finally:
            with self.lock:
                self.repairing = False
        if status["status"] in campaigns.FINAL:
            self._halt()
            return
        with self.lock:
            quiet = self.busy == 0
        if quiet and (self.due_in is None or self.due_in() is None):
            # Nothing queued here, yet unfinished: jobs wait for an operator's approval.
            self._halt()
            return
        self._wake_if_sooner()

    def _nap(self, seconds: float) -> None:
        if not self.real_time or self.workers == 1:
            self.wait(seconds)
            return
        # Until the next message is due (looked at again here, under the lock a step's end takes to wake
        # a sleeper, so a message queued since is never slept through), or a step wakes this one.
        with self.lock:
            due = self.due_in() if self.due_in is not None else None
            timeout = min(seconds, 1.0) if due is None else min(seconds, due, 1.0)
            if self.stop.is_set() or timeout <= 0:
                return
            me = threading.get_ident()
            self.sleepers[me] = time.monotonic() + timeout
            try:
                self.wakeup.wait(timeout)
            finally:
                del self.sleepers[me]

    def _show(self) -> None:
        if self.on_status is None:
            return
        now = time.monotonic()
        with self.lock:
            due = now - self.shown >= self.refresh_seconds
            if due:
                self.shown = now
        if due:
            self.on_status(campaigns.campaign_status(self.services, self.campaign_id))
