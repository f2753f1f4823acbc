"""An operator stops a campaign: nothing new starts, waiting jobs are cancelled, who and why are kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoremediation import campaigns, jobs
from autoremediation.campaign_drive import drive
from autoremediation.errors import NotFound
from tests.unit.test_campaigns_support import CampaignWorld, make_compute, request


def test_a_stopped_campaign_starts_no_new_vm_and_says_who_stopped_it(tmp_path: Path) -> None:
    world = CampaignWorld(tmp_path, make_compute(10))
    started = campaigns.start_campaign(world.services, request(maxConcurrency=3), actor="alice")

    stopped = campaigns.stop_campaign(
        world.services, started["id"], actor="bob", reason="wrong change window"
    )
    final = drive(world.services, started["id"])

    assert stopped["status"] in {campaigns.STOPPING, campaigns.STOPPED}
    assert final["status"] == campaigns.STOPPED
    assert final["stopReason"] == "stopped by bob: wrong change window"
    assert final["stopRequested"]["by"] == "bob"
    campaign_jobs = world.services.store.list(campaign_id=started["id"])
    ran = [j for j in campaign_jobs if j.status == jobs.SUCCEEDED]
    assert len(ran) <= 3  # only those released before the stop
    cancelled = [j for j in campaign_jobs if j.status == jobs.CANCELLED]
    assert len(cancelled) == 10 - len(ran)
    assert all("stopped by bob" in j.history[-1].reason for j in cancelled)


def test_stopping_twice_keeps_the_first_reason(tmp_path: Path) -> None:
    world = CampaignWorld(tmp_path, make_compute(4))
    started = campaigns.start_campaign(world.services, request(maxConcurrency=1), actor="alice")

    campaigns.stop_campaign(world.services, started["id"], actor="bob", reason="first")
    campaigns.stop_campaign(world.services, started["id"], actor="carol", reason="second")

    record = world.services.store.get_campaign(started["id"])
    assert (record["stopRequested"]["by"], record["stopRequested"]["reason"]) == ("bob", "first")
    assert record["stopReason"] == "stopped by bob: first"


def test_stopping_an_unknown_campaign_is_not_found(tmp_path: Path) -> None:
    world = CampaignWorld(tmp_path, make_compute(1))

    with pytest.raises(NotFound):
        campaigns.stop_campaign(world.services, "../etc", actor="bob", reason="x")
