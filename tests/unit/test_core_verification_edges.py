"""Verification edges: every verdict says why, in words an operator reading the job can act on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from autoremediation.catalog import Remediation
from autoremediation.verification import Verdict, verify


def remediation(**verification: Any) -> Remediation:
    rules = {"successStatuses": ["fixed", "already-ok"], **verification}
    return Remediation(
        id="free-disk-space",
        title="t",
        description="d",
        conditions=("disk-full",),
        risk="low",
        approval="auto",
        read_only=False,
        scripts={"linux": "linux.sh"},
        parameters={},
        control_plane=(),
        timeout_seconds=60,
        cooldown_minutes=0,
        verification=rules,
        folder=Path(),
    )


FREE = remediation(expect=[{"field": "after.freePercent", "op": ">=", "parameter": "targetFreePercent"}])


def check(
    rem: Remediation,
    result: dict[str, Any] | None,
    *,
    exit_code: int | None = 0,
    parameters: dict[str, str] | None = None,
    **kw: Any,
) -> Verdict:
    return verify(rem, exit_code=exit_code, result=result, parameters=parameters or {}, **kw)


def test_no_result_line_fails_and_says_so() -> None:
    assert check(FREE, None) == Verdict(False, "the script printed no REMEDIATION_RESULT line")


def test_a_real_run_is_not_judged_as_a_dry_run_by_default() -> None:
    verdict = verify(FREE, exit_code=0, result={"status": "not-fixed"}, parameters={})
    assert verdict == Verdict(False, "the script reported not-fixed")


@pytest.mark.parametrize(
    ("status", "words"),
    [
        ("fixed", "dry run: the script reported fixed although DRY_RUN=1; check the script"),
        ("already-ok", "dry run: nothing to do (already ok); nothing was changed"),
        ("not-fixed", "dry run: would fix; nothing was changed"),
    ],
)
def test_a_dry_run_accepts_every_answer_of_a_clean_script(status: str, words: str) -> None:
    assert check(FREE, {"status": status}, exit_code=1, dry_run=True) == Verdict(True, words)


def test_a_dry_run_says_what_would_change() -> None:
    result = {
        "status": "not-fixed",
        "wouldFreeBytes": 4096,
        "wouldNothing": 0,
        "actions": [{"step": "temp-files", "freedBytes": 0}, "restart nginx", {"note": "no step"}],
    }
    assert check(FREE, result, dry_run=True) == Verdict(
        True, "dry run: would fix: temp-files, restart nginx, wouldFreeBytes=4096; nothing was changed"
    )


def test_a_dry_run_that_errored_fails_with_the_scripts_message() -> None:
    verdict = check(FREE, {"status": "error", "message": "df failed"}, dry_run=True)
    assert verdict == Verdict(False, "dry run: the script reported error: df failed")
    assert check(FREE, {"status": "error"}, dry_run=True) == Verdict(
        False, "dry run: the script reported error:"
    )


def test_the_catalog_exit_codes_are_the_accepted_ones() -> None:
    rem = remediation(exitCodes=[0, 3010])
    assert check(rem, {"status": "fixed"}, exit_code=3010).ok is True
    assert check(rem, {"status": "fixed"}, exit_code=1) == Verdict(False, "exit code 1 (expected 0, 3010)")


def test_without_declared_exit_codes_only_zero_passes() -> None:
    assert check(remediation(), {"status": "fixed"}, exit_code=2) == Verdict(
        False, "exit code 2 (expected 0)"
    )


def test_a_failing_status_carries_the_scripts_message_when_it_has_one() -> None:
    assert check(FREE, {"status": "not-fixed", "message": "still 3% free"}) == Verdict(
        False, "the script reported not-fixed: still 3% free"
    )
    assert check(FREE, {"status": "not-fixed", "message": ""}) == Verdict(
        False, "the script reported not-fixed"
    )


def test_a_missing_field_names_the_check_and_the_field() -> None:
    verdict = check(FREE, {"status": "fixed"}, parameters={"targetFreePercent": "20"})
    assert verdict == Verdict(
        False, "after.freePercent >= targetFreePercent: the result has no after.freePercent"
    )


def test_a_field_under_a_non_mapping_is_missing() -> None:
    verdict = check(FREE, {"status": "fixed", "after": 40}, parameters={"targetFreePercent": "20"})
    assert verdict.ok is False
    assert verdict.reason.endswith("the result has no after.freePercent")


def test_a_literal_value_check_is_shown_with_its_value() -> None:
    rem = remediation(expect=[{"field": "service.state", "op": "==", "value": "running"}])
    assert check(rem, {"status": "fixed", "service": {"state": "running"}}) == Verdict(
        True, "the script reported fixed; every check holds"
    )
    assert check(rem, {"status": "fixed", "service": {"state": "stopped"}}) == Verdict(
        False, "service.state == running does not hold (service.state = 'stopped')"
    )


def test_a_boolean_is_never_compared_as_a_number() -> None:
    rem = remediation(expect=[{"field": "after.synced", "op": ">=", "value": "0"}])
    verdict = check(rem, {"status": "fixed", "after": {"synced": True}})
    assert verdict == Verdict(False, "after.synced >= 0 does not hold (after.synced = True)")


def test_values_that_cannot_be_ordered_do_not_hold() -> None:
    rem = remediation(expect=[{"field": "after.freePercent", "op": ">=", "value": "plenty"}])
    verdict = check(rem, {"status": "fixed", "after": {"freePercent": None}})
    assert verdict == Verdict(False, "after.freePercent >= plenty does not hold (after.freePercent = None)")
