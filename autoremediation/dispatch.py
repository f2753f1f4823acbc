"""The dispatch steps: from ``planned`` (or an approval) to a started run command.

Guards on fresh facts, the VM's lease, the ``dispatching`` write; then the control-plane steps (each
written before the next), the upload grant, the dispatch claim and the run command's PUT, and the
``running`` write. See ``runner`` for the crash-safety contract every step keeps.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import replace
from datetime import timedelta
from typing import Any

from . import jobs
from .catalog import Remediation, env_name, script_parameter_name
from .errors import (
    Busy,
    CloudError,
    InvalidInput,
    NotFound,
    OutcomeUnknown,
    RemediationError,
    Throttled,
)
from .evidence import evidence_summary
from .jobs import Job
from .policy import Decision, GuardFacts, guard_decision
from .ports import (
    LeaseFacts,
    RunRequest,
    VmFacts,
)
from .step_common import (
    ACTOR,
    CLAIM_GRACE_SECONDS,
    Step,
    StepBase,
    lease_taken,
    longest_run,
    parse_time,
)


def _with_control_plane_parameters(
    given: Mapping[str, str], remediation: Remediation, records: Mapping[str, Any]
) -> dict[str, str]:
    """The job's parameters with those the control-plane steps decided (e.g. the management sources
    of the guest firewall), which always win over a request's: an empty decision removes the value."""
    parameters = dict(given)
    for record in records.values():
        decided = record.get("scriptParameters") if isinstance(record, Mapping) else None
        for name, value in (decided or {}).items():
            if name not in remediation.parameters:
                continue
            if value in (None, ""):
                parameters.pop(name, None)
            else:
                parameters[name] = remediation.parameters[name].validate(value)
    return parameters


