"""The campaign record: its states, how it changes (compare-and-swap), and the failures it counts.

The record is small and written rarely: at creation, when a job fails (the error budget), when the
campaign stops or ends. Releasing the next job never writes it: a job that ends sends its successor's
message itself (see ``campaign_chain``), so the jobs, not the record, carry the schedule.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from . import jobs
from .errors import ConcurrencyConflict
from .ports import JobStore

if TYPE_CHECKING:
    from .services import Services

CREATING = "creating"  # the record exists, its jobs are being made: nothing is released yet
RUNNING = "running"
STOPPING = "stopping"  # stopped (errors or an operator): no new job starts, the ones in flight finish
COMPLETED = "completed"
STOPPED = "stopped"
FINAL = frozenset({COMPLETED, STOPPED})

IN_FLIGHT = frozenset({jobs.AWAITING_APPROVAL, jobs.DISPATCHING, jobs.RUNNING, jobs.VERIFYING})
UNFINISHED = sorted({jobs.PLANNED, *IN_FLIGHT})
ERRORS = frozenset({jobs.FAILED, jobs.TIMED_OUT})

# A released job still planned after this long has probably lost its message (a crash between its
# predecessor's end and the send): the sweeper sends it again. A duplicate is harmless: the runner's
# compare-and-swap absorbs it.
RESEND_AFTER = timedelta(minutes=10)
# A campaign still ``creating`` after this long was abandoned by its creator (the longest a function
# may run): its jobs are cancelled rather than left planned forever.
CREATION_TIMEOUT = timedelta(minutes=30)
CAS_ATTEMPTS = 8
ACTOR = "campaign"


def change(
    store: JobStore,
    campaign_id: str,
    edit: Callable[[dict[str, Any]], dict[str, Any] | None],
    campaign: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Apply ``edit`` to the record with a compare-and-swap, reading again after a conflict.

    ``edit`` returns the new record, or None when there is nothing to change (the record is then
    returned as read). ``campaign`` is a copy already read, saving the first read.
    """
    current = dict(campaign) if campaign is not None else store.get_campaign(campaign_id)
    for _ in range(CAS_ATTEMPTS):
        updated = edit(current)
        if updated is None:
            return current
        try:
            return store.update_campaign(updated)
        except ConcurrencyConflict:
            current = store.get_campaign(campaign_id)
    raise ConcurrencyConflict(f"campaign {campaign_id}: too many concurrent changes, try again")


# ---- the failures the error budget counts ---------------------------------------------------------
# One bit per job (by campaign index): adding the same failure twice (a redelivered message) counts it
# once, and 20,000 jobs take 3.4 KB however many fail.


def failed_bit(campaign: Mapping[str, Any], index: int) -> bool:
    bits = _bits(campaign)
    byte = index // 8
    return byte < len(bits) and bool(bits[byte] & (1 << (index % 8)))


def with_failure(campaign: Mapping[str, Any], index: int) -> dict[str, Any]:
    bits = bytearray(_bits(campaign))
    byte = index // 8
    if byte >= len(bits):
        bits.extend(bytes(byte + 1 - len(bits)))
    bits[byte] |= 1 << (index % 8)
    return {
        **campaign,
        "failedCount": int(campaign.get("failedCount") or 0) + 1,
        "failedBitmap": base64.b64encode(bytes(bits)).decode("ascii"),
    }


def _bits(campaign: Mapping[str, Any]) -> bytes:
    text = campaign.get("failedBitmap")
    return base64.b64decode(text) if isinstance(text, str) and text else b""


# ---- reading -------------------------------------------------------------------------------------


_BOOKKEEPING = frozenset({"failedBitmap", "failedCount", "releasing", "scheduler"})


def public(services: Services, campaign: Mapping[str, Any]) -> dict[str, Any]:
    """The record as the API shows it: bookkeeping left out, secret parameters redacted."""
    # The budget's own count is left out too (it stops counting where the budget cannot run out):
    # ``counts.failed``, from the jobs, is the one to show.
    record = {k: v for k, v in campaign.items() if k not in _BOOKKEEPING}
    if "parameters" in record:
        record["parameters"] = services.catalog.redacted(
            str(record.get("remediation", "")), record["parameters"]
        )
    return record


def stop_reason(campaign: Mapping[str, Any]) -> str:
    stop = campaign.get("stopRequested") or {}
    return f"stopped by {stop.get('by')}: {stop.get('reason')}" if stop else ""
