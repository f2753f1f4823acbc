"""Where a campaign stands, counted from its jobs: for the API, the CLI and the console.

An operator's read, not the hot path: it lists every job of the campaign.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import jobs
from .campaign_chain import released
from .campaign_record import CREATING, ERRORS, IN_FLIGHT, public
from .campaign_request import check_campaign_id
from .jobs import Job, parse_time

if TYPE_CHECKING:
    from .services import Services


@dataclass
class Schedule:
    """The campaign's jobs, classified."""

    waiting: int = 0  # planned, not released yet
    in_flight: int = 0  # released (planned, its message on the way), awaiting approval, dispatching, ...
    succeeded: int = 0
    failed: int = 0  # failed + timed out: what the error budget counts
    skipped: int = 0
    cancelled: int = 0  # cancelled + expired
    total: int = 0

    @classmethod
    def of(cls, campaign_jobs: Sequence[Job], released_ids: Iterable[str]) -> Schedule:
        released_set = set(released_ids)
        schedule = cls(total=len(campaign_jobs))
        for job in campaign_jobs:
            if job.status == jobs.PLANNED:
                if job.id in released_set:
                    schedule.in_flight += 1
                else:
                    schedule.waiting += 1
            elif job.status in IN_FLIGHT:
                schedule.in_flight += 1
            elif job.status == jobs.SUCCEEDED:
                schedule.succeeded += 1
            elif job.status in ERRORS:
                schedule.failed += 1
            elif job.status == jobs.SKIPPED:
                schedule.skipped += 1
            else:
                schedule.cancelled += 1
        return schedule

    def counts(self) -> dict[str, int]:
        return {
            "total": self.total,
            "planned": self.waiting,
            "inFlight": self.in_flight,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "skipped": self.skipped,
            "cancelled": self.cancelled,
        }


def status_of(
    services: Services, campaign: Mapping[str, Any], campaign_jobs: Sequence[Job]
) -> dict[str, Any]:
    """The public record with every count, from jobs already read."""
    started = parse_time(campaign.get("startedAt"))
    released_ids = (
        []
        if campaign.get("status") == CREATING
        else [j.id for j, _ in released(campaign_jobs, started)] + list(campaign.get("releasing") or {})
    )
    record = public(services, campaign)
    counts = Schedule.of(campaign_jobs, released_ids).counts()
    record["counts"] = counts
    done = counts["total"] - counts["planned"] - counts["inFlight"]
    record["done"] = done
    record["progress"] = round(done / counts["total"], 4) if counts["total"] else 1.0
    return record


def campaign_status(services: Services, campaign_id: str) -> dict[str, Any]:
    """The campaign record with every count, from its jobs; NotFound when there is no such campaign."""
    campaign = services.store.get_campaign(check_campaign_id(campaign_id))
    return status_of(services, campaign, services.store.list(campaign_id=campaign_id))
