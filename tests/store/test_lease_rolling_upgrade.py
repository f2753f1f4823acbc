"""A rolling upgrade (or a rollback) never runs a remediation inside its cooldown, on either version.

An instance of the previous version reads only ``Ran_<id>`` for the cooldown, takes a lease with a MERGE
of the lease's own properties, releases with the run's end in ``Ran_<id>`` (a holder's release always,
another's only when later than what is there), and sweeps an expired entity with no ``Ran_`` property.
Its logic is copied here in those few lines (not imported: this version replaced it), and run against
the tables this version writes. Whatever mix of versions takes, releases and sweeps, neither version
sees no run, or one earlier than the real one, inside the cooldown; the previous one may see a later
end (a take writes its lease's bound there), which only makes its cooldown last longer.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from autoremediation import jobs
from autoremediation.jobs import Job
from autoremediation.store.records import time_key
from autoremediation.store.table import TableJobStore
from tests.azurite import Azurite

from .conftest import T0, VM, VM2, MakeJob, table_store

pytestmark = pytest.mark.azurite

R = "free-disk-space"
RAN = "Ran_free_disk_space"  # the previous version's property for R
COOLDOWN = timedelta(minutes=60)
TTL = 1800.0


# -- the previous version, as far as the lease entity goes ---------------------------------------------


def _keys(key: str) -> dict[str, str]:
    return {"PartitionKey": "lease-" + hashlib.sha256(key.encode("utf-8")).hexdigest(), "RowKey": "lease"}


def _entity(leases: TableClient, key: str) -> dict[str, Any] | None:
    try:
        keys = _keys(key)
        return dict(leases.get_entity(keys["PartitionKey"], keys["RowKey"]))
    except ResourceNotFoundError:
        return None


def previous_last_run(leases: TableClient, key: str) -> datetime | None:
    """The previous version's ``lease_facts``: the cooldown counts from ``Ran_<id>`` alone."""
    entity = _entity(leases, key)
    recorded = str(entity.get(RAN) or "") if entity else ""
    return datetime.fromisoformat(recorded.replace("Z", "+00:00")) if recorded else None


def previous_take(leases: TableClient, key: str, holder: str, now: datetime) -> None:
    """The previous version's take of a free lease: an insert, or a MERGE of the lease's own properties."""
    expires = time_key(now + timedelta(seconds=TTL))
    leases.upsert_entity(
        {**_keys(key), "Key": key, "Holder": holder, "ExpiresKey": expires}, mode=UpdateMode.MERGE
    )


def previous_release(leases: TableClient, key: str, holder: str, ended: datetime | None) -> None:
    """The previous version's release: its holder frees the lease and writes its run; a release by a job
    that holds it no more writes the run only when it is later than the one there."""
    entity = _entity(leases, key)
    assert entity is not None
    run = {RAN: time_key(ended)} if ended else {}
    if entity.get("Holder") == holder:
        change = {"Holder": "", "ExpiresKey": "", **run}
    elif run and str(entity.get(RAN) or "") < run[RAN]:
        change = run
    else:
        return
    leases.update_entity({**_keys(key), **change}, mode=UpdateMode.MERGE)


def previous_sweep(leases: TableClient, now: datetime) -> None:
    for entity in leases.query_entities("ExpiresKey le @now", parameters={"now": time_key(now)}):
        if not any(name.startswith("Ran_") for name in entity):
            leases.delete_entity(entity["PartitionKey"], entity["RowKey"])


# -- this version --------------------------------------------------------------------------------------


@pytest.fixture
def store(azurite: Azurite) -> TableJobStore:
    table = table_store(azurite)
    table.lease_facts(VM2, R, T0, runs_since=T0)  # a new deployment: runs recorded from the start
    return table


@pytest.fixture
def leases(store: TableJobStore, azurite: Azurite) -> TableClient:
    return TableClient.from_connection_string(azurite.connection_string, store.table_names["leases"])


def _job(store: TableJobStore, make_job: MakeJob, key: str) -> Job:
    return store.create(make_job(key))[0]


def _end(store: TableJobStore, job: Job, at: datetime, *, ran: bool = True) -> datetime:
    path = (jobs.DISPATCHING, jobs.RUNNING, jobs.VERIFYING, jobs.SUCCEEDED) if ran else (jobs.CANCELLED,)
    for state in path:
        job = store.update(jobs.transition(store.get(job.id), state, now=at, actor="t", reason=state))
    return at


def _last(store: TableJobStore, now: datetime) -> datetime | None:
    return store.lease_facts(VM, R, now, runs_since=now - COOLDOWN).last_run_ended_at


def _at_least(seen: datetime | None, real: datetime) -> bool:
    return seen is not None and seen >= real


