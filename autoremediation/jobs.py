"""Remediation jobs: the record and its state machine (pure transitions, no I/O).

::

    planned ─┬─> awaiting-approval ─┬─> dispatching ─> running ─> verifying ─┬─> succeeded
             │                      ├─> cancelled (rejected)                  └─> failed
             │                      └─> expired (approval not given in time)
             ├─> dispatching
             ├─> skipped (a guard said no)
             └─> cancelled (the alert resolved first)
    dispatching / running / verifying ─> failed | timed-out | cancelled
    planned / awaiting-approval / dispatching / running ─> cancelled (an operator's cancel)

A job that ended can be retried: the retry is a new job (a new id, ``retryOf`` naming the old one),
never the old record run again.

A job's id is derived from its idempotency key, so a duplicate delivery finds the job it already made.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any

from .errors import InvalidTransition

PLANNED = "planned"
AWAITING_APPROVAL = "awaiting-approval"
DISPATCHING = "dispatching"
RUNNING = "running"
VERIFYING = "verifying"
SUCCEEDED = "succeeded"
FAILED = "failed"
TIMED_OUT = "timed-out"
SKIPPED = "skipped"
CANCELLED = "cancelled"
EXPIRED = "expired"

STATES = (
    PLANNED,
    AWAITING_APPROVAL,
    DISPATCHING,
    RUNNING,
    VERIFYING,
    SUCCEEDED,
    FAILED,
    TIMED_OUT,
    SKIPPED,
    CANCELLED,
    EXPIRED,
)
TERMINAL = frozenset({SUCCEEDED, FAILED, TIMED_OUT, SKIPPED, CANCELLED, EXPIRED})
# States in which a script may have reached the VM: a Resolved alert no longer cancels these.
DISPATCHED = frozenset({DISPATCHING, RUNNING, VERIFYING, SUCCEEDED, FAILED, TIMED_OUT})

ALLOWED: dict[str, frozenset[str]] = {
    PLANNED: frozenset({AWAITING_APPROVAL, DISPATCHING, SKIPPED, CANCELLED, FAILED}),
    AWAITING_APPROVAL: frozenset({DISPATCHING, SKIPPED, CANCELLED, EXPIRED}),
    DISPATCHING: frozenset({RUNNING, FAILED, TIMED_OUT, CANCELLED, SKIPPED}),
    RUNNING: frozenset({VERIFYING, FAILED, TIMED_OUT, CANCELLED}),
    VERIFYING: frozenset({SUCCEEDED, FAILED}),
}


# What an operator's ``cancel`` may stop: a job not yet dispatched, or a run command still running.
CANCELLABLE = frozenset({PLANNED, AWAITING_APPROVAL, DISPATCHING, RUNNING})
# A script that reports it changed nothing because DRY_RUN=1 was set: "would fix" is not "fixed".
DRY_RUN_OUTCOME = "dry-run"


def parse_time(value: object) -> datetime | None:
    """A time a job (or campaign) record stores as ISO 8601 text; None when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def job_id_for(idempotency_key: str) -> str:
    """A stable, URL- and Table-key-safe id for an idempotency key."""
    digest = hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest()
    return f"job-{digest[:24]}"


def run_name_for(job_id: str, step: int = 0) -> str:
    """The run command resource name for a job's step: a worker that crashed finds it again."""
    return f"remediate-{job_id.removeprefix('job-')}" + (f"-{step}" if step else "")


@dataclass(frozen=True)
class Transition:
    at: str
    source: str | None
    target: str
    actor: str
    reason: str


