"""The ``sweeper`` timer: every five minutes, the chores in ``autoremediation.sweeper``.

Not run on startup: every instance that starts would sweep at once, and a scale-out would start many.
The chores are safe to repeat, so an overlap with another instance's sweep does no harm.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import azure.functions as func

from . import runtime

if TYPE_CHECKING:
    from ..jobs import Job
    from ..services import Services

bp = func.Blueprint()
log = logging.getLogger("autoremediation.functions.sweeper")
SCHEDULE = "0 */5 * * * *"


def _campaign_tick(engine: Services) -> Callable[[str], object] | None:
    try:
        from ..campaigns import tick
    except ModuleNotFoundError:
        return None
    return lambda campaign_id: tick(engine, campaign_id)


def _campaign_job_ended(engine: Services) -> Callable[[Job], object] | None:
    """An approval that ran out ends a job in the sweeper, not in the queue worker: the campaign's next
    job is released here, not at a repair ten minutes later."""
    try:
        from ..campaigns import on_job_finished
    except ModuleNotFoundError:
        return None
    return lambda job: on_job_finished(engine, job)


@bp.function_name("sweeper")
@bp.timer_trigger(arg_name="timer", schedule=SCHEDULE, run_on_startup=False, use_monitor=True)
def sweeper(timer: func.TimerRequest) -> None:
    from ..sweeper import SweepPolicy, sweep

    engine = runtime.services()
    if timer.past_due:
        log.info("sweeper: running late (the previous run or the host was busy)")
    report = sweep(
        engine.store,
        engine.queue,
        engine.clock,
        SweepPolicy.from_settings(engine.settings),
        advance=lambda job_id: engine.runner.advance(job_id),
        tick=_campaign_tick(engine),
        ended=_campaign_job_ended(engine),
        warn=engine.notifier.approval_expiring if engine.notifier else None,
    )
    log.info("sweeper: %s", json.dumps(report.to_dict()))
