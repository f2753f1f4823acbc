"""Which transitions a person hears about, and the one call the engine makes to say so.

``Notifier.on_transition`` is the runner's transition hook: it is called after the step's
compare-and-swap write, so the job is on record before anyone is told, and it never raises. Told:

* a job awaits approval (with how to approve), an approval expired, a job failed or timed out;
* a job succeeded, when ``REMEDIATION_NOTIFY_ON_SUCCESS`` is on;
* the failure that opens a remediation's circuit breaker (the breaker rule is ``policy``'s own);
* an approval about to expire: the sweeper calls ``approval_expiring``.

A worker that crashes between its write and the POST loses that one notification (at most once): the
redelivered message finds the step done and does not repeat it. The hook runs before the worker sends
the job's next message, so delivery is bounded by ``REMEDIATION_NOTIFY_TIMEOUT_SECONDS``; a crash in it
leaves the job to the sweeper's stuck-job chore, like any crash between a write and a send.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from .. import jobs
from ..catalog import Catalog
from ..jobs import Job, Transition, parse_time
from ..policy import GuardSettings, breaker_open_until
from ..ports import Clock, JobStore
from . import messages
from .channels import Channel
from .delivery import Delivery, deliver
from .messages import Notice

log = logging.getLogger("autoremediation.notify")
Send = Callable[[Sequence[Channel], Notice, float], Sequence[Delivery]]

_BY_STATUS = {
    jobs.AWAITING_APPROVAL: messages.AWAITING_APPROVAL,
    jobs.FAILED: messages.FAILED,
    jobs.TIMED_OUT: messages.TIMED_OUT,
    jobs.EXPIRED: messages.EXPIRED,
    jobs.SUCCEEDED: messages.SUCCEEDED,
}


class Notifier:
    def __init__(
        self,
        channels: Sequence[Channel],
        *,
        catalog: Catalog,
        store: JobStore,
        clock: Clock,
        guards: GuardSettings,
        on_success: bool = False,
        budget_seconds: float = 10.0,
        send: Send = deliver,
    ) -> None:
        self.channels = tuple(channels)
        self.catalog = catalog
        self.store = store
        self.clock = clock
        self.guards = guards
        self.on_success = on_success
        self.budget_seconds = budget_seconds
        self.send = send

    def notices_for(self, job: Job, transition: Transition) -> list[Notice]:
        """What this transition is worth telling (pure but for the breaker's look at recent failures)."""
        kind = _BY_STATUS.get(transition.target)
        if kind is None or (kind == messages.SUCCEEDED and not self.on_success):
            return []
        found = [self._notice(kind, job)]
        if transition.target in (jobs.FAILED, jobs.TIMED_OUT):
            breaker = self._breaker_opened(job)
            if breaker is not None:
                found.append(breaker)
        return found

    def on_transition(self, job: Job, transition: Transition) -> None:
        if not self.channels:
            return
        try:
            for notice in self.notices_for(job, transition):
                self.send(self.channels, notice, self.budget_seconds)
        except Exception:  # a notification never fails the job
            log.exception("job %s: notification for %s failed", job.id, transition.target)

    def approval_expiring(self, job: Job) -> None:
        """The sweeper found this approval about to expire (it records that it told, so once per job)."""
        if not self.channels:
            return
        try:
            self.send(self.channels, self._notice(messages.APPROVAL_EXPIRING, job), self.budget_seconds)
        except Exception:
            log.exception("job %s: approval-expiring notification failed", job.id)

    # -- helpers ----------------------------------------------------------------------------------

    def _notice(self, kind: str, job: Job, **extra: object) -> Notice:
        return messages.notice(kind, job, self.catalog.redacted(job.remediation, job.parameters), **extra)

    def _breaker_opened(self, job: Job) -> Notice | None:
        """A notice when this failure is the one that opened the breaker (it was closed without it)."""
        now = parse_time(job.updated_at) or self.clock.now()
        since = now - self.guards.breaker_window - self.guards.breaker_open
        failed = self.store.list(
            remediation=job.remediation, status=[jobs.FAILED, jobs.TIMED_OUT], since=since
        )
        others = [t for t in (parse_time(j.updated_at) for j in failed if j.id != job.id) if t is not None]
        until = breaker_open_until([*others, now], now, self.guards)
        if until is None or breaker_open_until(others, now, self.guards) is not None:
            return None
        return self._notice(
            messages.BREAKER_OPEN,
            job,
            failures=self.guards.breaker_threshold,
            window=str(self.guards.breaker_window),
            until=until.isoformat(),
        )
