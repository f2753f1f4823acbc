"""The collect steps: polling a run command, reading its result, verifying it, deleting the run command.

See ``runner`` for the crash-safety contract every step keeps.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta

from . import jobs
from .catalog import Remediation
from .errors import (
    CloudError,
    NotFound,
    RemediationError,
)
from .jobs import Job, parse_time
from .ports import (
    RunStatus,
)
from .step_common import ACTOR, RUN_GRACE_SECONDS, Step, StepBase, lease_left_to_end, log, longest_run
from .verification import verify


def result_latency(job: Job, run_seconds: float, ended: datetime, longest: float) -> float:
    """Seconds from the run command's PUT to its end: what the first poll should wait. On Azure the
    agent picks a run up seconds after the PUT, so the script's own run time alone would send first
    looks early. The end is Azure's clock and the PUT this app's: a skew that makes the span shorter
    than the script itself is ignored, and so is a span longer than ``longest`` (the most a run may take
    from its dispatch before it is given up: the remediation's timeout and the grace after it), which no
    run took (nor the run's own time, should Azure's times say more): counted, it would put the next runs'
    first looks days away."""
    dispatched = parse_time(job.run.get("dispatchedAt"))
    if dispatched is None:
        return min(longest, run_seconds)
    span = round((ended - dispatched).total_seconds(), 3)
    return min(longest, run_seconds if span > longest else max(run_seconds, span))


class CollectSteps(StepBase):
    # What a managed run's job sets off once its end is written, before its lease is seen to and its run
    # command is deleted, so neither holds what the end frees (the campaign driver sets it: the job's
    # campaign releases the next job). Whoever sets it also looks after the step, as for any job that
    # ends elsewhere: a failure here, or a crash, leaves the release to that look.
    on_end: Callable[[Job], object] | None = None

    def _running(self, job: Job, remediation: Remediation) -> Step:
        now = self.clock.now()
        try:
            status = self.compute.get_run(job.target, job.run["name"])
        except NotFound:
            return self._finish(job, jobs.FAILED, "the run command disappeared before it reported a result")
        except CloudError as error:
            return self._retry_later(job, error)
        if status.done:
            return self._collect(job, status)
        last = parse_time(job.run.get("lastPolledAt"))
        scheduled = job.run.get("pollDelay")
        if not isinstance(scheduled, int | float):
            scheduled = self._poll_delay(job, int(job.run.get("polls", 0)))
        if last is not None and (now - last).total_seconds() < 0.5 * scheduled:
            # A second message chain for this job (a redelivered duplicate): let it end here. Judged by
            # the delay the last poll scheduled, which the job records: another instance's own estimate
            # may be longer and would drop the only chain.
            return Step(job, None, "duplicate poll dropped")
        started = parse_time(job.run.get("startedAt")) or now
        deadline = started + timedelta(seconds=longest_run(remediation))
        if now >= deadline:
            reason = f"no result within {remediation.timeout_seconds}s (+{RUN_GRACE_SECONDS}s)"
            try:
                self.compute.cancel_run(job.target, job.run["name"])
                running = False
            except CloudError as error:
                log.warning("job %s: could not delete run command: %s", job.id, error)
                reason += f"; the run command could not be deleted ({error}): it may still run"
                running = True
            return self._finish(
                job,
                jobs.TIMED_OUT,
                reason,
                outcome={**job.outcome, "executionState": status.state, "outputTail": status.output},
                still_running=running,
            )
        # A write per poll: a duplicate message for this job loses the swap and stops here.
        polls = int(job.run.get("polls", 0)) + 1
        job = replace(job, attempts=0)  # a poll that answered ends a run of transient errors
        delay = self._poll_delay(job, polls)
        job = self._write(
            replace(
                job,
                run={**job.run, "polls": polls, "lastPolledAt": now.isoformat(), "pollDelay": delay},
                updated_at=now.isoformat(),
            )
        )
        return Step(job, delay)

    def _collect(self, job: Job, status: RunStatus) -> Step:
        now = self.clock.now()
        outcome = {
            **job.outcome,
            "executionState": status.state,
            "exitCode": status.exit_code,
            "outputTail": status.output,
            "errorTail": status.error,
            "result": dict(status.result) if status.result is not None else None,
            "runStartedAt": status.started_at,
            "runEndedAt": status.ended_at,
        }
        started, ended = parse_time(status.started_at), parse_time(status.ended_at)
        if started and ended:
            outcome["runSeconds"] = round((ended - started).total_seconds(), 3)
            if status.state == "succeeded":
                longest = longest_run(self.catalog.get(job.remediation))
                latency = result_latency(job, outcome["runSeconds"], ended, longest)
                self.durations.record(job.remediation, latency)
        if status.state == "timed-out":
            return self._finish(job, jobs.TIMED_OUT, "the run command timed out on the VM", outcome=outcome)
        if status.state == "canceled":
            return self._finish(job, jobs.CANCELLED, "the run command was canceled", outcome=outcome)
        verifying = jobs.transition(
            job,
            jobs.VERIFYING,
            now=now,
            actor=ACTOR,
            reason=f"run command ended: {status.state}",
            outcome=outcome,
        )
        # Verification reads only what was just collected: judge now and write both steps at once (one
        # write and one message fewer per job). A crash before the write repeats the read of the result.
        # A managed run's lease is seen to after what the end sets off (see ``_delete_run``).
        managed = job.run.get("mode") != "action"
        return self._delete_run(
            self._verifying(verifying, self.catalog.get(job.remediation), release=not managed)
        )

    def _delete_run(self, step: Step) -> Step:
        """Once its result is on record, the managed run command goes: left on the VM, its script and
        output stay readable to anyone with VM read access and pile up. The job records only a delete
        that failed (``outcome.runCommandCleanup``: one more write, rarely): a deleted run command, the
        usual end, costs no write. A crash before the delete leaves it (the result is safe).

        First what the job's end sets off (``on_end``), then the VM's lease: the end written while the
        lease was surely still the job's frees it with no request (a holder whose job ended holds
        nothing; the store reads its run from the job); a lease that may have lapsed goes back with the
        run on record. Neither waits for the DELETE. A crash before such a release leaves it to the
        redelivered message, which finds the job ended and releases it."""
        job = step.job
        if job.run.get("mode") == "action":
            return step  # a classic run leaves no resource behind
        self._set_off_end(job)
        if not lease_left_to_end(job):
            self._release_lease(job)
        try:
            self.compute.cancel_run(job.target, job.run["name"])
            return step
        except RemediationError as error:
            log.warning("job %s: could not delete run command: %s", job.id, error)
            cleanup = f"left on the VM: {error}"
        now = self.clock.now()
        job = self._write(
            replace(job, outcome={**job.outcome, "runCommandCleanup": cleanup}, updated_at=now.isoformat())
        )
        return Step(job, step.requeue_after, step.note)

    def _set_off_end(self, job: Job) -> None:
        """Run ``on_end`` for the job; a failure there is left to whoever set it, which still sees the
        job end when the step returns: the cleanup goes on."""
        if self.on_end is None:
            return
        try:
            self.on_end(job)
        except Exception as error:  # the caller's own look after the step repeats it, and reports it
            log.warning("job %s: what its end sets off is left until after its step: %s", job.id, error)

    def _verifying(self, job: Job, remediation: Remediation, *, release: bool = True) -> Step:
        result = job.outcome.get("result")
        verdict = verify(
            remediation,
            exit_code=job.outcome.get("exitCode"),
            result=result if isinstance(result, Mapping) else None,
            parameters=job.parameters,
            dry_run=job.dry_run,
        )
        outcome = {**job.outcome, "verification": verdict.reason, "verified": verdict.ok and not job.dry_run}
        if verdict.refused:
            outcome["refused"] = True
        return self._finish(
            job,
            jobs.SUCCEEDED if verdict.ok else jobs.FAILED,
            verdict.reason,
            outcome=outcome,
            release=release,
        )
