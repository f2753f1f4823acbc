"""Since when the Table Storage job store records every run on its lease entities (``table_leases``).

Jobs that ended before runs were recorded here are not on any lease entity. A marker entity
(PartitionKey ``runs-recorded``) says since when every run is: made by the first store that needs it,
with the earliest time when no job had run yet (a new deployment), else the time it was made. A
``lease_facts`` whose cooldown window reaches back before that moment, and that finds no run on the
entity, asks the jobs (the old scan); a window after it never does.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from .records import time_key

# The marker that says since when runs are recorded on lease entities (it has no ExpiresKey, so the
# lease sweep never matches it; lease partitions all start with "lease-").
_MARKER_PARTITION = "runs-recorded"
_MARKER_ROW = "since"
_EARLIEST = "0001-01-01T00:00:00.000000Z"
_JOB_ROW = "job"


class RunsRecorded:
    """The marker, read once per store; ``leases`` and ``jobs`` return the store's table clients."""

    def __init__(self, leases: Callable[[], Any], jobs: Callable[[], Any]) -> None:
        self._leases = leases
        self._jobs = jobs
        self._records_since: str | None = None
        self._marker_lock = threading.Lock()

    def since(self) -> str:
        """Since when every run's end is recorded on its lease entity (a time key; the earliest one when
        the store kept them from its first run on). Read once per store from a marker entity, made by the
        first store that needed it: if jobs had run by then, the runs before are only in the jobs."""
        if self._records_since is not None:
            return self._records_since
        table = self._leases()
        with self._marker_lock:  # threads of one process read (or make) it once between them
            if self._records_since is None:
                self._records_since = self._read_or_make_marker(table)
        return self._records_since

    def _read_or_make_marker(self, table: Any) -> str:
        from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError

        try:
            since = str(table.get_entity(_MARKER_PARTITION, _MARKER_ROW)["Since"])
        except ResourceNotFoundError:
            ran = self._jobs().query_entities(
                "RowKey eq @row and RanScript eq true",
                parameters={"row": _JOB_ROW},
                select=["PartitionKey"],
                results_per_page=1,
            )
            since = _EARLIEST if next(iter(ran), None) is None else time_key(datetime.now(UTC))
            try:
                table.create_entity(
                    {"PartitionKey": _MARKER_PARTITION, "RowKey": _MARKER_ROW, "Since": since}
                )
            except ResourceExistsError:  # another store made it first: theirs is the one
                since = str(table.get_entity(_MARKER_PARTITION, _MARKER_ROW)["Since"])
        return since