@dataclass(frozen=True)
class Job:
    id: str
    idempotency_key: str
    remediation: str
    condition: str
    target: str
    parameters: dict[str, str]
    created_at: str
    status: str = PLANNED
    updated_at: str = ""
    signal_id: str = ""
    signal_source: str = ""
    alert_id: str | None = None
    campaign_id: str | None = None
    # A campaign job's place in its campaign's release order (VM id order, from 0), and the job it
    # releases when it ends: the one ``concurrency`` places later (None for the last ones).
    campaign_index: int | None = None
    releases: str | None = None
    dry_run: bool = False
    requested_by: str = "system"  # an operator's object id, or the system part that made the job
    requested_by_name: str = ""  # the operator's display name, for people reading the record
    reason: str = ""
    approval_required: bool = False
    approval_expires_at: str | None = None
    approved_by: str | None = None
    # The operator's decision: {decision: approved|rejected, by: object id, name, at, reason}.
    review: dict[str, Any] = field(default_factory=dict)
    step: int = 0
    evidence: dict[str, Any] = field(default_factory=dict)  # what the detector saw (e.g. the blocking rule)
    run: dict[str, Any] = field(default_factory=dict)
    outcome: dict[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    history: tuple[Transition, ...] = ()
    attempts: int = 0
    retry_of: str | None = None  # the job this one retries
    version: int = 0

    @property
    def target_key(self) -> str:
        return self.target.strip().rstrip("/").lower()

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    def to_dict(self) -> dict[str, Any]:
        """Every field, nested values copied (what ``dataclasses.asdict`` gives), notes and history as lists.

        Written out because it runs for every store write: ``asdict`` deep-copies through ``copy``,
        several times slower for the plain JSON values a job holds. Anything else falls back to it.
        """
        try:
            data = {name: _copied(getattr(self, name)) for name in _FIELDS}
        except _NotPlain:
            data = asdict(self)
        data["notes"] = list(self.notes)
        data["history"] = [
            {"at": t.at, "source": t.source, "target": t.target, "actor": t.actor, "reason": t.reason}
            for t in self.history
        ]
        return data

    def to_json(self) -> dict[str, Any]:
        """The job as the API and the CLI show it: camelCase names, as ``openapi.yaml`` declares."""
        data = {_camel(name): value for name, value in self.to_dict().items()}
        data["outcomeKind"] = outcome_kind(self)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Job:
        values = dict(data)
        values["notes"] = tuple(values.get("notes") or ())
        values["history"] = tuple(Transition(**t) for t in values.get("history") or ())
        values["parameters"] = dict(values.get("parameters") or {})
        values["run"] = dict(values.get("run") or {})
        values["outcome"] = dict(values.get("outcome") or {})
        values["evidence"] = dict(values.get("evidence") or {})
        values["review"] = dict(values.get("review") or {})
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in values.items() if k in known})


class _NotPlain(Exception):
    """A value that is not plain JSON data: ``Job.to_dict`` copies it with ``asdict`` instead."""


_SCALARS = (str, int, float, bool, type(None))


def _copied(value: Any) -> Any:
    """A deep copy of plain JSON data (dicts, lists, tuples of scalars); _NotPlain for anything else."""
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind is dict:
        return {_copied(k): _copied(v) for k, v in value.items()}
    if kind is list:
        return [_copied(v) for v in value]
    if kind is tuple:
        return tuple(_copied(v) for v in value)
    if kind is Transition:  # a job's history: replaced by its own list of dicts in to_dict
        return None
    raise _NotPlain


_FIELDS = tuple(Job.__dataclass_fields__)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word.title() for word in rest)


def outcome_kind(job: Job) -> str:
    """What happened, in one word: the status, except that a dry run never says it fixed anything.

    A dry run that went through is ``dry-run`` (the script said what it would change), so a list of jobs
    tells "would fix" from "fixed" at a glance.
    """
    if job.dry_run and job.status == SUCCEEDED:
        return DRY_RUN_OUTCOME
    return job.status


def retry_key(job: Job) -> str:
    """The idempotency key of ``job``'s retry: retrying the same job twice finds the same new job."""
    return f"retry|{job.id}"


def new_job(
    *,
    idempotency_key: str,
    remediation: str,
    condition: str,
    target: str,
    parameters: dict[str, str],
    now: datetime,
    actor: str = "system",
    reason: str = "",
    **extra: Any,
) -> Job:
    stamp = now.isoformat()
    return Job(
        id=job_id_for(idempotency_key),
        idempotency_key=idempotency_key,
        remediation=remediation,
        condition=condition,
        target=target,
        parameters=dict(parameters),
        created_at=stamp,
        updated_at=stamp,
        requested_by=actor,
        reason=reason,
        history=(Transition(stamp, None, PLANNED, actor, reason or "planned"),),
        **extra,
    )


def transition(job: Job, target: str, *, now: datetime, actor: str, reason: str, **changes: Any) -> Job:
    """The job moved to ``target``, with the step on record; raises InvalidTransition if not allowed."""
    if target not in ALLOWED.get(job.status, frozenset()):
        raise InvalidTransition(f"job {job.id} cannot go from {job.status} to {target}")
    stamp = now.isoformat()
    return replace(
        job,
        status=target,
        updated_at=stamp,
        history=(*job.history, Transition(stamp, job.status, target, actor, reason)),
        **changes,
    )


def note(job: Job, text: str, *, now: datetime) -> Job:
    """A remark on the record that changes no state (e.g. the alert resolved after dispatch)."""
    return replace(job, notes=(*job.notes, f"{now.isoformat()} {text}"), updated_at=now.isoformat())


def cancel(job: Job, *, now: datetime, actor: str, reason: str) -> Job:
    """An operator stops the job; InvalidTransition says why when it cannot be stopped any more."""
    if job.status not in CANCELLABLE:
        if job.terminal:
            raise InvalidTransition(f"job {job.id} already ended ({job.status}): nothing to cancel")
        raise InvalidTransition(
            f"job {job.id} is {job.status}: its script already ended, the result is being checked"
        )
    return transition(job, CANCELLED, now=now, actor=actor, reason=reason)
