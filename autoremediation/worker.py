"""One queue message -> the job's runner steps -> the next message. Used by the queue trigger and the CLI.

A message advances its job one step, and more while the runner says "next step now" (planned ->
dispatching -> the run command): those steps use the job the previous one wrote, so they cost neither a
queue round trip (a put, a receive, a delete) nor a read of the job. Each is still one runner step with
its own compare-and-swap write, so a crash between them leaves the job where the last write put it and
the message, not yet deleted, comes back to carry on from there.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from .errors import NotFound
from .ports import LONGEST_QUEUE_DELAY_SECONDS, Queue, QueueMessage
from .runner import Runner, Step

if TYPE_CHECKING:
    from .jobs import Job
    from .services import Services

log = logging.getLogger("autoremediation.worker")

DEFAULT_MAX_DEQUEUE = 5  # host.json extensions.queues.maxDequeueCount
# Steps one message may carry on through: planned -> dispatching -> running needs two; the bound keeps a
# job that keeps asking for "now" (e.g. a poll interval of 0) from holding one execution forever.
MAX_STEPS_PER_MESSAGE = 4
# Campaign jobs one message may carry on, one after another, when each ends at once (e.g. skipped by a
# guard): past that, the next one gets its own message.
MAX_RELEASED_PER_MESSAGE = 4


def handle(
    runner: Runner,
    queue: Queue,
    job_id: str,
    *,
    dequeue_count: int = 1,
    max_dequeue: int = DEFAULT_MAX_DEQUEUE,
) -> Step:
    """Advance the job; enqueue its next message when it needs one.

    On the last delivery the queue would move the message to the poison queue, where nobody looks:
    the job ends as failed, with the reason, instead.
    """
    if dequeue_count >= max_dequeue:
        try:
            step = _carry_on(runner, job_id)
        except Exception as error:
            job = runner.give_up(job_id, f"the worker failed {dequeue_count} times; last error: {error}")
            return Step(job, None, "gave up")
    else:
        step = _carry_on(runner, job_id)
    if step.requeue_after is not None:
        # Sent before the current message is completed: a crash in between gives a duplicate, which
        # the runner's compare-and-swap absorbs; the other order could lose the job. A wait longer than
        # a queue message can be delayed is a look earlier than asked: the step waits again.
        queue.send(job_id, min(step.requeue_after, LONGEST_QUEUE_DELAY_SECONDS))
    return step


def handle_message(
    services: Services,
    job_id: str,
    *,
    dequeue_count: int = 1,
    max_dequeue: int = DEFAULT_MAX_DEQUEUE,
) -> Step:
    """What the queue trigger does with one message: ``handle``; then, when the job ended as part of a
    campaign, the campaign moves on (``campaigns.on_job_finished``), and the job it releases is
    carried on in this same execution, up to its first poll, instead of getting a message of its own.

    That saves the released job's message (its send, its receive, its delete) and an execution, and
    changes nothing a crash could expose: this message is deleted only once this execution ends, so a
    worker that dies anywhere in the released job's steps leaves this message to come back, find its
    job ended and carry the released job on again from its last write (as the message it would have
    had would). A released job whose step fails here gets its message after all, with its own
    retries: its failure never counts against this message's deliveries.
    """
    step = handle(
        services.runner, services.queue, job_id, dequeue_count=dequeue_count, max_dequeue=max_dequeue
    )
    job = step.job
    for carried in range(MAX_RELEASED_PER_MESSAGE + 1):
        if not (job.terminal and job.campaign_id):
            break
        if carried == MAX_RELEASED_PER_MESSAGE:
            _campaign_moves_on(services, job)  # the next job's message goes out as it is
            break
        released = _carry_on_released(services, job)
        if released is None:
            break
        job = released.job
    return step


def _campaign_moves_on(services: Services, job: Job) -> None:
    from .campaigns import on_job_finished

    on_job_finished(services, job)


def _carry_on_released(services: Services, job: Job) -> Step | None:
    """The campaign moves on from ``job``; the job it releases, if any, is advanced here."""
    from .campaigns import on_job_finished

    kept: list[str] = []

    def keep_first(job_id: str) -> None:
        # The first job released is carried on here; any other gets its message as it would have.
        if kept:
            services.queue.send(job_id)
        else:
            kept.append(job_id)

    on_job_finished(services, job, send=keep_first)
    if not kept:
        return None
    try:
        return handle(services.runner, services.queue, kept[0])
    except NotFound:
        return None  # deleted meanwhile: nothing to release
    except Exception as error:
        log.warning(
            "job %s: released by %s, not carried on (%s): it gets its own message", kept[0], job.id, error
        )
        services.queue.send(kept[0])
        return None


def _carry_on(runner: Runner, job_id: str) -> Step:
    """The job's steps while the runner says "next step now", each from the job the last one wrote."""
    step = runner.advance(job_id)
    for _ in range(MAX_STEPS_PER_MESSAGE - 1):
        if step.requeue_after != 0:
            break
        step = runner.advance(job_id, after=step)
    return step


def drain(
    runner: Runner,
    queue: Queue,
    *,
    wait: Callable[[float], None] = time.sleep,
    due_in: Callable[[], float | None] | None = None,
    on_step: Callable[[Step], None] | None = None,
    max_steps: int = 100_000,
) -> int:
    """Work the queue until it is empty (the CLI's worker). Returns how many steps ran."""
    steps = 0
    while steps < max_steps:
        messages: list[QueueMessage] = queue.receive(max_messages=16, visibility_timeout=300)
        if not messages:
            pending = due_in() if due_in is not None else None
            if pending is None:
                return steps
            wait(max(pending, 0.0))
            continue
        for message in messages:
            step = handle(runner, queue, message.job_id, dequeue_count=message.dequeue_count)
            queue.delete(message)
            steps += 1
            if on_step is not None:
                on_step(step)
    return steps
