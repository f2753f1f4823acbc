"""Payloads are parsed before Azure confirms them: nothing a sender writes into one stays in memory.

The parser remembers the VM of each short id it saw last (a fleet's ids come back alert after alert);
an id longer than any real ARM id is worked out each time and let go, so that a sender with the webhook
key cannot fill an instance's memory with ids of a megabyte each.
"""

from __future__ import annotations

import copy
import gc
import json
import tracemalloc
from pathlib import Path

from autoremediation.signals import parse

SAMPLE = json.loads((Path(__file__).resolve().parents[2] / "samples" / "disk-full-alert.json").read_text())
VMS = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/Microsoft.Compute/"
VMS += "virtualMachines/"
LONG = 100_000


def _alert_naming(target: str) -> dict:
    payload = copy.deepcopy(SAMPLE)
    payload["data"]["essentials"]["alertTargetIDs"] = [target]
    payload["data"]["essentials"]["configurationItems"] = [target]
    return payload


def _held_after(work) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        work()
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


def test_ids_longer_than_any_real_one_are_not_held_after_parsing() -> None:
    def parse_long_ids() -> None:
        for n in range(30):
            [signal] = parse(_alert_naming(f"{VMS}vm-{n}-{'x' * LONG}"))
            assert signal.targets and len(signal.targets[0].id) > LONG  # parsed and targeted as ever

    assert _held_after(parse_long_ids) < 30 * LONG // 4  # all 30 held would be 3 MB and more
