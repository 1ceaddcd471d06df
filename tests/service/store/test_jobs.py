"""The job queue: one active job of a kind per experiment, leases that one worker holds, and the sweep."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from service.store import LeaseOutcome, RecordNotFound, Store
from service.store.models import Job, JobState, utcnow
from service.store.session import transaction
from tests.service.store.conftest import new_experiment


def test_jobs_are_found_by_id_within_the_project(store: Store) -> None:
    exp_id = new_experiment(store)
    job = store.create_job("refit", exp_id, {"laws": ["bimix"]})
    assert store.get_job(job.id, "default").params == {"laws": ["bimix"]}
    for project in (None, "other"):
        with pytest.raises(RecordNotFound) as missing:
            store.get_job("job_nope" if project is None else job.id, project)
        assert (missing.value.code, missing.value.field) == ("not_found", "job_id")


def test_an_exclusive_kind_is_enqueued_once_until_it_finishes(store: Store) -> None:
    exp_id = new_experiment(store)
    first, created = store.enqueue_exclusive(exp_id, "refit", {}, ["refit", "reoptimize"])
    again, created_again = store.enqueue_exclusive(exp_id, "reoptimize", {}, ["refit", "reoptimize"])
    assert created and not created_again and again is not None and first is not None and again.id == first.id
    store.finish_job(first.id, {"ok": True})
    assert store.get_job(first.id).state == JobState.succeeded
    later, created_later = store.enqueue_exclusive(exp_id, "reoptimize", {}, ["refit", "reoptimize"])
    assert created_later and later is not None and later.id != first.id


def test_one_worker_holds_a_lease_until_it_lapses(store: Store) -> None:
    job = store.create_job("refit", new_experiment(store), {})
    assert store.lease_job(job.id, "a", 60, 3) == (LeaseOutcome.acquired, 0.0)
    outcome, left = store.lease_job(job.id, "b", 60, 3)
    assert outcome == LeaseOutcome.held and 0 < left <= 60
    assert not store.renew_lease(job.id, "b", 60)
    with transaction(store.factory) as s:
        s.execute(update(Job).where(Job.id == job.id).values(lease_expires_at=utcnow() - timedelta(seconds=1)))
    assert store.lease_job(job.id, "b", 60, 3)[0] == LeaseOutcome.acquired
    assert not store.renew_lease(job.id, "a", 60) and store.renew_lease(job.id, "b", 60)
    store.finish_job(job.id, error="boom")
    assert store.lease_job(job.id, "c", 60, 3)[0] == LeaseOutcome.finished


def test_the_sweep_republishes_lost_jobs_and_fails_those_out_of_attempts(store: Store) -> None:
    exp_id = new_experiment(store)
    unsent, lapsed, dying, fresh = (store.create_job("refit", exp_id, {}) for _ in range(4))
    past = utcnow() - timedelta(minutes=10)
    with transaction(store.factory) as s:
        s.execute(update(Job).where(Job.id.in_([unsent.id, lapsed.id, dying.id])).values(created_at=past))
    for job, attempts in ((lapsed, 1), (dying, 3)):
        assert store.start_job(job.id) is not None
        store.lease_job(job.id, "w", 60, 5)
        with transaction(store.factory) as s:
            s.execute(update(Job).where(Job.id == job.id).values(attempts=attempts, lease_expires_at=past))
    store.mark_published(fresh.id)
    to_publish, failed = store.sweep_jobs(["refit"], unpublished_grace_s=60, republish_after_s=300,
                                          max_attempts=3)
    assert sorted(to_publish) == sorted([("refit", unsent.id), ("refit", lapsed.id)])
    assert failed == [dying.id]
    assert store.get_job(dying.id).state == JobState.failed
    assert store.get_job(lapsed.id).state == JobState.queued
    assert store.sweep_jobs(["refit"], 60, 300, 3) == ([], [])
