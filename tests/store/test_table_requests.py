"""What each Table Storage operation costs in requests: the storage bill's unit and most of a job's latency.

Every request the real SDK client sends to Azurite is recorded by a per-request hook on that client, so
these tests count what a deployment would pay for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest

from autoremediation import jobs
from autoremediation.errors import ConcurrencyConflict, NotFound
from autoremediation.store.table import TableJobStore
from tests.azurite import Azurite

from .conftest import T0, VM, VM2, MakeJob, table_store

pytestmark = pytest.mark.azurite


@dataclass
class Requests:
    """The requests one store sent, as (method, table) pairs."""

    seen: list[tuple[str, str]] = field(default_factory=list)

    def __call__(self, pipeline_request: Any) -> None:
        request = pipeline_request.http_request
        table = request.url.split("?")[0].rstrip("/").rsplit("/", 1)[-1].split("(")[0]
        self.seen.append((request.method, table))

    def during(self, action: Any) -> list[tuple[str, str]]:
        self.seen.clear()
        action()
        return list(self.seen)


@pytest.fixture
def requests() -> Requests:
    return Requests()


@pytest.fixture
def store(azurite: Azurite, requests: Requests) -> TableJobStore:
    return table_store(azurite, raw_request_hook=requests)


def _methods(seen: list[tuple[str, str]]) -> list[str]:
    return [method for method, _ in seen]


class TestJobCompareAndSwap:
    def test_an_update_after_a_read_is_one_request(
        self, store: TableJobStore, requests: Requests, make_job: MakeJob
    ) -> None:
        job, _ = store.create(make_job())
        read = store.get(job.id)
        moved = jobs.transition(read, jobs.DISPATCHING, now=T0, actor="worker", reason="go")
        assert _methods(requests.during(lambda: store.update(moved))) == ["PUT"]
        assert store.get(job.id).status == jobs.DISPATCHING

    def test_updates_in_a_row_after_a_create_are_one_request_each(
        self, store: TableJobStore, requests: Requests, make_job: MakeJob
    ) -> None:
        job, _ = store.create(make_job())
        for state in (jobs.DISPATCHING, jobs.RUNNING, jobs.VERIFYING):
            moved = jobs.transition(job, state, now=T0, actor="worker", reason=state)
            seen = requests.during(lambda moved=moved: store.update(moved))
            assert _methods(seen) == ["PUT"], state
            job = store.get(job.id)
            assert job.status == state

    def test_a_job_written_elsewhere_since_is_a_conflict_and_keeps_the_winner(
        self, azurite: Azurite, store: TableJobStore, requests: Requests, make_job: MakeJob
    ) -> None:
        job, _ = store.create(make_job())
        other = TableJobStore.from_connection_string(
            azurite.connection_string, table_prefix=store.table_names["jobs"][: -len("jobs")], retry_total=0
        )
        winner = other.update(jobs.note(other.get(job.id), "the other worker", now=T0))
        stale = jobs.note(job, "this worker, from what it remembered", now=T0)
        requests.seen.clear()
        with pytest.raises(ConcurrencyConflict):
            store.update(stale)
        seen = list(requests.seen)
        # The remembered ETag is refused (412), the read shows a newer version: a conflict, no write.
        assert _methods(seen) == ["PUT", "GET"]
        assert store.get(job.id) == winner
        # What it read then is remembered: the next compare-and-swap is one request again.
        fresh = jobs.note(store.get(job.id), "now from the stored version", now=T0)
        assert _methods(requests.during(lambda: store.update(fresh))) == ["PUT"]

    def test_a_store_that_never_saw_the_job_reads_it_first(
        self, azurite: Azurite, store: TableJobStore, requests: Requests, make_job: MakeJob
    ) -> None:
        writer = TableJobStore.from_connection_string(
            azurite.connection_string, table_prefix=store.table_names["jobs"][: -len("jobs")], retry_total=0
        )
        job, _ = writer.create(make_job())
        with pytest.raises(NotFound):
            store.get("job-never-made")  # the store's client exists (creating it checks the table once)
        moved = jobs.transition(job, jobs.DISPATCHING, now=T0, actor="worker", reason="go")
        assert _methods(requests.during(lambda: store.update(moved))) == ["GET", "PUT"]
        assert writer.get(job.id).status == jobs.DISPATCHING

    def test_jobs_found_by_a_query_are_written_in_one_request(
        self, store: TableJobStore, requests: Requests, make_job: MakeJob
    ) -> None:
        made = [store.create(make_job(f"q-{i}"))[0] for i in range(3)]
        TableJobStore.close(store)  # a new client, same store: what it remembers stays valid
        for job in store.get_many([j.id for j in made]).values():
            seen = requests.during(lambda job=job: store.update(jobs.note(job, "seen", now=T0)))
            assert _methods(seen) == ["PUT"]


class TestCampaignCompareAndSwap:
    def test_a_campaign_update_after_a_read_is_one_request(
        self, store: TableJobStore, requests: Requests
    ) -> None:
        store.create_campaign({"id": "camp-r", "version": 0})
        campaign = store.get_campaign("camp-r")
        saved = None

        def write() -> None:
            nonlocal saved
            saved = store.update_campaign({**campaign, "state": "running"})

        assert _methods(requests.during(write)) == ["PUT"]
        assert saved is not None and saved["version"] == 1
        assert _methods(requests.during(lambda: store.update_campaign({**saved, "state": "done"}))) == ["PUT"]
        with pytest.raises(ConcurrencyConflict):
            store.update_campaign({**campaign, "state": "stale"})
        assert store.get_campaign("camp-r")["state"] == "done"


class TestLeases:
    """A job's lease costs a read (holder and cooldown together), an insert or a compare-and-swap to take
    it, and one request to give it back when the same store took it."""

    def test_taking_a_new_vms_lease_after_its_facts_is_one_request(
        self, store: TableJobStore, requests: Requests
    ) -> None:
        store.lease_facts(VM2, "free-disk-space", T0, runs_since=T0)  # the store's first: reads its marker
        seen = requests.during(lambda: store.lease_facts(VM, "free-disk-space", T0, runs_since=T0))
        assert _methods(seen) == ["GET"]  # the lease entity alone: no scan of the jobs
        assert _methods(requests.during(lambda: store.acquire_lease(VM, "job-a", 600, T0))) == ["POST"]
        ended = T0 + timedelta(minutes=2)
        seen = requests.during(lambda: store.release_lease(VM, "job-a", ran=("free-disk-space", ended)))
        assert _methods(seen) == ["PATCH"]  # a conditional merge: the entity stays with the run's end
        assert store.lease_facts(VM, "free-disk-space", ended, runs_since=T0).last_run_ended_at == ended

    def test_an_existing_lease_is_taken_with_one_compare_and_swap(
        self, azurite: Azurite, store: TableJobStore, requests: Requests
    ) -> None:
        ended = T0 + timedelta(minutes=2)
        other = _same_tables(azurite, store)
        assert other.acquire_lease(VM, "job-a", 600, T0)
        other.release_lease(VM, "job-a", ran=("free-disk-space", ended))
        facts = store.lease_facts(VM, "free-disk-space", ended, runs_since=T0)
        assert facts.holder is None and facts.last_run_ended_at == ended
        assert _methods(requests.during(lambda: store.acquire_lease(VM, "job-b", 600, ended))) == ["PATCH"]
        assert other.lease_holder(VM, ended) == "job-b"

    def test_a_release_by_a_store_that_did_not_take_the_lease_reads_it_first(
        self, azurite: Azurite, store: TableJobStore, requests: Requests
    ) -> None:
        other = _same_tables(azurite, store)
        assert other.acquire_lease(VM, "job-a", 600, T0)
        store.lease_holder(VM2, T0)  # the store's client exists
        seen = requests.during(lambda: store.release_lease(VM, "job-a"))
        assert _methods(seen) == ["GET", "DELETE"]  # nothing recorded on it: it goes, as before
        assert other.lease_holder(VM, T0) is None

    def test_what_a_store_remembers_never_takes_a_lease_someone_else_holds(
        self, azurite: Azurite, store: TableJobStore, requests: Requests
    ) -> None:
        assert store.lease_facts(VM, "free-disk-space", T0, runs_since=T0).holder is None
        other = _same_tables(azurite, store)
        assert other.acquire_lease(VM, "job-a", 600, T0)  # after this store looked
        taken: list[bool] = []
        seen = requests.during(lambda: taken.append(store.acquire_lease(VM, "job-b", 600, T0)))
        assert taken == [False]
        # The insert conflicts; the read shows job-a, whose job (none here) says it still holds the VM.
        assert _methods(seen) == ["POST", "GET", "GET"]
        assert other.lease_holder(VM, T0) == "job-a"
        store.release_lease(VM, "job-b", ran=("free-disk-space", T0))  # job-b never had it
        assert store.lease_holder(VM, T0) == "job-a"

    def test_a_lease_whose_vm_ran_a_job_since_its_facts_were_read_is_not_taken(
        self, azurite: Azurite, store: TableJobStore
    ) -> None:
        # job-b's cooldown was judged on a VM with no run; then job-a took the lease, ran and released it.
        assert store.lease_facts(VM, "free-disk-space", T0, runs_since=T0).last_run_ended_at is None
        other = _same_tables(azurite, store)
        assert other.acquire_lease(VM, "job-a", 600, T0)
        ended = T0 + timedelta(minutes=1)
        other.release_lease(VM, "job-a", ran=("free-disk-space", ended))
        # The lease is free again, but job-b must judge its cooldown on job-a's run before taking it.
        assert store.acquire_lease(VM, "job-b", 600, ended) is False
        assert other.lease_holder(VM, ended) is None
        facts = store.lease_facts(VM, "free-disk-space", ended, runs_since=T0)
        assert facts.last_run_ended_at == ended
        assert store.acquire_lease(VM, "job-b", 600, ended)  # decided again on those facts: taken


def table_store_like(azurite: Azurite, store: TableJobStore, hook: Requests) -> TableJobStore:
    """Another process's store on the same tables, its requests counted by ``hook``."""
    return TableJobStore.from_connection_string(
        azurite.connection_string,
        table_prefix=store.table_names["jobs"][: -len("jobs")],
        retry_total=0,
        raw_request_hook=hook,
    )


