"""Provenance remembers two reads for a short while, and no longer: an alert rule (one ARM read per
rule per 30 s, not per alert) and an alert for a duplicate delivery whose job exists already."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from autoremediation.catalog import Catalog
from autoremediation.catalog_load import load_catalog
from autoremediation.provenance import ALERT_TTL, RULE_TTL
from autoremediation.readcache import TtlCache
from autoremediation.store.memory_queue import ManualClock
from tests.helpers.catalogs import SHIPPED
from tests.unit.test_provenance import TRUSTED_RULE, World, alert_id, decisions, log_alert, record, vm


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(SHIPPED)


@pytest.fixture
def world(tmp_path: Path, catalog: Catalog) -> World:
    return World(tmp_path, catalog)


def seconds(delta: timedelta) -> float:
    return delta.total_seconds()


# -- the cache itself --------------------------------------------------------------------------------


def test_a_value_is_served_until_its_ttl_and_read_again_from_then_on() -> None:
    clock = ManualClock(datetime(2026, 1, 1, tzinfo=UTC))
    cache: TtlCache[str] = TtlCache(clock, timedelta(seconds=30), 10)
    cache.put("rule", "v1")
    clock.advance(29.999)
    assert cache.get("rule") == "v1"
    clock.advance(0.001)
    assert cache.get("rule") is None
    assert len(cache) == 0  # a stale entry is dropped, not kept


def test_the_oldest_read_goes_first_when_the_cache_is_full() -> None:
    clock = ManualClock(datetime(2026, 1, 1, tzinfo=UTC))
    cache: TtlCache[int] = TtlCache(clock, timedelta(seconds=30), 2)
    cache.put("a", 1)
    cache.put("b", 2)
    cache.put("a", 3)  # read again: now the newest
    cache.put("c", 4)
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (3, None, 4)
    assert len(cache) == 2


class _Clock:
    def __init__(self, now: datetime) -> None:
        self.at = now

    def now(self) -> datetime:
        return self.at


def test_a_clock_that_went_back_makes_an_entry_stale_and_a_zero_ttl_keeps_nothing() -> None:
    clock = _Clock(datetime(2026, 1, 1, 12, tzinfo=UTC))
    cache: TtlCache[str] = TtlCache(clock, timedelta(seconds=30), 10)
    cache.put("k", "v")
    clock.at -= timedelta(seconds=1)
    assert cache.get("k") is None
    off: TtlCache[str] = TtlCache(clock, timedelta(0), 10)
    off.put("k", "v")
    assert off.get("k") is None and len(off) == 0


# -- the alert rule ----------------------------------------------------------------------------------


def test_a_second_alert_of_a_rule_is_confirmed_without_reading_the_rule_again(world: World) -> None:
    world.alerts.add(record("one", vm("vm-1")))
    world.alerts.add(record("two", vm("vm-2")))
    assert decisions(world.plan(log_alert("one", [vm("vm-1")]))) == [("vm-1", "dispatch")]
    assert decisions(world.plan(log_alert("two", [vm("vm-2")]))) == [("vm-2", "dispatch")]
    assert (world.alerts.reads, world.alerts.rule_reads) == (2, 1)  # each alert read, its rule once


def test_the_rule_is_read_again_once_its_ttl_has_passed(world: World) -> None:
    for n in range(3):
        world.alerts.add(record(f"a{n}", vm(f"vm-{n}")))
    world.plan(log_alert("a0", [vm("vm-0")]))
    world.clock.advance(seconds(RULE_TTL) - 1)
    world.plan(log_alert("a1", [vm("vm-1")]))
    assert world.alerts.rule_reads == 1
    world.clock.advance(1)
    world.plan(log_alert("a2", [vm("vm-2")]))
    assert world.alerts.rule_reads == 2


def test_a_rule_disabled_in_arm_stops_its_alerts_once_the_ttl_has_passed(world: World) -> None:
    for n in range(3):
        world.alerts.add(record(f"d{n}", vm(f"vm-{n}"), fired="2026-11-25T10:19:00Z"))
    assert decisions(world.plan(log_alert("d0", [vm("vm-0")], fired="2026-11-25T10:19:00Z")))
    rule = world.alerts.rules[TRUSTED_RULE.lower()]
    world.alerts.rules[TRUSTED_RULE.lower()] = replace(rule, enabled=False)
    # Within the TTL the remembered rule still serves (documented in provenance: at most 30 s).
    assert decisions(world.plan(log_alert("d1", [vm("vm-1")], fired="2026-11-25T10:19:00Z")))
    world.clock.advance(seconds(RULE_TTL))
    report = world.plan(log_alert("d2", [vm("vm-2")], fired="2026-11-25T10:19:00Z"))
    assert report["plans"] == []
    assert any("is disabled in ARM" in n["message"] for n in report["notes"])


def test_custom_properties_changed_in_arm_are_used_once_the_ttl_has_passed(world: World) -> None:
    for n in range(2):
        world.alerts.add(record(f"c{n}", vm(f"vm-{n}"), fired="2026-11-25T10:19:00Z"))
    first = world.plan(log_alert("c0", [vm("vm-0")], fired="2026-11-25T10:19:00Z"))
    assert first["plans"][0]["remediation"] == "free-disk-space"
    rule = world.alerts.rules[TRUSTED_RULE.lower()]
    world.alerts.rules[TRUSTED_RULE.lower()] = replace(
        rule, custom_properties={"remediation": "restart-service"}
    )
    world.clock.advance(seconds(RULE_TTL))
    later = world.plan(log_alert("c1", [vm("vm-1")], fired="2026-11-25T10:19:00Z"))
    assert [p["remediation"] for p in later["plans"]] == ["restart-service"]


def test_a_missing_rule_is_not_remembered(world: World) -> None:
    world.alerts.add(record("m0", vm("vm-0")))
    world.alerts.add(record("m1", vm("vm-1")))
    rule = world.alerts.rules.pop(TRUSTED_RULE.lower())
    report = world.plan(log_alert("m0", [vm("vm-0")]))
    assert any("does not exist in ARM" in n["message"] for n in report["notes"])
    world.alerts.rules[TRUSTED_RULE.lower()] = rule  # created a moment later
    assert decisions(world.plan(log_alert("m1", [vm("vm-1")]))) == [("vm-1", "dispatch")]


# -- duplicate deliveries ----------------------------------------------------------------------------


def test_a_duplicate_delivery_finds_its_job_without_reading_the_alert_again(world: World) -> None:
    world.alerts.add(record("dup", vm("vm-1")))
    first = world.submit(log_alert("dup", [vm("vm-1")]))
    again = [world.submit(log_alert("dup", [vm("vm-1")])) for _ in range(5)]
    assert [a.created for a in first.jobs] == [True]
    assert all([a.job.id for a in r.jobs] == [first.jobs[0].job.id] for r in again)
    assert all(not a.created for r in again for a in r.jobs)
    assert (world.alerts.reads, world.alerts.rule_reads) == (1, 1)
    assert len(world.queue.receive(max_messages=10)) == 1  # one message, for the one job


def test_a_duplicate_after_the_alert_ttl_is_read_again(world: World) -> None:
    world.alerts.add(record("late", vm("vm-1")))
    world.submit(log_alert("late", [vm("vm-1")]))
    world.clock.advance(seconds(ALERT_TTL))
    world.submit(log_alert("late", [vm("vm-1")]))
    assert world.alerts.reads == 2


def test_a_remembered_alert_whose_job_is_missing_is_read_again_before_a_job_is_made(world: World) -> None:
    # The first delivery confirmed the alert but made no job (here: planning only, as when the store
    # failed after the read): the next delivery must not make a job on the remembered read.
    world.alerts.add(record("half", vm("vm-1")))
    world.plan(log_alert("half", [vm("vm-1")]))
    world.alerts.resolve(alert_id("half"), "2026-11-25T10:19:00Z")  # Azure: resolved meanwhile
    result = world.submit(log_alert("half", [vm("vm-1")]))
    assert result.jobs == ()
    assert world.alerts.reads == 2
    assert any("as Resolved" in n.message for n in result.report.notes)


def test_a_resolved_notification_is_always_read_afresh_and_cancels_the_job(world: World) -> None:
    world.alerts.add(record("res", vm("vm-1")))
    [made] = world.submit(log_alert("res", [vm("vm-1")])).jobs
    world.alerts.resolve(alert_id("res"), "2026-11-25T10:19:00Z")
    resolved = log_alert("res", [vm("vm-1")], state="Resolved")
    resolved["data"]["essentials"]["resolvedDateTime"] = "2026-11-25T10:19:00Z"
    result = world.submit(resolved)
    assert result.resolved == (made.job.id,)
    assert world.store.get(made.job.id).status == "cancelled"
    assert world.alerts.reads == 2
