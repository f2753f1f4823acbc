"""Did the remediation work? Judged from the script's REMEDIATION_RESULT, not from exit codes alone.

A remediation passes when its exit code is accepted, its result status is one of
``verification.successStatuses`` and every ``verification.expect`` comparison holds on the result
(``after.freePercent >= targetFreePercent``). A dry run passes when the script ran cleanly: nothing
was meant to change, so nothing is compared.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .catalog import Remediation
from .jobs import DISPATCHED, Job, parse_time

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
}
_MISSING = object()
# The script contract: exit 2 with status "error" (or status "refused") means the script refused its
# input or a precondition of the VM before it changed anything (a bogus mount point, a masked unit): it
# did not try, so it is no evidence that the remediation is broken.
REFUSED_EXIT_CODE = 2
REFUSED_STATUS = "refused"


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str
    refused: bool = False  # the script refused to act: never counts toward the circuit breaker


def refused_input(exit_code: int | None, result: Mapping[str, Any] | None) -> bool:
    """Whether a run ended with the script refusing to act (changing nothing), not trying and failing."""
    status = result.get("status") if isinstance(result, Mapping) else None
    # Exit 2 counts only with a result that says so: a script that claims "fixed" and exits 2 is broken.
    return status == REFUSED_STATUS or (exit_code == REFUSED_EXIT_CODE and status == "error")


def refused_run(outcome: Mapping[str, Any]) -> bool:
    """``refused_input`` for a job's recorded outcome (also for jobs recorded before it existed)."""
    exit_code = outcome.get("exitCode")
    result = outcome.get("result")
    return refused_input(
        exit_code if isinstance(exit_code, int) else None, result if isinstance(result, Mapping) else None
    )


def ran_script(job: Job) -> bool:
    """Whether a script may have changed the VM: the cooldown counts these, cancelled ones included.

    A dry run changes nothing, so it never starts a cooldown: an operator who previews a fix must be
    able to run the real one right after. Nor does a run whose script refused its input (exit 2): a
    bogus alert must not hold the real fix back for the cooldown.
    """
    if job.dry_run or refused_run(job.outcome):
        return False
    return job.status in DISPATCHED or any(t.target in DISPATCHED for t in job.history)


# What a terminal write puts in ``run`` when the job's script may still be running (see ``may_still_run``).
MAY_STILL_RUN = "mayStillRun"


def ended_at(job: Job) -> datetime | None:
    """When an ended job ended: the time of its move to its final state (a write after it, such as a
    note on a run command left behind, does not move the end); None while it has not ended."""
    if not job.terminal:
        return None
    stamp = next((t.at for t in reversed(job.history) if t.target == job.status), None)
    try:
        return datetime.fromisoformat(stamp or job.updated_at or job.created_at)
    except ValueError:
        return None


def may_still_run(job: Job) -> bool:
    """Whether the job ended while its script may still run on the VM (a run command that could not be
    stopped, a dispatch whose outcome is unknown): it then holds its VM's lease up to the lease's bound
    (``run.leaseUntil``), the latest its run can end while the lease holds."""
    return job.terminal and bool(job.run.get(MAY_STILL_RUN))


def run_record(job: Job) -> tuple[str, datetime] | None:
    """An ended job's run, as the cooldown counts it: its remediation and end time, when its script may
    have changed the VM; else None. Recorded on the VM's lease by a release, or read from the job by the
    store while the lease names it as that remediation's pending run. A job that ended while its script
    may still run counts as ending at its lease's bound, when that is later."""
    if not job.terminal or not ran_script(job):
        return None
    ended = ended_at(job)
    if ended is None:
        return None
    until = parse_time(job.run.get("leaseUntil")) if may_still_run(job) else None
    return job.remediation, max(ended, until) if until is not None else ended


def _lookup(result: Mapping[str, Any], dotted: str) -> Any:
    value: Any = result
    for part in dotted.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _coerce(actual: Any, expected: Any) -> tuple[Any, Any]:
    """Compare numbers as numbers even when one side arrived as text ("20" from a parameter)."""
    if isinstance(expected, bool) or isinstance(actual, bool):
        return actual, expected
    try:
        return float(actual), float(expected)
    except (TypeError, ValueError):
        return actual, expected


def verify(
    remediation: Remediation,
    *,
    exit_code: int | None,
    result: Mapping[str, Any] | None,
    parameters: Mapping[str, str],
    dry_run: bool = False,
) -> Verdict:
    rules = remediation.verification
    if result is None:
        return Verdict(False, "the script printed no REMEDIATION_RESULT line")
    status = result.get("status")
    if refused_input(exit_code, result):
        why = result.get("reason") or result.get("message") or "no reason given"
        return Verdict(False, f"the script refused to act (exit {exit_code}, status {status}): {why}", True)
    if dry_run:
        # A dry run that finds work to do says not-fixed (and may exit non-zero): that is its answer.
        if status not in ("fixed", "already-ok", "not-fixed"):
            return Verdict(
                False, f"dry run: the script reported {status}: {result.get('message', '')}".strip()
            )
        return Verdict(True, dry_run_summary(result))
    accepted_codes = rules.get("exitCodes", [0])
    if exit_code is not None and exit_code not in accepted_codes:
        return Verdict(False, f"exit code {exit_code} (expected {', '.join(map(str, accepted_codes))})")
    if status not in rules["successStatuses"]:
        detail = f": {result['message']}" if result.get("message") else ""
        return Verdict(False, f"the script reported {status}{detail}")
    for check in rules.get("expect", []):
        actual = _lookup(result, check["field"])
        expected = parameters.get(check["parameter"]) if "parameter" in check else check.get("value")
        shown = f"{check['field']} {check['op']} {check.get('parameter', check.get('value'))}"
        if actual is _MISSING:
            return Verdict(False, f"{shown}: the result has no {check['field']}")
        left, right = _coerce(actual, expected)
        try:
            holds = _OPS[check["op"]](left, right)
        except TypeError:
            holds = False
        if not holds:
            return Verdict(False, f"{shown} does not hold ({check['field']} = {actual!r})")
    return Verdict(True, f"the script reported {status}; every check holds")


def dry_run_summary(result: Mapping[str, Any]) -> str:
    """A dry run's answer in words: "would fix" with what would change, or "nothing to do"."""
    status = result.get("status")
    if status == "already-ok":
        return "dry run: nothing to do (already ok); nothing was changed"
    if status == "fixed":
        return "dry run: the script reported fixed although DRY_RUN=1; check the script"
    changes = []
    for action in result.get("actions") or []:
        if isinstance(action, Mapping) and action.get("step"):
            changes.append(str(action["step"]))
        elif isinstance(action, str):
            changes.append(action)
    for key, value in result.items():
        if key.startswith("would") and value not in (None, "", 0, [], {}):
            changes.append(f"{key}={value}")
    what = ": " + ", ".join(changes) if changes else ""
    return f"dry run: would fix{what}; nothing was changed"
