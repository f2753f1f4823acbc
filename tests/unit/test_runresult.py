"""The run command text helpers: result line, tails, Linux message sections, exit marker."""

from __future__ import annotations

import json

from autoremediation import runresult


def test_result_line_is_parsed_from_the_last_line() -> None:
    out = 'freeing /var\nREMEDIATION_RESULT {"status": "fixed", "before": {"freePercent": 3}, "after": {}}\n'
    assert runresult.parse_result(out) == {"status": "fixed", "before": {"freePercent": 3}, "after": {}}


def test_the_last_result_line_wins() -> None:
    out = 'REMEDIATION_RESULT {"status": "not-fixed"}\nretrying\nREMEDIATION_RESULT {"status": "fixed"}\n\n'
    assert runresult.parse_result(out) == {"status": "fixed"}


def test_missing_or_malformed_result_is_none() -> None:
    assert runresult.parse_result("no result here\n") is None
    assert runresult.parse_result('REMEDIATION_RESULT {"status": "fix') is None
    assert runresult.parse_result("REMEDIATION_RESULT [1, 2]") is None
    assert runresult.parse_result('REMEDIATION_RESULT {"status": "great"}') is None
    assert runresult.parse_result("") is None


def test_a_prefix_lookalike_is_not_a_result() -> None:
    assert runresult.parse_result('REMEDIATION_RESULTS {"status": "fixed"}') is None


def test_tail_keeps_the_last_4096_bytes_on_a_character_boundary() -> None:
    text = "é" * 3000  # 6,000 bytes
    cut = runresult.tail(text)
    assert len(cut.encode("utf-8")) <= 4096
    assert set(cut) == {"é"}
    assert len(cut) == 2048
    assert runresult.tail("short") == "short"


def test_tail_keeps_the_result_line_of_a_long_output() -> None:
    result = {"status": "already-ok", "before": {}, "after": {}}
    out = "x" * 10_000 + "\nREMEDIATION_RESULT " + json.dumps(result) + "\n"
    assert runresult.parse_result(runresult.tail(out)) == result


def test_linux_message_round_trip() -> None:
    message = runresult.join_linux_message("line 1\nline 2", "warning")
    assert message.startswith("Enable succeeded: \n[stdout]\n")
    assert runresult.split_linux_message(message) == ("line 1\nline 2", "warning")


def test_linux_message_with_empty_sections() -> None:
    assert runresult.split_linux_message("Enable succeeded: \n[stdout]\n\n[stderr]\n") == ("", "")


def test_linux_message_without_sections_is_all_stdout() -> None:
    assert runresult.split_linux_message("something else") == ("something else", "")


def test_stdout_that_mentions_stderr_marker_keeps_its_result_line() -> None:
    out = 'see [stderr] below\nREMEDIATION_RESULT {"status": "fixed"}'
    stdout, stderr = runresult.split_linux_message(runresult.join_linux_message(out, "oops"))
    assert runresult.parse_result(stdout) == {"status": "fixed"}
    assert stderr == "oops"


def test_exit_marker_is_popped_from_stderr() -> None:
    assert runresult.pop_exit_marker("warn\nREMEDIATION_EXIT_CODE 3\n") == ("warn\n", 3)
    assert runresult.pop_exit_marker("REMEDIATION_EXIT_CODE 0") == ("", 0)
    assert runresult.pop_exit_marker("plain error\n") == ("plain error\n", None)


def test_exit_marker_must_be_the_last_line() -> None:
    text = "REMEDIATION_EXIT_CODE 0\nlater output\n"
    assert runresult.pop_exit_marker(text) == (text, None)


def test_outputs_from_windows_and_linux_statuses() -> None:
    windows = runresult.windows_statuses("hello", "bad")
    assert runresult.outputs_from_statuses(windows) == ("hello", "bad")
    linux = [{"code": "ProvisioningState/succeeded", "message": runresult.join_linux_message("a", "b")}]
    assert runresult.outputs_from_statuses(linux) == ("a", "b")
    assert runresult.outputs_from_statuses([]) == ("", "")