def test_a_run_left_to_its_end_is_seen_by_the_previous_version_no_earlier(
    store: TableJobStore, leases: TableClient, make_job: MakeJob
) -> None:
    # The reproduction: 17 minutes after a run that freed its VM by its end, in a 60-minute cooldown.
    job = _job(store, make_job, "a")
    assert store.acquire_lease(VM, job.id, TTL, T0, remediation=R)
    ended = _end(store, job, T0 + timedelta(minutes=3))
    now = ended + timedelta(minutes=17)

    assert _last(store, now) == ended  # this version: exact
    assert previous_last_run(leases, VM) == T0 + timedelta(seconds=TTL)  # the previous: the bound
    previous_sweep(leases, T0 + timedelta(seconds=TTL + 1))  # and its sweep keeps the record
    assert _last(store, now) == ended and _at_least(previous_last_run(leases, VM), ended)


def test_a_renewal_moves_what_the_previous_version_sees(
    store: TableJobStore, leases: TableClient, make_job: MakeJob
) -> None:
    job = _job(store, make_job, "a")
    assert store.acquire_lease(VM, job.id, TTL, T0, remediation=R)
    renewed = T0 + timedelta(minutes=10)
    assert store.acquire_lease(VM, job.id, TTL, renewed, remediation=R)
    ended = _end(store, job, renewed + timedelta(minutes=25))  # after the first bound

    assert _last(store, ended) == ended
    assert _at_least(previous_last_run(leases, VM), ended)


def test_a_previous_release_of_a_run_this_version_took_is_exact_for_both(
    store: TableJobStore, leases: TableClient, make_job: MakeJob
) -> None:
    job = _job(store, make_job, "a")
    assert store.acquire_lease(VM, job.id, TTL, T0, remediation=R)
    ended = _end(store, job, T0 + timedelta(minutes=3))
    previous_release(leases, VM, job.id, ended)

    assert _last(store, ended) == ended
    assert previous_last_run(leases, VM) == ended


def test_a_previous_release_of_a_job_that_never_ran_leaves_no_run_to_this_version(
    store: TableJobStore, leases: TableClient, make_job: MakeJob
) -> None:
    job = _job(store, make_job, "a")
    assert store.acquire_lease(VM, job.id, TTL, T0, remediation=R)
    ended = _end(store, job, T0 + timedelta(minutes=3), ran=False)
    previous_release(leases, VM, job.id, None)

    assert _last(store, ended) is None
    assert store.lease_holder(VM, ended) is None


def test_a_previous_take_after_this_versions_run_keeps_both_runs(
    store: TableJobStore, leases: TableClient, make_job: MakeJob
) -> None:
    first = _job(store, make_job, "a")
    assert store.acquire_lease(VM, first.id, TTL, T0, remediation=R)
    first_ended = _end(store, first, T0 + timedelta(minutes=1))
    # An instance of the previous version takes the VM for R and runs: its job carries no bound, so it is
    # released with its run, by either version.
    previous_take(leases, VM, "job-old", first_ended + timedelta(seconds=1))
    assert _last(store, first_ended + timedelta(seconds=2)) == first_ended
    second_ended = first_ended + timedelta(minutes=2)  # before the first job's bound
    store.release_lease(VM, "job-old", ran=(R, second_ended))

    now = second_ended + timedelta(minutes=17)
    assert _last(store, now) == second_ended
    assert _at_least(previous_last_run(leases, VM), second_ended)
    assert store.lease_holder(VM, now) is None


def test_a_previous_release_of_a_lapsed_run_after_this_versions_take_is_seen_by_both(
    store: TableJobStore, leases: TableClient, make_job: MakeJob
) -> None:
    # job-old, taken by the previous version, lapsed while its script still ran; this version's job
    # took the VM for R (its bound provisional in Ran_), ran and ended; then job-old ended later.
    previous_take(leases, VM, "job-old", T0)
    lapsed = T0 + timedelta(seconds=TTL + 1)
    job = _job(store, make_job, "a")
    assert _last(store, lapsed) is None
    assert store.acquire_lease(VM, job.id, 60, lapsed, remediation=R)
    ended = _end(store, job, lapsed + timedelta(seconds=10))
    old_ended = lapsed + timedelta(seconds=120)
    previous_release(leases, VM, "job-old", old_ended)

    now = old_ended + timedelta(minutes=17)
    assert _last(store, now) == old_ended
    assert _at_least(previous_last_run(leases, VM), old_ended)
    assert ended < old_ended


def test_a_take_after_a_run_keeps_it_for_both_while_the_new_one_is_pending(
    store: TableJobStore, leases: TableClient, make_job: MakeJob
) -> None:
    first = _job(store, make_job, "a")
    assert store.acquire_lease(VM, first.id, 600, T0, remediation=R)
    first_ended = _end(store, first, T0 + timedelta(minutes=1))
    taken = T0 + timedelta(minutes=30)  # (a cooldown of 20 minutes, say, lets the next job go)
    assert _last(store, taken) == first_ended
    second = _job(store, make_job, "b")
    assert store.acquire_lease(VM, second.id, TTL, taken, remediation=R)
    _end(store, second, taken + timedelta(seconds=5), ran=False)  # refused after its take

    now = taken + timedelta(minutes=1)
    assert _last(store, now) == first_ended
    assert _at_least(previous_last_run(leases, VM), first_ended)
