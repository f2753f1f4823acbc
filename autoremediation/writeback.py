"""Alert write-back: when a job that came from an alert ends, the alert in Azure Monitor learns how.

* succeeded -> the alert is Closed, with a comment naming the job;
* failed or timed out -> a comment with the reason; the alert's user state is left as it is unless
  ``REMEDIATION_ALERT_FAILURE_STATE`` says new / acknowledged / closed.

Called from the runner's transition hook, after the job's terminal state is stored (once: the store's
compare-and-swap lets one worker record it). It never holds up or fails the job: every error is logged
and dropped, and the adapter's retries are bounded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from . import jobs
from .jobs import Job, Transition
from .ports import Alerts

log = logging.getLogger(__name__)

STATES = {"new": "New", "acknowledged": "Acknowledged", "closed": "Closed"}
MAX_COMMENT = 1000  # keep the comment readable in the portal; the job record has the whole story


def comment_for(job: Job, transition: Transition) -> str:
    vm = job.target.rstrip("/").rsplit("/", 1)[-1]
    text = (
        f"Auto-remediation job {job.id} ({job.remediation} on {vm}) {transition.target}: {transition.reason}"
    )
    return text[:MAX_COMMENT]


def alert_writeback(alerts: Alerts, failure_state: str = "unchanged") -> Callable[[Job, Transition], None]:
    """A transition hook that tells the job's alert how the job ended."""

    def write_back(job: Job, transition: Transition) -> None:
        if not job.alert_id or job.signal_source != "alert":
            return
        if transition.target == jobs.SUCCEEDED:
            state: str | None = "Closed"
        elif transition.target in (jobs.FAILED, jobs.TIMED_OUT):
            state = STATES.get(failure_state)
        else:
            return
        try:
            if state is None:  # a comment only: Azure takes it with a state, so keep the current one
                state = alerts.get_alert(job.alert_id).alert_state or "New"
            alerts.change_state(job.alert_id, state, comment_for(job, transition))
        except Exception as error:  # never the job's problem
            log.warning(
                "job %s: could not write its outcome back to alert %s: %s", job.id, job.alert_id, error
            )

    return write_back
