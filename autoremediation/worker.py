"""One queue message -> the job's runner steps -> the next message. Used by the queue trigger and the CLI.

A message advances its job one step, and more while the runner says "next step now" (planned ->
dispatching -> the run command): those steps use the job the previous one wrote, so they cost neither a
queue round trip (a put, a receive, a delete) nor a read of the job. Each is still one runner step with
its own compare-and-swap write, so a crash between them leaves the job where the last write put it and
the message, not yet deleted, comes back to carry on from there.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from .ports import Queue, QueueMessage
from .runner import Runner, Step

DEFAULT_MAX_DEQUEUE = 5  # host.json extensions.queues.maxDequeueCount
# Steps one message may carry on through: planned -> dispatching -> running needs two; the bound keeps a
# job that keeps asking for "now" (e.g. a poll interval of 0) from holding one execution forever.
MAX_STEPS_PER_MESSAGE = 4


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
        # the runner's compare-and-swap absorbs; the other order could lose the job.
        queue.send(job_id, step.requeue_after)
    return step


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
