"""A JobStore that announces every transition it writes, whoever writes it.

Transitions are written in several places (the runner, intake cancelling on a Resolved alert, an
operator's rejection, the sweeper, a campaign stopping): wrapping the store lets each of them be
announced exactly once, after its compare-and-swap write succeeded, without each writer knowing about
telemetry. A write that loses the swap raises and announces nothing.

Which transitions a write adds is known from the version it was read at: every job the store hands out
is remembered (id -> version, history length), in a bounded map. A write of a job this wrapper never
handed out (not done by the engine's code) falls back to the transitions stamped at the write's time.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from ..jobs import Job, Transition
from ..ports import JobStore, LeaseFacts

log = logging.getLogger("autoremediation.store")
Announce = Callable[[Job, Transition], None]
REMEMBERED = 8192


class ObservedJobStore:
    def __init__(self, inner: JobStore, announce: Announce) -> None:
        self.inner = inner
        self.announce = announce
        self._seen: OrderedDict[str, tuple[int, int]] = OrderedDict()
        self._lock = threading.Lock()

    # -- bookkeeping ----------------------------------------------------------------------------

    def _remember(self, job: Job) -> Job:
        with self._lock:
            self._seen[job.id] = (job.version, len(job.history))
            self._seen.move_to_end(job.id)
            while len(self._seen) > REMEMBERED:
                self._seen.popitem(last=False)
        return job

    def _added(self, job: Job) -> tuple[Transition, ...]:
        with self._lock:
            seen = self._seen.get(job.id)
        if seen is not None and seen[0] == job.version:
            return job.history[seen[1] :]
        return tuple(t for t in job.history if t.at == job.updated_at)

    def _tell(self, job: Job, transitions: Sequence[Transition]) -> None:
        for transition in transitions:
            try:
                self.announce(job, transition)
            except Exception:  # telemetry must never fail a write that already happened
                log.exception("job %s: announcing %s failed", job.id, transition.target)

    # -- JobStore -------------------------------------------------------------------------------

    def create(self, job: Job) -> tuple[Job, bool]:
        stored, created = self.inner.create(job)
        self._remember(stored)
        if created:
            self._tell(stored, stored.history)
        return stored, created

    def create_many(self, new_jobs: Sequence[Job]) -> list[tuple[Job, bool]]:
        results = self.inner.create_many(new_jobs)
        for stored, created in results:
            self._remember(stored)
            if created:
                self._tell(stored, stored.history)
        return results

    def get(self, job_id: str) -> Job:
        return self._remember(self.inner.get(job_id))

    def get_many(self, job_ids: Sequence[str]) -> dict[str, Job]:
        return {job_id: self._remember(job) for job_id, job in self.inner.get_many(job_ids).items()}

    def update(self, job: Job) -> Job:
        added = self._added(job)
        stored = self._remember(self.inner.update(job))
        self._tell(stored, added)
        return stored

    def list(
        self,
        *,
        target: str | None = None,
        status: str | Sequence[str] | None = None,
        remediation: str | None = None,
        alert_id: str | None = None,
        campaign_id: str | None = None,
        since: datetime | None = None,
        limit: int | None = None,
    ) -> list[Job]:
        found = self.inner.list(
            target=target,
            status=status,
            remediation=remediation,
            alert_id=alert_id,
            campaign_id=campaign_id,
            since=since,
            limit=limit,
        )
        for job in found:
            self._remember(job)
        return found

    def last_outcome(self, target: str, remediation: str) -> Job | None:
        return self.inner.last_outcome(target, remediation)

    def acquire_lease(
        self, key: str, holder: str, ttl_seconds: float, now: datetime, *, remediation: str | None = None
    ) -> bool:
        return self.inner.acquire_lease(key, holder, ttl_seconds, now, remediation=remediation)

    def release_lease(
        self, key: str, holder: str, *, ran: tuple[str, datetime] | None = None, tag: str | None = None
    ) -> None:
        self.inner.release_lease(key, holder, ran=ran, tag=tag)

    def lease_tag(self, key: str) -> str | None:
        return self.inner.lease_tag(key)

    def lease_facts(self, key: str, remediation: str, now: datetime, *, runs_since: datetime) -> LeaseFacts:
        return self.inner.lease_facts(key, remediation, now, runs_since=runs_since)

    def lease_holder(self, key: str, now: datetime) -> str | None:
        return self.inner.lease_holder(key, now)

    def sweep_leases(self, now: datetime) -> int:
        return self.inner.sweep_leases(now)

    def delete_jobs(self, ended_before: datetime) -> int:
        return self.inner.delete_jobs(ended_before)

    def create_campaign(self, campaign: Mapping[str, Any]) -> bool:
        return self.inner.create_campaign(campaign)

    def get_campaign(self, campaign_id: str) -> dict[str, Any]:
        return self.inner.get_campaign(campaign_id)

    def update_campaign(self, campaign: Mapping[str, Any]) -> dict[str, Any]:
        return self.inner.update_campaign(campaign)

    def __getattr__(self, name: str) -> Any:
        # Adapter extras beyond the port (e.g. close) stay reachable.
        if name == "inner":  # not yet set (copy, unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)
