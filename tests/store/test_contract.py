"""The JobStore contract: every adapter (SQLite, Table Storage on Azurite) must pass all of it."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from autoremediation import jobs
from autoremediation.errors import ConcurrencyConflict, InvalidInput, NotFound
from autoremediation.ports import JobStore, LeaseFacts

from .conftest import T0, VM, VM2, MakeJob


class TestCreateAndGet:
    def test_create_then_get_round_trips_the_whole_job(self, store: JobStore, make_job: MakeJob) -> None:
        job = make_job(path=(jobs.DISPATCHING,), alert_id="alert/1", campaign_id="c-1")
        job = replace(job, run={"name": "r1", "output": "ünïcode ✓ \U0001f680"}, notes=("a note",))
        stored, created = store.create(job)
        assert created and stored == job
        assert store.get(job.id) == job

    def test_second_create_with_same_id_returns_the_existing_job(
        self, store: JobStore, make_job: MakeJob
    ) -> None:
        first = make_job()
        store.create(first)
        duplicate = replace(make_job(at=T0 + timedelta(hours=1)), reason="a second delivery")
        assert duplicate.id == first.id
        stored, created = store.create(duplicate)
        assert not created
        assert stored == first
        assert store.get(first.id).reason == first.reason

    def test_create_many_stores_each_job_in_order_and_keeps_an_existing_one(
        self, store: JobStore, make_job: MakeJob
    ) -> None:
        existing = make_job("c-3", reason="made earlier")
        store.create(existing)
        batch = [make_job(f"c-{i}", campaign_id="c-1") for i in range(8)]
        results = store.create_many(batch)
        assert [job.id for job, _ in results] == [job.id for job in batch]
        assert [created for _, created in results] == [i != 3 for i in range(8)]
        assert results[3][0] == existing  # returned as stored, not replaced
        assert store.get(existing.id) == existing
        assert {job.id for job in store.list(campaign_id="c-1")} == {j.id for j in batch} - {existing.id}
        for job, created in results:
            if created:
                assert store.get(job.id) == job

    def test_create_many_refuses_an_unsafe_id_before_writing_any(
        self, store: JobStore, make_job: MakeJob
    ) -> None:
        good = make_job("good")
        with pytest.raises(InvalidInput, match="not valid"):
            store.create_many([good, replace(make_job("bad"), id="job/with?slash")])
        with pytest.raises(NotFound):
            store.get(good.id)

    def test_get_unknown_raises_not_found(self, store: JobStore) -> None:
        with pytest.raises(NotFound, match="job-doesnotexist"):
            store.get("job-doesnotexist")

    def test_get_with_an_id_no_job_can_have_is_not_found(self, store: JobStore) -> None:
        with pytest.raises(NotFound):
            store.get("../../etc/passwd")

    def test_create_with_an_unsafe_id_is_refused(self, store: JobStore, make_job: MakeJob) -> None:
        with pytest.raises(InvalidInput, match="not valid"):
            store.create(replace(make_job(), id="job/with?slash"))

    def test_create_with_a_bad_timestamp_is_refused(self, store: JobStore, make_job: MakeJob) -> None:
        with pytest.raises(InvalidInput, match="created_at"):
            store.create(replace(make_job(), created_at="yesterday"))


class TestUpdate:
    def test_update_bumps_the_version(self, store: JobStore, make_job: MakeJob) -> None:
        job, _ = store.create(make_job())
        moved = jobs.transition(job, jobs.DISPATCHING, now=T0, actor="worker", reason="guards passed")
        saved = store.update(moved)
        assert saved.version == job.version + 1
        assert store.get(job.id) == saved
        assert saved.status == jobs.DISPATCHING

    def test_stale_version_conflicts_and_overwrites_nothing(self, store: JobStore, make_job: MakeJob) -> None:
        job, _ = store.create(make_job())
        winner = store.update(jobs.note(job, "first writer", now=T0))
        loser = jobs.note(job, "second writer, stale", now=T0)
        with pytest.raises(ConcurrencyConflict, match=job.id):
            store.update(loser)
        assert store.get(job.id) == winner
        assert store.get(job.id).notes == winner.notes

    def test_update_of_unknown_job_is_not_found(self, store: JobStore, make_job: MakeJob) -> None:
        with pytest.raises(NotFound):
            store.update(make_job("never-created"))

    def test_large_output_is_kept_as_a_bounded_tail(self, store: JobStore, make_job: MakeJob) -> None:
        job, _ = store.create(make_job())
        output = "".join(f"line {i:07d}\n" for i in range(80_000)) + "REMEDIATION_RESULT {}\n"
        saved = store.update(replace(job, run={"output": output, "exitCode": 0}))
        stored = store.get(job.id)
        assert stored == saved
        assert stored.run["exitCode"] == 0
        assert stored.run["output"].endswith("REMEDIATION_RESULT {}\n")
        assert stored.run["output"].startswith("[truncated ")
        assert len(stored.run["output"]) < len(output)

    def test_a_job_too_large_even_with_short_tails_is_refused(
        self, store: JobStore, make_job: MakeJob
    ) -> None:
        job, _ = store.create(make_job())
        with pytest.raises(InvalidInput, match="too large"):
            store.update(replace(job, notes=tuple("n" * 1000 for _ in range(500))))
        assert store.get(job.id) == job

    def test_output_under_the_bound_is_not_cut(self, store: JobStore, make_job: MakeJob) -> None:
        # 100,000 characters: beyond one Table string property (64 KiB), within the job's bound.
        job, _ = store.create(make_job())
        output = "x" * 100_000
        store.update(replace(job, run={"output": output}))
        assert store.get(job.id).run["output"] == output


class TestList:
    @pytest.fixture
    def seeded(self, store: JobStore, make_job: MakeJob) -> dict[str, jobs.Job]:
        made = {
            "a": make_job("a", at=T0, path=(jobs.DISPATCHING, jobs.RUNNING), alert_id="alert-1"),
            "b": make_job("b", at=T0 + timedelta(minutes=1), target=VM2, alert_id="alert-1"),
            "c": make_job("c", at=T0 + timedelta(minutes=2), remediation="restore-management-access"),
            "d": make_job("d", at=T0 + timedelta(minutes=3), path=(jobs.SKIPPED,), campaign_id="camp-1"),
            "e": make_job("e", at=T0 + timedelta(minutes=4), target=VM2, campaign_id="camp-1"),
        }
        for job in made.values():
            store.create(job)
        return made

    @staticmethod
    def names(found: list[jobs.Job], seeded: dict[str, jobs.Job]) -> list[str]:
        by_id = {job.id: name for name, job in seeded.items()}
        return [by_id[job.id] for job in found]

    def test_everything_newest_first(self, store: JobStore, seeded: dict[str, jobs.Job]) -> None:
        assert self.names(store.list(), seeded) == ["e", "d", "c", "b", "a"]

    def test_limit(self, store: JobStore, seeded: dict[str, jobs.Job]) -> None:
        assert self.names(store.list(limit=2), seeded) == ["e", "d"]
        assert store.list(limit=0) == []

    def test_target_is_matched_case_insensitively(self, store: JobStore, seeded: dict[str, jobs.Job]) -> None:
        assert self.names(store.list(target=VM2.upper() + "/"), seeded) == ["e", "b"]
        assert self.names(store.list(target=f"  {VM.lower()}"), seeded) == ["d", "c", "a"]

    def test_status_single_and_several(self, store: JobStore, seeded: dict[str, jobs.Job]) -> None:
        assert self.names(store.list(status=jobs.RUNNING), seeded) == ["a"]
        assert self.names(store.list(status=[jobs.SKIPPED, jobs.RUNNING]), seeded) == ["d", "a"]
        assert store.list(status=[]) == []
        assert store.list(status="no-such-status") == []

    def test_remediation_alert_and_campaign(self, store: JobStore, seeded: dict[str, jobs.Job]) -> None:
        assert self.names(store.list(remediation="restore-management-access"), seeded) == ["c"]
        assert self.names(store.list(alert_id="alert-1"), seeded) == ["b", "a"]
        assert self.names(store.list(campaign_id="camp-1"), seeded) == ["e", "d"]

    def test_since_includes_the_boundary(self, store: JobStore, seeded: dict[str, jobs.Job]) -> None:
        assert self.names(store.list(since=T0 + timedelta(minutes=3)), seeded) == ["e", "d"]

    def test_filters_combine(self, store: JobStore, seeded: dict[str, jobs.Job]) -> None:
        found = store.list(target=VM, remediation="free-disk-space", status=[jobs.PLANNED, jobs.SKIPPED])
        assert self.names(found, seeded) == ["d"]
        assert self.names(store.list(target=VM2, campaign_id="camp-1", since=T0, limit=5), seeded) == ["e"]
        assert self.names(store.list(target=VM, alert_id="alert-1", status=jobs.RUNNING), seeded) == ["a"]
        assert store.list(target=VM2, alert_id="alert-1", status=jobs.RUNNING) == []
        assert self.names(store.list(remediation="free-disk-space", limit=3), seeded) == ["e", "d", "b"]

    def test_filters_see_updates(self, store: JobStore, seeded: dict[str, jobs.Job]) -> None:
        b = store.get(seeded["b"].id)
        store.update(jobs.transition(b, jobs.CANCELLED, now=T0, actor="alert", reason="resolved"))
        assert self.names(store.list(status=jobs.CANCELLED), seeded) == ["b"]
        assert self.names(store.list(status=jobs.PLANNED), seeded) == ["e", "c"]

    def test_values_with_quotes_are_data_not_query(self, store: JobStore, make_job: MakeJob) -> None:
        store.create(make_job("q", alert_id="it's ' or 1 eq 1 or '"))
        store.create(make_job("r", alert_id="other"))
        assert [j.alert_id for j in store.list(alert_id="it's ' or 1 eq 1 or '")] == ["it's ' or 1 eq 1 or '"]
        assert store.list(alert_id="' or ''='") == []

    def test_timestamps_with_other_offsets_sort_by_instant(self, store: JobStore, make_job: MakeJob) -> None:
        early = make_job("early", at=T0)
        # 12:30+02:00 is 10:30 UTC: earlier than `early` though its text sorts later.
        late_text = replace(make_job("tz"), created_at="2026-03-01T12:30:00+02:00")
        store.create(early)
        store.create(late_text)
        assert [j.id for j in store.list()] == [early.id, late_text.id]
        assert [j.id for j in store.list(since=T0 - timedelta(minutes=1))] == [early.id]


class TestLastOutcome:
    def test_picks_the_latest_job_that_ran_a_script(self, store: JobStore, make_job: MakeJob) -> None:
        done = (jobs.DISPATCHING, jobs.RUNNING, jobs.VERIFYING, jobs.SUCCEEDED)
        store.create(make_job("old", at=T0, path=done))
        newer = make_job("newer", at=T0 + timedelta(hours=1), path=(jobs.DISPATCHING, jobs.FAILED))
        store.create(newer)
        store.create(make_job("skipped", at=T0 + timedelta(hours=2), path=(jobs.SKIPPED,)))
        store.create(make_job("planned", at=T0 + timedelta(hours=3)))
        store.create(make_job("other-vm", at=T0 + timedelta(hours=4), target=VM2, path=done))
        store.create(
            make_job(
                "other-rem", at=T0 + timedelta(hours=5), remediation="restore-management-access", path=done
            )
        )
        found = store.last_outcome(VM.upper(), "free-disk-space")
        assert found is not None and found.id == newer.id

    def test_a_job_cancelled_while_running_still_counts(self, store: JobStore, make_job: MakeJob) -> None:
        store.create(make_job("ran", at=T0, path=(jobs.DISPATCHING, jobs.RUNNING, jobs.CANCELLED)))
        found = store.last_outcome(VM, "free-disk-space")
        assert found is not None and found.status == jobs.CANCELLED

    def test_counts_a_job_once_it_is_dispatched(self, store: JobStore, make_job: MakeJob) -> None:
        job, _ = store.create(make_job("later"))
        assert store.last_outcome(VM, "free-disk-space") is None
        store.update(jobs.transition(job, jobs.DISPATCHING, now=T0, actor="worker", reason="go"))
        found = store.last_outcome(VM, "free-disk-space")
        assert found is not None and found.id == job.id

    def test_none_when_nothing_ran(self, store: JobStore, make_job: MakeJob) -> None:
        store.create(make_job("skipped", path=(jobs.SKIPPED,)))
        assert store.last_outcome(VM, "free-disk-space") is None

    def test_a_dry_run_never_counts_so_the_real_run_is_not_held_by_the_cooldown(
        self, store: JobStore, make_job: MakeJob
    ) -> None:
        real = make_job("real", at=T0, path=(jobs.DISPATCHING, jobs.RUNNING, jobs.VERIFYING, jobs.FAILED))
        store.create(real)
        dry = make_job(
            "dry",
            at=T0 + timedelta(minutes=5),
            path=(jobs.DISPATCHING, jobs.RUNNING, jobs.VERIFYING, jobs.SUCCEEDED),
            dry_run=True,
        )
        store.create(dry)
        found = store.last_outcome(VM, "free-disk-space")
        assert found is not None and found.id == real.id

    def test_a_refused_run_never_counts_so_a_bogus_alert_does_not_hold_the_real_fix(
        self, store: JobStore, make_job: MakeJob
    ) -> None:
        real = make_job("real", at=T0, path=(jobs.DISPATCHING, jobs.RUNNING, jobs.VERIFYING, jobs.SUCCEEDED))
        store.create(real)
        refused = make_job(
            "refused",
            at=T0 + timedelta(minutes=5),
            path=(jobs.DISPATCHING, jobs.RUNNING, jobs.VERIFYING, jobs.FAILED),
        )
        refused = replace(
            refused, outcome={"exitCode": 2, "result": {"status": "error", "reason": "no mount"}}
        )
        store.create(refused)
        found = store.last_outcome(VM, "free-disk-space")
        assert found is not None and found.id == real.id
        broken = replace(
            make_job("broken", at=T0 + timedelta(minutes=9), path=(jobs.DISPATCHING, jobs.FAILED))
        )
        store.create(replace(broken, outcome={"exitCode": 1, "result": {"status": "error"}}))
        found = store.last_outcome(VM, "free-disk-space")
        assert found is not None and found.id == broken.id  # a run that tried and failed does count

    def test_a_dry_run_alone_is_no_outcome(self, store: JobStore, make_job: MakeJob) -> None:
        job, _ = store.create(make_job("dry-only", dry_run=True))
        store.update(jobs.transition(job, jobs.DISPATCHING, now=T0, actor="worker", reason="go"))
        assert store.last_outcome(VM, "free-disk-space") is None


class TestRetention:
    def test_deletes_only_terminal_jobs_updated_before_the_cutoff(
        self, store: JobStore, make_job: MakeJob
    ) -> None:
        old_done = make_job("old-done", at=T0, path=(jobs.SKIPPED,))
        old_running = make_job("old-running", at=T0, path=(jobs.DISPATCHING, jobs.RUNNING))
        new_done = make_job("new-done", at=T0 + timedelta(days=10), path=(jobs.SKIPPED,))
        for job in (old_done, old_running, new_done):
            store.create(job)
        assert store.delete_jobs(T0 + timedelta(days=1)) == 1
        with pytest.raises(NotFound):
            store.get(old_done.id)
        assert store.get(old_running.id).status == jobs.RUNNING
        assert store.get(new_done.id).status == jobs.SKIPPED
        assert store.delete_jobs(T0 + timedelta(days=1)) == 0


class TestLeases:
    @pytest.mark.parametrize("ttl", [0, -1, float("nan")])
    def test_a_lease_without_a_length_is_refused_and_taken_by_nobody(
        self, store: JobStore, ttl: float
    ) -> None:
        with pytest.raises(InvalidInput, match="must be more than 0 seconds"):
            store.acquire_lease(VM, "worker-a", ttl, T0)
        assert store.lease_holder(VM, T0) is None

    def test_exclusive_while_held(self, store: JobStore) -> None:
        assert store.acquire_lease(VM, "worker-a", 60, T0)
        assert not store.acquire_lease(VM, "worker-b", 60, T0 + timedelta(seconds=59))
        assert store.lease_holder(VM, T0 + timedelta(seconds=30)) == "worker-a"

    def test_renewable_by_the_holder(self, store: JobStore) -> None:
        assert store.acquire_lease(VM, "worker-a", 60, T0)
        assert store.acquire_lease(VM, "worker-a", 60, T0 + timedelta(seconds=50))
        # The renewal moved the expiry: at 100 s the first grant would have ended.
        assert not store.acquire_lease(VM, "worker-b", 60, T0 + timedelta(seconds=100))
        assert store.lease_holder(VM, T0 + timedelta(seconds=100)) == "worker-a"

    def test_taken_over_after_expiry(self, store: JobStore) -> None:
        assert store.acquire_lease(VM, "worker-a", 60, T0)
        assert store.lease_holder(VM, T0 + timedelta(seconds=60)) is None
        assert store.acquire_lease(VM, "worker-b", 60, T0 + timedelta(seconds=60))
        assert store.lease_holder(VM, T0 + timedelta(seconds=61)) == "worker-b"
        assert not store.acquire_lease(VM, "worker-a", 60, T0 + timedelta(seconds=61))

    def test_release_by_holder_frees_it(self, store: JobStore) -> None:
        assert store.acquire_lease(VM, "worker-a", 60, T0)
        store.release_lease(VM, "worker-a")
        assert store.lease_holder(VM, T0) is None
        assert store.acquire_lease(VM, "worker-b", 60, T0)

    def test_release_by_non_holder_is_a_no_op(self, store: JobStore) -> None:
        assert store.acquire_lease(VM, "worker-a", 60, T0)
        store.release_lease(VM, "worker-b")
        store.release_lease(VM2, "worker-b")
        assert store.lease_holder(VM, T0) == "worker-a"
        assert not store.acquire_lease(VM, "worker-b", 60, T0)

    def test_leases_are_per_key(self, store: JobStore) -> None:
        assert store.acquire_lease(VM, "worker-a", 60, T0)
        assert store.acquire_lease(VM2, "worker-b", 60, T0)
        assert store.lease_holder(VM2, T0) == "worker-b"

    def test_sweep_deletes_expired_leases_only(self, store: JobStore) -> None:
        assert store.acquire_lease("k1", "w", 10, T0)
        assert store.acquire_lease("k2", "w", 20, T0)
        assert store.acquire_lease("k3", "w", 300, T0)
        assert store.sweep_leases(T0 + timedelta(seconds=30)) == 2
        assert store.sweep_leases(T0 + timedelta(seconds=30)) == 0
        assert store.lease_holder("k3", T0 + timedelta(seconds=30)) == "w"

    def test_bad_lease_arguments_are_refused(self, store: JobStore) -> None:
        with pytest.raises(InvalidInput):
            store.acquire_lease("", "w", 60, T0)
        with pytest.raises(InvalidInput):
            store.acquire_lease(VM, "w", 0, T0)


class TestLeaseFacts:
    """One read before the lease is taken: who holds it, and when the remediation last ran on the VM."""

    def test_the_holder_while_held_and_none_when_free_or_expired(self, store: JobStore) -> None:
        assert store.lease_facts(VM, "free-disk-space", T0, runs_since=T0).holder is None
        assert store.acquire_lease(VM, "job-a", 60, T0)
        assert store.lease_facts(VM, "free-disk-space", T0, runs_since=T0).holder == "job-a"
        later = T0 + timedelta(seconds=60)
        assert store.lease_facts(VM, "free-disk-space", later, runs_since=later).holder is None
        store.release_lease(VM, "job-a")
        assert store.lease_facts(VM, "free-disk-space", T0, runs_since=T0).holder is None

    def test_a_released_run_is_what_the_cooldown_sees_per_remediation_and_vm(self, store: JobStore) -> None:
        ended = T0 + timedelta(minutes=3)
        assert store.acquire_lease(VM, "job-a", 600, T0)
        store.release_lease(VM, "job-a", ran=("free-disk-space", ended))
        facts = store.lease_facts(VM, "free-disk-space", ended, runs_since=T0)
        assert facts == LeaseFacts(holder=None, last_run_ended_at=ended)
        assert store.lease_facts(VM, "restart-service", ended, runs_since=T0).last_run_ended_at is None
        assert store.lease_facts(VM2, "free-disk-space", ended, runs_since=T0).last_run_ended_at is None
        # The next job takes the lease and keeps the record; releasing it without a run keeps it too.
        assert store.acquire_lease(VM, "job-b", 600, ended)
        assert store.lease_facts(VM, "free-disk-space", ended, runs_since=T0).last_run_ended_at == ended
        store.release_lease(VM, "job-b")
        assert store.sweep_leases(ended + timedelta(days=1)) == 0
        assert store.lease_facts(VM, "free-disk-space", ended, runs_since=T0).last_run_ended_at == ended

    def test_a_run_is_recorded_even_when_its_lease_was_taken_over(self, store: JobStore) -> None:
        assert store.acquire_lease(VM, "job-a", 60, T0)
        later = T0 + timedelta(seconds=90)
        assert store.acquire_lease(VM, "job-b", 600, later)  # job-a's lease lapsed
        store.release_lease(VM, "job-a", ran=("free-disk-space", later))
        facts = store.lease_facts(VM, "free-disk-space", later, runs_since=T0)
        assert facts == LeaseFacts(holder="job-b", last_run_ended_at=later)
        assert not store.acquire_lease(VM, "job-c", 60, later)

    def test_a_run_is_recorded_with_no_lease_left_and_an_older_one_never_wins(self, store: JobStore) -> None:
        ended = T0 + timedelta(minutes=5)
        store.release_lease(VM, "job-a", ran=("free-disk-space", ended))
        store.release_lease(VM, "job-old", ran=("free-disk-space", ended - timedelta(minutes=4)))
        assert store.lease_facts(VM, "free-disk-space", ended, runs_since=T0).last_run_ended_at == ended
        assert store.acquire_lease(VM, "job-b", 60, ended)

    def test_jobs_that_ran_before_runs_were_recorded_still_count(
        self, store: JobStore, make_job: MakeJob
    ) -> None:
        ran = make_job("legacy", at=T0, path=(jobs.DISPATCHING, jobs.RUNNING, jobs.VERIFYING, jobs.SUCCEEDED))
        store.create(ran)
        facts = store.lease_facts(VM, "free-disk-space", T0, runs_since=T0 - timedelta(hours=1))
        assert facts.last_run_ended_at == datetime.fromisoformat(ran.updated_at)


class TestCampaigns:
    def test_create_get_and_cas(self, store: JobStore) -> None:
        campaign = {"id": "camp-1", "remediation": "free-disk-space", "targets": [VM, VM2], "version": 0}
        assert store.create_campaign(campaign)
        assert not store.create_campaign({**campaign, "remediation": "other"})
        assert store.get_campaign("camp-1") == campaign
        saved = store.update_campaign({**campaign, "state": "running"})
        assert saved["version"] == 1 and saved["state"] == "running"
        with pytest.raises(ConcurrencyConflict, match="camp-1"):
            store.update_campaign({**campaign, "state": "stale writer"})
        assert store.get_campaign("camp-1") == saved

    def test_unknown_campaign_is_not_found(self, store: JobStore) -> None:
        with pytest.raises(NotFound):
            store.get_campaign("nope")
        with pytest.raises(NotFound):
            store.update_campaign({"id": "nope", "version": 0})

    def test_a_campaign_needs_an_id(self, store: JobStore) -> None:
        with pytest.raises(InvalidInput, match="campaign id"):
            store.create_campaign({"name": "no id"})


class TestGetMany:
    def test_returns_the_jobs_that_exist_by_id_in_one_call_for_many(
        self, store: JobStore, make_job: MakeJob
    ) -> None:
        made = [store.create(make_job(f"key-many-{i}"))[0] for i in range(33)]  # more than one query's worth
        wanted = [j.id for j in made[::2]] + ["job-000000000000000000000000", "not a job id"]

        found = store.get_many(wanted)

        assert sorted(found) == sorted(j.id for j in made[::2])
        assert all(found[j.id] == store.get(j.id) for j in made[::2])

    def test_nothing_asked_is_nothing_found(self, store: JobStore) -> None:
        assert store.get_many([]) == {}
