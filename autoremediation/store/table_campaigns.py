"""The campaign records of the Table Storage job store.

Table ``<prefix>campaigns``: PartitionKey = campaign id, RowKey = ``campaign``; the document is written
with a compare-and-swap on its ``version`` field like a job's (``table_versions``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import ConcurrencyConflict, NotFound
from .records import campaign_id_of, campaign_version_of, encode_document, is_valid_id
from .table_versions import CAMPAIGN_ROW, VersionedEntities, joined_body, split_body


class TableCampaigns:
    """``create_campaign``, ``get_campaign`` and ``update_campaign`` of ``TableJobStore``: ``campaigns``
    gives its table client of campaigns, ``versions`` the ETags it remembers."""

    def __init__(self, campaigns: Callable[[], Any], versions: VersionedEntities) -> None:
        self._campaigns = campaigns
        self._versions = versions

    def create_campaign(self, campaign: Mapping[str, Any]) -> bool:
        from azure.core.exceptions import ResourceExistsError

        campaign_id = campaign_id_of(campaign)
        version = campaign_version_of(campaign)
        body = encode_document({**campaign, "version": version}, f"campaign {campaign_id}")
        entity = {"PartitionKey": campaign_id, "RowKey": CAMPAIGN_ROW, "Version": version, **split_body(body)}
        try:
            written = self._campaigns().create_entity(entity)
        except ResourceExistsError:
            return False
        self._versions.remember("campaigns", campaign_id, version, (written or {}).get("etag"))
        return True

    def _campaign_entity(self, campaign_id: str) -> Any:
        from azure.core.exceptions import ResourceNotFoundError

        if not is_valid_id(campaign_id):
            raise NotFound(f"no campaign {campaign_id!r}")
        try:
            entity = self._campaigns().get_entity(campaign_id, CAMPAIGN_ROW)
        except ResourceNotFoundError:
            self._versions.forget("campaigns", campaign_id)
            raise NotFound(f"no campaign {campaign_id!r}") from None
        self._versions.remember_entity("campaigns", entity)
        return entity

    def get_campaign(self, campaign_id: str) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(joined_body(self._campaign_entity(campaign_id)))
        return document

    def update_campaign(self, campaign: Mapping[str, Any]) -> dict[str, Any]:
        campaign_id = campaign_id_of(campaign)
        version = campaign_version_of(campaign)
        body = encode_document({**campaign, "version": version + 1}, f"campaign {campaign_id}")
        conflict = ConcurrencyConflict(
            f"campaign {campaign_id} changed since it was read (update from version {version}): "
            "re-read it and decide again"
        )
        entity = {
            "PartitionKey": campaign_id,
            "RowKey": CAMPAIGN_ROW,
            "Version": version + 1,
            **split_body(body),
        }
        if not is_valid_id(campaign_id):
            raise NotFound(f"no campaign {campaign_id!r}")
        self._versions.write_versioned("campaigns", campaign_id, version, entity, conflict)
        document: dict[str, Any] = json.loads(body)
        return document
