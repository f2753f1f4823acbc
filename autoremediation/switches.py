"""The kill switch and dry run as they are right now, for the runner to ask before every outside action."""

from __future__ import annotations

from .errors import RemediationError
from .ports import Switches, SwitchSource

KILL_SWITCH_ON = "the global kill switch is on: no remediation runs"


def current_switches(kill_switch: bool, dry_run: bool, source: SwitchSource | None) -> tuple[Switches, str]:
    """The switches now (the process's settings, then a fresh read of ``source``) and why the kill
    switch is on ("" when it is off).

    Either can turn a switch on, neither can turn it off. A switch that cannot be read (say
    REMEDIATION_KILL_SWITCH=maybe) counts as on: when in doubt, do not act.
    """
    why = KILL_SWITCH_ON if kill_switch else ""
    if source is None:
        return Switches(kill_switch, dry_run), why
    try:
        fresh = source.switches()
    except RemediationError as error:
        return Switches(True, True), f"the kill switch cannot be read ({error}): nothing is sent"
    if fresh.kill_switch and not kill_switch:
        why = KILL_SWITCH_ON
    return Switches(kill_switch or fresh.kill_switch, dry_run or fresh.dry_run), why
