"""Signals in, jobs out: the part of the alert webhook, the Event Grid trigger and the manual API
that is the same for all three. Errors keep their meaning for the caller: bad input before anything
was written is the caller's fault; a failure after that is the app's (or its storage's)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ..errors import InvalidInput, InvalidTransition, NotFound
from . import runtime

if TYPE_CHECKING:
    from ..intake import IntakeResult
    from ..planning import PlanReport
    from ..services import Services
    from ..signals.model import Signal


class AppFault(Exception):
    """Wraps an error that happened after the input was accepted: never answered as a 400."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


@contextmanager
def app_work() -> Iterator[None]:
    """Inside: the request was valid, so an error is the app's, except a missing or busy job."""
    try:
        yield
    except (NotFound, InvalidTransition, AppFault):
        raise
    except Exception as error:
        raise AppFault(error) from error


def engine(*parts: str) -> Services:
    """The engine with ``parts`` (e.g. "store", "queue") built: a failure there is the app's."""
    with app_work():
        built = runtime.services()
        for part in parts:
            getattr(built, part)
    return built


def plan(signals: Sequence[Signal], *, strict_parameters: bool) -> PlanReport:
    """Route and decide. ``strict_parameters``: a parameter that fails the catalog's checks is refused
    (InvalidInput) instead of ending as a skipped job, as an operator's own request should be."""
    report = engine("planner").planner.plan_signals(signals)
    if strict_parameters:
        for item in report.plans:
            if item.decision.action == "skip" and item.decision.guard == "parameters":
                raise InvalidInput(f"{item.finding.target.id}: {item.decision.reason}")
    return report


def admit(report: PlanReport, *, actor: str) -> IntakeResult:
    with app_work():
        return engine("intake").intake.admit(report, actor=actor)


def result_body(result: IntakeResult) -> dict[str, Any]:
    body = result.to_dict()
    return {"jobIds": [a.job.id for a in result.jobs], **body}