def _same_tables(azurite: Azurite, store: TableJobStore) -> TableJobStore:
    """Another process's store on the same tables: it shares nothing in memory with ``store``."""
    return TableJobStore.from_connection_string(
        azurite.connection_string, table_prefix=store.table_names["jobs"][: -len("jobs")], retry_total=0
    )


class TestLeaseTags:
    """The job carries the lease's tag from the instance that took it to the one that releases it."""

    def test_a_release_elsewhere_with_the_tag_is_one_request(
        self, azurite: Azurite, store: TableJobStore, requests: Requests
    ) -> None:
        taker = _same_tables(azurite, store)
        assert taker.acquire_lease(VM, "job-a", 600, T0)
        tag = taker.lease_tag(VM)
        assert tag
        store.lease_holder(VM2, T0)  # the store's client exists
        ended = T0 + timedelta(minutes=1)
        seen = requests.during(
            lambda: store.release_lease(VM, "job-a", ran=("free-disk-space", ended), tag=tag)
        )
        assert _methods(seen) == ["PATCH"]
        facts = taker.lease_facts(VM, "free-disk-space", ended, runs_since=T0)
        assert facts.holder is None and facts.last_run_ended_at == ended

    def test_a_release_with_the_tag_settles_the_holders_pending_run(
        self, azurite: Azurite, store: TableJobStore, make_job: MakeJob
    ) -> None:
        taker = _same_tables(azurite, store)
        job, _ = taker.create(make_job("x"))
        assert taker.acquire_lease(VM, job.id, 600, T0, remediation="free-disk-space")
        tag = taker.lease_tag(VM)
        ended = T0 + timedelta(minutes=1)
        for state in (jobs.DISPATCHING, jobs.RUNNING, jobs.VERIFYING, jobs.SUCCEEDED):
            job = taker.update(jobs.transition(job, state, now=ended, actor="w", reason=state))
        store.release_lease(VM, job.id, ran=("free-disk-space", ended), tag=tag)
        assert store.delete_jobs(ended + timedelta(seconds=1)) == 1  # retention

        # The run is exact on the lease, not the bound its deleted job would count as.
        later = ended + timedelta(minutes=2)
        facts = _same_tables(azurite, store).lease_facts(VM, "free-disk-space", later, runs_since=T0)
        assert facts.holder is None and facts.last_run_ended_at == ended

    def test_a_stale_tag_never_frees_a_lease_someone_else_took_since(
        self, azurite: Azurite, store: TableJobStore, requests: Requests
    ) -> None:
        taker = _same_tables(azurite, store)
        assert taker.acquire_lease(VM, "job-a", 60, T0)
        tag = taker.lease_tag(VM)
        later = T0 + timedelta(minutes=5)
        assert _same_tables(azurite, store).acquire_lease(VM, "job-b", 600, later)  # job-a's lapsed
        store.lease_holder(VM2, T0)  # the store's client exists
        seen = requests.during(
            lambda: store.release_lease(VM, "job-a", ran=("free-disk-space", later), tag=tag)
        )
        assert _methods(seen) == ["PATCH", "GET", "PATCH"]  # refused (412), read, the run recorded
        facts = taker.lease_facts(VM, "free-disk-space", later, runs_since=T0)
        assert facts.holder == "job-b" and facts.last_run_ended_at == later

    def test_a_released_lease_without_a_run_is_swept_once_free(
        self, azurite: Azurite, store: TableJobStore
    ) -> None:
        taker = _same_tables(azurite, store)
        assert taker.acquire_lease(VM, "job-a", 600, T0)
        store.release_lease(VM, "job-a", tag=taker.lease_tag(VM))  # a dry run: nothing to record
        assert taker.lease_holder(VM, T0) is None
        assert store.sweep_leases(T0) == 1
        assert store.acquire_lease(VM, "job-b", 60, T0)


