"""The compare-and-swap of the Table Storage job store's versioned documents (jobs and campaigns).

A document (a job's or a campaign's JSON) is split over ``Body00``.. properties: a string property holds
at most 64 KiB. Its ``Version`` property is the compare-and-swap's version. The store remembers the ETag
of each entity it last read or wrote, with its version, in a bounded map: a step reads its job and
writes it, so the compare-and-swap is one conditional request instead of a read and a write. A
remembered ETag that is stale (412) or unknown falls back to reading the entity; a newer version there
is the caller's ConcurrencyConflict.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import NotFound
from .table_support import etag

# 64 KiB per string property = 32,768 UTF-16 units; the JSON is ASCII, so one unit a character.
CHUNK_CHARS = 32_000
JOB_ROW = "job"
CAMPAIGN_ROW = "campaign"
ROWS = {"jobs": JOB_ROW, "campaigns": CAMPAIGN_ROW}
# How many ETags the store remembers (job and campaign entities it read or wrote last): enough for the
# jobs a busy worker has in flight, small enough to be nothing in memory.
REMEMBERED_ETAGS = 8192


def split_body(text: str) -> dict[str, Any]:
    parts = [text[i : i + CHUNK_CHARS] for i in range(0, len(text), CHUNK_CHARS)] or [""]
    entity: dict[str, Any] = {"BodyParts": len(parts)}
    entity.update({f"Body{i:02d}": part for i, part in enumerate(parts)})
    return entity


def joined_body(entity: Mapping[str, Any]) -> str:
    parts = int(entity.get("BodyParts", 0))
    return "".join(str(entity[f"Body{i:02d}"]) for i in range(parts))


class VersionedEntities:
    """The ETags a ``TableJobStore`` remembers, and its compare-and-swap of a job or a campaign entity;
    ``table`` gives its table client of a kind (``jobs`` or ``campaigns``)."""

    def __init__(self, table: Callable[[str], Any]) -> None:
        self._table = table
        self._lock = threading.Lock()
        # (table kind, entity id) -> (version, ETag) of what the store last read or wrote, so that the
        # compare-and-swap that follows is one request; see ``write_versioned``.
        self._etags: OrderedDict[tuple[str, str], tuple[int, str]] = OrderedDict()

    def remember(self, kind: str, entity_id: str, version: Any, tag: Any) -> None:
        if tag is None:
            return
        with self._lock:
            self._etags[(kind, entity_id)] = (int(version), str(tag))
            self._etags.move_to_end((kind, entity_id))
            while len(self._etags) > REMEMBERED_ETAGS:
                self._etags.popitem(last=False)

    def remembered(self, kind: str, entity_id: str, version: int) -> str | None:
        with self._lock:
            known = self._etags.get((kind, entity_id))
        return known[1] if known is not None and known[0] == version else None

    def forget(self, kind: str, entity_id: str) -> None:
        with self._lock:
            self._etags.pop((kind, entity_id), None)

    def remember_entity(self, kind: str, entity: Any) -> None:
        metadata = getattr(entity, "metadata", None) or {}
        self.remember(kind, str(entity["PartitionKey"]), entity.get("Version", 0), metadata.get("etag"))

    def write_versioned(
        self, kind: str, entity_id: str, version: int, entity: dict[str, Any], conflict: Exception
    ) -> None:
        """Replace the entity if it is still at ``version``: the compare-and-swap of jobs and campaigns.

        The ETag of the read or write the store last did on the entity makes it one request (a job is
        read at the start of a step and written at its end, often more than once). Without one, or when
        the entity changed since (412), the entity is read: a different version is the caller's conflict;
        the same version with a new ETag (rewritten by another writer at that version) gets one more
        compare-and-swap on the fresh ETag, whose 412 is a conflict too.
        """
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
        from azure.data.tables import UpdateMode

        table = self._table(kind)
        what = "job" if kind == "jobs" else "campaign"
        known = self.remembered(kind, entity_id, version)
        for remembered in ([known] if known else []) + [None]:
            tag = remembered
            if tag is None:
                try:
                    current = table.get_entity(entity_id, ROWS[kind])
                except ResourceNotFoundError:
                    self.forget(kind, entity_id)
                    raise NotFound(f"no {what} {entity_id!r} to update: it was deleted") from None
                self.remember_entity(kind, current)
                if int(current["Version"]) != version:
                    raise conflict
                tag = etag(current)
            try:
                written = table.update_entity(
                    entity, mode=UpdateMode.REPLACE, etag=tag, match_condition=MatchConditions.IfNotModified
                )
            except ResourceModifiedError:
                self.forget(kind, entity_id)
                if remembered is not None:
                    continue  # what the store remembered is stale: look at what is stored now
                raise conflict from None
            except ResourceNotFoundError:
                self.forget(kind, entity_id)
                raise NotFound(f"no {what} {entity_id!r} to update: it was deleted") from None
            self.remember(kind, entity_id, entity["Version"], (written or {}).get("etag"))
            return
        raise conflict  # pragma: no cover - the loop always ends with the read attempt
