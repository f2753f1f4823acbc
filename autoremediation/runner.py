"""Advances a job one step through the ports. Crash-safe at every step.

Each call to :meth:`Runner.advance` reads the job, does at most one outside action, and ends with one
compare-and-swap write. A worker killed anywhere in between leaves the job in its last written state;
the redelivered message repeats the step, and every outside action is safe to repeat:

* the per-VM lease is held by the job itself, so taking it again is a renewal;
* a control-plane step checks before it changes (an equivalent NSG rule is not added twice);
* the run command's resource name is derived from the job id, so a repeated dispatch re-attaches to
  the run it started instead of running the script again (managed mode).

A step that loses the compare-and-swap drops its message: the winner carries the job on.

A step that says "next step now" (``requeue_after == 0``) hands the caller the job it wrote, and the
caller may advance it at once with that job (``advance(job_id, after=step)``) instead of a queue round
trip and a re-read: the job is what this execution just wrote, so nothing is lost by not reading it.
When nothing comes between the guards and the run command (no control-plane step, no upload grant;
managed mode), the write that moves the job to ``dispatching`` also carries the dispatch claim. The
process that wrote it remembers it until one of its steps takes it to send the PUT: that step knows no
run command was sent under the claim, so the PUT is the first (no look for an existing run command).
Any other step that finds the claim (a duplicate message, here or in another instance, that read the
job right after it; a redelivery after a crash) treats it as another execution's, which may be about
to send its PUT: it leaves it alone for ``CLAIM_GRACE_SECONDS`` (requeued), then takes it over with a
claim write of its own and a PUT that looks for the run first. Without that wait, a duplicate could
send its own PUT and have its run collected and deleted before the claimant's PUT lands, which would
run the script again.

The guards' history facts cost little per job: the VM's own guards run first (no storage read); then
one read of the VM's lease gives both its holder and the end of the remediation's last run there (the
cooldown; recorded on the lease, or read from the job the lease names as that remediation's last once
it ended), and the lease is taken only when that read saw it free. A job that ended while its lease was
surely its own leaves the lease to its end (a holder whose job ended holds nothing). The breaker's
failure list is read at most every ``BREAKER_FACTS_SECONDS`` per process: a failure written by another
instance counts up to that much later, one written here at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from . import jobs
from .catalog import Remediation
from .collect import CollectSteps
from .dispatch import DispatchSteps
from .dispatch import _with_control_plane_parameters as _with_control_plane_parameters  # tests use it
from .errors import ConcurrencyConflict, NotFound, RemediationError
from .jobs import Job
from .step_common import BREAKER_FACTS_SECONDS as BREAKER_FACTS_SECONDS
from .step_common import CLAIM_GRACE_SECONDS as CLAIM_GRACE_SECONDS
from .step_common import MAX_BACKOFF_SECONDS as MAX_BACKOFF_SECONDS
from .step_common import MAX_RETRIES as MAX_RETRIES
from .step_common import RUN_GRACE_SECONDS as RUN_GRACE_SECONDS
from .step_common import ControlPlaneStep as ControlPlaneStep
from .step_common import Step, lease_left_to_end
from .step_common import guard_settings as guard_settings

log = logging.getLogger("autoremediation.runner")


class Runner(DispatchSteps, CollectSteps):
    """The job's steps (``dispatch``, ``collect``), one per call, on the ports given to ``StepBase``."""

    # -- public -----------------------------------------------------------------------------

    def advance(self, job_id: str, *, after: Step | None = None) -> Step:
        """Do the next step of the job; tell the caller when the job needs another message.

        ``after``: the step this execution just did on the job, when it said "next step now": its job
        is used as it is (it is what was written), not read again.
        """
        if after is not None and after.requeue_after == 0 and after.job.id == job_id:
            job = after.job
        else:
            job = self.store.get(job_id)
        if job.terminal:
            if after is None and job.run.get("leaseAt") and not lease_left_to_end(job):
                # The step that ended the job may have died, or storage refused it, between the terminal
                # write and the lease's release, which records the run the cooldown reads: the
                # redelivered message repeats the release (a holder that has it no more is untouched;
                # an older run record never replaces a newer one). A job that ended while its lease
                # was surely its own left it to its end: nothing to repeat.
                self._release_lease(job)
            if after is None:
                self._delete_leftover_run(job)
            return Step(job, None, f"already {job.status}")
        if job.status in (jobs.DISPATCHING, jobs.RUNNING, jobs.VERIFYING):
            job = self._renew_lease(job)
        handlers: dict[str, Callable[[Job, Remediation], Step]] = {
            jobs.PLANNED: self._planned,
            jobs.AWAITING_APPROVAL: self._awaiting_approval,
            jobs.DISPATCHING: self._dispatching,
            jobs.RUNNING: self._running,
            jobs.VERIFYING: self._verifying,
        }
        handler = handlers[job.status]
        try:
            step = handler(job, self.catalog.get(job.remediation))
        except ConcurrencyConflict:
            current = self.store.get(job_id)
            if current.terminal:
                # E.g. cancelled (alert resolved) while this step took the lease for it: give it back.
                self._release_lease(current)
            return Step(current, None, "another worker advanced this job")
        if self.on_transition is not None:
            for transition in step.job.history[len(job.history) :]:
                self.on_transition(step.job, transition)
        return step

    def _delete_leftover_run(self, job: Job) -> None:
        """A message back for an ended job may follow a step that died between the result's write and the
        run command's delete (a delete that worked is not written down: it costs no write): the delete
        is repeated, an answer of "not found" being the usual one. A delete that failed is on record."""
        if job.run.get("mode") == "action" or not job.run.get("name") or "runCommandCleanup" in job.outcome:
            return
        try:
            self.compute.cancel_run(job.target, job.run["name"])
        except NotFound:
            pass
        except RemediationError as error:
            log.warning("job %s: could not delete its run command: %s", job.id, error)

    def give_up(self, job_id: str, reason: str) -> Job:
        """End a job the queue could not deliver any more (poison message) as failed, with the reason."""
        for _ in range(5):
            job = self.store.get(job_id)
            if job.terminal:
                return job
            target = jobs.FAILED if jobs.FAILED in jobs.ALLOWED[job.status] else jobs.EXPIRED
            why, running = self._abandon(job, reason)
            try:
                step = self._finish(job, target, why, actor="queue", still_running=running)
            except ConcurrencyConflict:
                continue
            if self.on_transition is not None:
                self.on_transition(step.job, step.job.history[-1])
            return step.job
        raise ConcurrencyConflict(f"job {job_id}: could not record the failure")