class DispatchSteps(StepBase):
    def _planned(self, job: Job, remediation: Remediation) -> Step:
        return self._decide(job, remediation, approved=False)

    def _awaiting_approval(self, job: Job, remediation: Remediation) -> Step:
        now = self.clock.now()
        expires = parse_time(job.approval_expires_at)
        if job.approved_by is None:
            if expires is not None and now >= expires:
                return self._finish(job, jobs.EXPIRED, "no operator approved it in time", actor="sweeper")
            return Step(job, None, "waiting for an operator")
        return self._decide(job, remediation, approved=True)

    def _decide(self, job: Job, remediation: Remediation, *, approved: bool) -> Step:
        """Guards with fresh facts; then lease; then dispatching."""
        now = self.clock.now()
        switches, why = self._switches()
        if switches.kill_switch:
            return self._finish(job, jobs.SKIPPED, f"kill-switch: {why}")
        try:
            vm: VmFacts | None = self.compute.get_vm(job.target)
        except NotFound:
            vm = None
        except CloudError as error:
            return self._retry_later(job, error)

        def decide(facts: GuardFacts) -> Decision:
            return guard_decision(
                target=job.target,
                remediation=remediation,
                raw_parameters=job.parameters,
                facts=facts,
                settings=self.guards,
            )

        # The VM's own guards first: a VM that is not opted in, not running, ... costs no storage read.
        facts = GuardFacts(vm=vm, now=now, approved=approved)
        decision = decide(facts)
        lease: LeaseFacts | None = None
        if decision.action != "skip":
            # Then the history guards: the cooldown and the lease's holder from one read of the VM's
            # lease, the breaker from this process's recent view of the failures.
            cooldown = timedelta(minutes=remediation.cooldown_minutes)
            lease = self.store.lease_facts(job.target_key, remediation.id, now, runs_since=now - cooldown)
            facts = replace(
                facts,
                last_run_ended_at=lease.last_run_ended_at,
                recent_failures=self._recent_failures(remediation.id, now),
            )
            decision = decide(facts)
        if decision.action == "skip":
            # A job the lease read shows without the lease has none to give back: no request for it.
            holds = lease is None or lease.holder == job.id
            return self._finish(job, jobs.SKIPPED, f"{decision.guard}: {decision.reason}", release=holds)
        if decision.action == "await-approval":
            if job.status == jobs.AWAITING_APPROVAL:
                return Step(job, None, "waiting for an operator")
            expires = now + timedelta(minutes=self.settings.approval_ttl_minutes)
            # The approver sees why the change is asked for (e.g. the NSG rule that blocks SSH).
            why = evidence_summary(job.evidence)
            job = self._write(
                jobs.transition(
                    job,
                    jobs.AWAITING_APPROVAL,
                    now=now,
                    actor=ACTOR,
                    reason=f"{decision.reason}: {why}" if why else decision.reason,
                    approval_required=True,
                    approval_expires_at=expires.isoformat(),
                )
            )
            return Step(job, None, "waiting for an operator")
        assert vm is not None and lease is not None  # a dispatch decision implies both were read
        holder = lease.holder
        if holder in (None, job.id):
            # One request: the store saw the entity a moment ago. Only a lost race reads the holder.
            taken = self.store.acquire_lease(
                job.target_key, job.id, self._lease_ttl(remediation), now, remediation=remediation.id
            )
            holder = job.id if taken else self.store.lease_holder(job.target_key, now)
        if holder != job.id:
            return Step(
                job,
                max(self.settings.poll_seconds, 1.0),
                f"waiting: job {holder} holds this VM" if holder else "waiting: another job holds this VM",
            )
        dry_run = job.dry_run or switches.dry_run
        run = {
            "name": jobs.run_name_for(job.id),
            "mode": self.settings.run_command_mode,
            "os": vm.os_type,
            "location": vm.location,  # the run command's PUT needs it: no second read of the VM
            "vmTags": dict(vm.tags),
            **lease_taken(self.store, job, now, self._lease_ttl(remediation)),
        }
        # Nothing between this write and the run command: it carries the dispatch claim, so the dispatch
        # that follows in this execution needs no write of its own. Not in classic mode, whose attempt
        # mark fails the job when it is found by a step that did not make it: that mark stays its own
        # write, right before the POST.
        claim = (
            self.settings.run_command_mode != "action"
            and not remediation.control_plane
            and not remediation.upload_to
        )
        if claim:
            run["claimedAt"] = now.isoformat()
        reason = "approved by " + job.approved_by if approved and job.approved_by else decision.reason
        job = self._write(
            jobs.transition(
                job,
                jobs.DISPATCHING,
                now=now,
                actor=ACTOR,
                reason=reason,
                parameters=dict(decision.parameters),
                dry_run=dry_run,
                run=run,
            )
        )
        if claim:
            self._remember_claim(job)
        return Step(job, 0.0)

    def _dispatching(self, job: Job, remediation: Remediation) -> Step:
        """Control-plane steps, then the run command."""
        now = self.clock.now()
        # This process made the claim the job carries, and no step has sent a run command under it.
        fresh_claim = self._take_claim(job)
        claimed = parse_time(job.run.get("claimedAt"))
        if claimed is not None and not fresh_claim and not job.run.get("answeredAt"):
            # Claimed by another execution (a duplicate message read the job right after that claim),
            # which may be about to send its PUT: sending one too could re-create the run command after
            # the claimant's run ended and was deleted. Only a claim old enough for its execution to
            # have died, or whose PUT was answered (an error to retry), is taken over (then the PUT looks
            # for the run first).
            age = (now - claimed).total_seconds()
            if 0 <= age < CLAIM_GRACE_SECONDS:
                return Step(job, CLAIM_GRACE_SECONDS - age, "another execution is dispatching this job")
        done = dict(job.outcome.get("controlPlane") or {})
        for name in remediation.control_plane:
            if name in done:
                continue
            step = self.control_plane.get(name)
            if step is None:
                return self._finish(job, jobs.FAILED, f"control-plane step {name} is not available here")
            checked = self._recheck_switches(job, f"control-plane step {name}")
            if isinstance(checked, Step):
                return checked
            job = checked
            try:
                record = step(
                    job, {"os": job.run.get("os"), "tags": job.run.get("vmTags", {})}, dry_run=job.dry_run
                )
            except CloudError as error:
                if error.retryable:
                    return self._retry_later(job, error)
                return self._finish(job, jobs.FAILED, f"{name}: {error}")
            except RemediationError as error:
                return self._finish(job, jobs.FAILED, f"{name}: {error}")
            if record.get("action") == "skip":
                return self._finish(
                    job,
                    jobs.SKIPPED,
                    f"{name}: {record.get('reason', 'skipped')}",
                    outcome={**job.outcome, "controlPlane": {**done, name: record}},
                )
            done[name] = record
            # Written before the guest step, so a crash never repeats a finished Azure-side change.
            job = self._write(
                replace(job, outcome={**job.outcome, "controlPlane": done}, updated_at=now.isoformat())
            )
        checked = self._recheck_switches(job, "the run command")
        if isinstance(checked, Step):
            return checked
        job = checked
        os_type = job.run["os"]
        try:
            parameters = _with_control_plane_parameters(job.parameters, remediation, done)
        except InvalidInput as error:
            return self._finish(job, jobs.FAILED, f"dispatch refused: {error}")
        plain, protected = remediation.run_parameters(parameters, os_type, dry_run=job.dry_run)
        if remediation.upload_to:
            try:
                job = self._grant_upload(job, remediation, os_type, plain, protected)
            except CloudError as error:
                if error.retryable:
                    return self._retry_later(job, error)
                return self._finish(job, jobs.FAILED, f"dispatch refused: {error}")
            except RemediationError as error:
                return self._finish(job, jobs.FAILED, f"dispatch refused: {error}")
        request = RunRequest(
            vm_id=job.target,
            run_name=job.run["name"],
            os_type=os_type,
            script=remediation.script(os_type),
            parameters=plain,
            protected_parameters=protected,
            timeout_seconds=remediation.timeout_seconds,
            # Only a step that finds a claim it did not just make (an earlier step may have sent the PUT)
            # looks first.
            may_exist=bool(job.run.get("claimedAt")) and not fresh_claim,
            location=str(job.run.get("location") or ""),
        )
        if job.run.get("mode") == "action":
            # Classic run commands leave no resource to find again: a dispatch that may have started
            # the script is never repeated. The mark is written before the POST for that reason.
            if job.run.get("attemptedAt"):
                return self._finish(
                    job,
                    jobs.FAILED,
                    "outcome unknown: an earlier classic run command dispatch ended without a result; "
                    "it is not run again (classic mode cannot re-attach)",
                    still_running=True,
                )
            job = self._write(
                replace(job, run={**job.run, "attemptedAt": now.isoformat()}, updated_at=now.isoformat())
            )
        elif not fresh_claim:
            # A claim (compare-and-swap) before the PUT: a run command is deleted once its result is read,
            # so a stale duplicate of this step must stop here, not create the run command again.
            job = self._write(
                replace(
                    job,
                    run={
                        **{k: v for k, v in job.run.items() if k != "answeredAt"},
                        "claimedAt": now.isoformat(),
                    },
                    updated_at=now.isoformat(),
                )
            )
        try:
            status = self.compute.start_run(request)
        except (Busy, Throttled) as error:
            # Refused before it started (409 / 429): safe to dispatch again later, in both modes, with a
            # claim of its own then (nothing was sent under this one).
            job = replace(
                job, run={k: v for k, v in job.run.items() if k not in ("attemptedAt", "claimedAt")}
            )
            return self._retry_later(job, error)
        except OutcomeUnknown as error:
            return self._finish(
                job,
                jobs.FAILED,
                f"outcome unknown: the run command may have run; it is not sent again ({error})",
                still_running=True,
            )
        except CloudError as error:
            if error.retryable and job.run.get("mode") != "action":
                # The PUT under this claim was answered: whoever comes next need not wait for it.
                job = replace(job, run={**job.run, "answeredAt": now.isoformat()})
                return self._retry_later(job, error)
            return self._finish(job, jobs.FAILED, f"dispatch refused: {error}")
        except RemediationError as error:  # e.g. protected parameters in classic mode
            return self._finish(job, jobs.FAILED, f"dispatch refused: {error}")
        run = {**job.run, "startedAt": status.started_at or now.isoformat(), "dispatchedAt": now.isoformat()}
        job = self._write(
            jobs.transition(
                job,
                jobs.RUNNING,
                now=now,
                actor=ACTOR,
                reason=f"run command {run['name']} started",
                run=run,
                attempts=0,
            )
        )
        if status.done:
            return self._collect(job, status)
        return Step(job, self._poll_delay(job, 0))

    def _grant_upload(
        self,
        job: Job,
        remediation: Remediation,
        os_type: str,
        plain: dict[str, str],
        protected: dict[str, str],
    ) -> Job:
        """A SAS for one blob of the app's own container, minted now: only the run command's protected
        parameters carry it (base64, so no cmd.exe metacharacter); the job records the blob URL alone."""
        if self.upload_grants is None:
            raise InvalidInput(
                f"{remediation.id} uploads to the {remediation.upload_to} container: none is configured"
            )
        vm_name = job.target.rstrip("/").rsplit("/", 1)[-1]
        blob = f"{vm_name}/{job.id}.{'zip' if os_type == 'windows' else 'tar.gz'}"
        grant = self.upload_grants.grant(blob, longest_run(remediation))
        rename = env_name if os_type == "linux" else script_parameter_name
        plain[rename("uploadUrl")] = grant.blob_url
        protected[rename("uploadToken")] = base64.b64encode(grant.sas.encode()).decode("ascii")
        now = self.clock.now()
        upload = {
            "container": remediation.upload_to,
            "blobUrl": grant.blob_url,
            "sasExpiresAt": grant.expires_at,
        }
        return self._write(
            replace(job, outcome={**job.outcome, "upload": upload}, updated_at=now.isoformat())
        )