class TestLeaseLeftToItsEnd:
    """A job's end frees its VM: no lease request after its result, and the next job pays a job read
    only while the ended holder's bound can still matter."""

    def _world(self, tmp_path: Any, store: TableJobStore) -> Any:
        from tests.unit.test_runner import World

        world = World(tmp_path)
        world.store = world.runner.store = world.intake.store = store
        return world

    def test_a_managed_run_sends_no_lease_request_after_its_result(
        self, tmp_path: Any, store: TableJobStore, requests: Requests
    ) -> None:
        world = self._world(tmp_path, store)
        store.lease_facts(VM2, "free-disk-space", T0, runs_since=T0)  # the store's marker is read
        job = world.job(world.manual("free-disk-space", request_id="r-1"))

        seen = requests.during(world.drain)

        ended = store.get(job.id)
        assert ended.status == jobs.SUCCEEDED and ended.run.get("mode") != "action"
        leases = [method for method, table in seen if table.endswith("leases")]
        assert leases == ["GET", "POST"]  # the facts and the take: no release, no renewal
        result = max(
            i for i, (method, table) in enumerate(seen) if table.endswith("jobs") and method == "PUT"
        )
        assert not [r for r in seen[result + 1 :] if r[1].endswith("leases")]
        assert store.lease_holder(ended.target_key, world.clock.now()) is None

    def _ended_holder(self, store: TableJobStore, make_job: MakeJob, ttl: float = 600) -> tuple[str, Any]:
        """job-x took the VM for free-disk-space at T0 and ran; it ended a minute later, its lease kept."""
        job, _ = store.create(make_job("x"))
        assert store.acquire_lease(VM, job.id, ttl, T0, remediation="free-disk-space")
        for state in (jobs.DISPATCHING, jobs.RUNNING, jobs.VERIFYING):
            job = store.update(jobs.transition(store.get(job.id), state, now=T0, actor="w", reason=state))
        ended = T0 + timedelta(minutes=1)
        store.update(jobs.transition(job, jobs.SUCCEEDED, now=ended, actor="w", reason="done"))
        return job.id, ended

    def test_the_next_job_after_the_cooldown_window_pays_what_it_always_did(
        self, azurite: Azurite, store: TableJobStore, requests: Requests, make_job: MakeJob
    ) -> None:
        store.lease_facts(VM2, "free-disk-space", T0, runs_since=T0)  # the store's marker is made
        self._ended_holder(_same_tables(azurite, store), make_job)
        now = T0 + timedelta(hours=2)
        window = now - timedelta(minutes=60)

        seen = requests.during(lambda: store.lease_facts(VM, "free-disk-space", now, runs_since=window))
        assert seen == [
            ("GET", store.table_names["leases"])
        ]  # the lapsed holder's bound is out of the window
        taken = requests.during(
            lambda: store.acquire_lease(VM, "job-y", 600, now, remediation="free-disk-space")
        )
        assert _methods(taken) == ["PATCH"]

    def test_the_next_job_inside_an_ended_holders_lease_pays_one_job_read(
        self, azurite: Azurite, store: TableJobStore, requests: Requests, make_job: MakeJob
    ) -> None:
        store.lease_facts(VM2, "restart-service", T0, runs_since=T0)  # the store's marker is made
        holder, ended = self._ended_holder(_same_tables(azurite, store), make_job)
        now = ended + timedelta(seconds=30)  # job-x's lease has not expired

        facts: list[Any] = []
        seen = requests.during(
            lambda: facts.append(store.lease_facts(VM, "restart-service", now, runs_since=now))
        )
        assert seen == [("GET", store.table_names["leases"]), ("GET", store.table_names["jobs"])]
        assert facts[0].holder is None
        taken = requests.during(
            lambda: store.acquire_lease(VM, "job-y", 600, now, remediation="restart-service")
        )
        assert _methods(taken) == ["PATCH"]  # the holder's end is known: no read again
        # For its own remediation the holder's run is read once, then folded into the record by a take.
        cooldown = now - timedelta(minutes=60)
        other = _same_tables(azurite, store)
        assert other.lease_facts(VM, "free-disk-space", now, runs_since=cooldown).last_run_ended_at == ended
        assert holder != "job-y"

    def test_jobs_waiting_for_a_live_holder_share_its_read_for_a_poll_interval(
        self,
        azurite: Azurite,
        store: TableJobStore,
        requests: Requests,
        make_job: MakeJob,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        from autoremediation.store import table_lease_jobs

        clock = {"now": 1000.0}
        monkeypatch.setattr(table_lease_jobs.time, "monotonic", lambda: clock["now"])
        store.lease_facts(VM2, "free-disk-space", T0, runs_since=T0)  # the store's marker is made
        holder, _ = store.create(make_job("x"))
        assert _same_tables(azurite, store).acquire_lease(
            VM, holder.id, 600, T0, remediation="free-disk-space"
        )
        now = T0 + timedelta(seconds=10)
        window = now - timedelta(minutes=60)

        def facts() -> list[tuple[str, str]]:
            return requests.during(lambda: store.lease_facts(VM, "free-disk-space", now, runs_since=window))

        assert [table for _, table in facts()] == [store.table_names["leases"], store.table_names["jobs"]]
        # Another job waiting for the VM, and the sweep, within the poll interval: the lease alone.
        assert facts() == [("GET", store.table_names["leases"])]
        assert requests.during(lambda: store.lease_holder(VM, now)) == [("GET", store.table_names["leases"])]
        # Later, the holder's job is read again: its end is seen at most an interval late.
        store.update(jobs.transition(holder, jobs.CANCELLED, now=now, actor="t", reason="x"))
        assert store.lease_holder(VM, now) == holder.id
        clock["now"] += table_lease_jobs.LIVE_REMEMBERED_SECONDS
        assert store.lease_holder(VM, now) is None

    def test_a_take_folds_the_pending_run_so_later_readers_read_no_job(
        self, azurite: Azurite, store: TableJobStore, requests: Requests, make_job: MakeJob
    ) -> None:
        store.lease_facts(VM2, "free-disk-space", T0, runs_since=T0)  # the store's marker is made
        _, ended = self._ended_holder(_same_tables(azurite, store), make_job)
        now = ended + timedelta(seconds=30)
        window = now - timedelta(minutes=60)
        assert store.lease_facts(VM, "free-disk-space", now, runs_since=window).last_run_ended_at == ended
        assert store.acquire_lease(VM, "job-y", 600, now, remediation="restart-service")  # folds job-x's
        counted = Requests()
        fresh = table_store_like(azurite, store, counted)
        with pytest.raises(NotFound):
            fresh.get("job-never-made")  # the store's clients exist (creating one checks its table once)
        fresh.lease_facts(VM2, "free-disk-space", T0, runs_since=T0)
        facts: list[Any] = []
        seen = counted.during(
            lambda: facts.append(fresh.lease_facts(VM, "free-disk-space", now, runs_since=window))
        )
        # One read of the lease, and one of job-y's (the live holder, which no job backs here): none of
        # job-x, whose run the take recorded.
        assert seen == [("GET", store.table_names["leases"]), ("GET", store.table_names["jobs"])]
        assert facts[0].last_run_ended_at == ended and facts[0].holder == "job-y"

    def test_an_explicit_release_records_the_run_so_later_readers_read_no_job(
        self, azurite: Azurite, store: TableJobStore, requests: Requests, make_job: MakeJob
    ) -> None:
        store.lease_facts(VM2, "free-disk-space", T0, runs_since=T0)  # the store's marker is made
        taker = _same_tables(azurite, store)
        holder, ended = self._ended_holder(taker, make_job)
        taker.release_lease(VM, holder, ran=("free-disk-space", ended))
        now = ended + timedelta(seconds=30)

        facts: list[Any] = []
        seen = requests.during(
            lambda: facts.append(store.lease_facts(VM, "free-disk-space", now, runs_since=T0))
        )
        assert _methods(seen) == ["GET"]
        assert facts[0].holder is None and facts[0].last_run_ended_at == ended

    def test_a_lease_whose_vm_ran_and_ended_since_its_facts_were_read_is_not_taken(
        self, azurite: Azurite, store: TableJobStore, make_job: MakeJob
    ) -> None:
        # job-y's cooldown was judged on a VM with no run; then job-x took it, ran and ended (no release).
        assert store.lease_facts(VM, "free-disk-space", T0, runs_since=T0).last_run_ended_at is None
        _, ended = self._ended_holder(_same_tables(azurite, store), make_job)
        now = ended + timedelta(seconds=1)

        assert store.acquire_lease(VM, "job-y", 600, now, remediation="free-disk-space") is False
        facts = store.lease_facts(VM, "free-disk-space", now, runs_since=T0)
        assert facts.holder is None and facts.last_run_ended_at == ended
        assert store.acquire_lease(VM, "job-y", 600, now, remediation="free-disk-space")
