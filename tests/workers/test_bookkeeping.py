"""Leases, sweeps, policies and the refit guard, on the store itself (SQLite and the real PostgreSQL).

These are the database halves of the worker guarantees; ``test_celery.py`` checks them end to end.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select, update

from migrations import upgrade
from service.db import make_engine, make_session_factory
from service.operations import reoptimize
from service.operations.kinds import REFIT_KINDS
from service.schemas import ExperimentCreate, RunReport
from service.settings import Settings
from service.store import PolicyState, Store
from service.store.models import Fit, Job, ReoptPolicy, Run, new_id, utcnow
from service.store.session import transaction
from tests.service.helpers import DOMAINS, spec, synthetic_losses
from workers import stale


@pytest.fixture
def store(database_url: str) -> Store:
    upgrade(database_url)
    engine = make_engine(database_url)
    return Store(engine, make_session_factory(engine))


def _experiment(store: Store, n_runs: int = 0, name: str = "exp") -> str:
    exp = store.create_experiment(ExperimentCreate(**spec(name)))
    if n_runs:
        _report(store, exp.id, n_runs)
    return exp.id


def _report(store: Store, exp_id: str, n: int, seed: int = 0, state: str = "completed") -> None:
    rng = np.random.default_rng(seed)
    reports = []
    for _ in range(n):
        w = rng.dirichlet(np.ones(len(DOMAINS)))
        reports.append(RunReport(mixture=dict(zip(DOMAINS, w.tolist(), strict=True)),
                                 fidelity={"params": 1e6}, state=state,
                                 metrics=synthetic_losses(w) if state == "completed" else {}))
    store.report_batch(exp_id, reports)


def _set_job(store: Store, job_id: str, **values: Any) -> None:
    with transaction(store.factory) as s:
        s.execute(update(Job).where(Job.id == job_id).values(**values))


class Recorder:
    """A dispatcher that records what it was asked to send; ``down`` makes publishing fail."""

    def __init__(self, down: bool = False) -> None:
        self.sent: list[tuple[str, str]] = []
        self.down = down
        self.lock = threading.Lock()

    def submit(self, kind: str, job_id: str, project: str = "") -> None:
        with self.lock:
            self.sent.append((kind, job_id))

    def publish(self, kind: str, job_id: str) -> bool:
        self.submit(kind, job_id)
        return not self.down


def test_only_the_lease_holder_runs_a_job(store: Store) -> None:
    job = store.create_job("refit", _experiment(store), {})
    assert store.lease_job(job.id, "a", 30, 3) == ("acquired", 0.0)
    outcome, left = store.lease_job(job.id, "b", 30, 3)
    assert outcome == "held" and 25 < left <= 30
    assert store.lease_job(job.id, "a", 30, 3)[0] == "acquired"  # the holder's own redelivery
    assert store.renew_lease(job.id, "a", 30) and not store.renew_lease(job.id, "b", 30)
    store.release_lease(job.id, "a")
    assert store.lease_job(job.id, "b", 30, 3)[0] == "acquired"
    store.finish_job(job.id, {"ok": True})
    assert store.lease_job(job.id, "c", 30, 3) == ("finished", 0.0)


def test_a_lapsed_lease_passes_to_the_next_worker_until_attempts_run_out(store: Store) -> None:
    job = store.create_job("refit", _experiment(store), {})
    store.lease_job(job.id, "dead", 30, 3)
    store.start_job(job.id)
    _set_job(store, job.id, lease_expires_at=utcnow() - timedelta(seconds=1))
    assert store.lease_job(job.id, "next", 30, 3)[0] == "acquired"
    _set_job(store, job.id, attempts=3, lease_expires_at=utcnow() - timedelta(seconds=1))
    assert store.lease_job(job.id, "third", 30, 3)[0] == "finished"
    failed = store.get_job(job.id)
    assert failed.state == "failed" and "gave up after 3 attempts" in (failed.error or "")


def test_sweep_recovers_jobs_of_dead_workers_and_jobs_never_sent(store: Store) -> None:
    exp_id = _experiment(store)
    past = utcnow() - timedelta(minutes=5)
    dead = store.create_job("refit", exp_id, {})
    store.start_job(dead.id)
    _set_job(store, dead.id, lease_owner="w1", lease_expires_at=past)
    exhausted = store.create_job("refit", exp_id, {})
    _set_job(store, exhausted.id, state="running", attempts=3, lease_owner="w2", lease_expires_at=past)
    unsent = store.create_job("refit", exp_id, {})
    _set_job(store, unsent.id, created_at=past)
    fresh = store.create_job("refit", exp_id, {})
    store.mark_published(fresh.id)
    alive = store.create_job("refit", exp_id, {})
    store.start_job(alive.id)
    store.lease_job(alive.id, "w3", 60, 3)
    taken = store.create_job("refit", exp_id, {})  # leased, then its worker died before starting it
    store.mark_published(taken.id)
    store.lease_job(taken.id, "w4", 60, 3)
    _set_job(store, taken.id, lease_expires_at=past)
    other_kind = store.create_job("unknown-kind", exp_id, {})
    _set_job(store, other_kind.id, created_at=past)

    recorder = Recorder()
    out = stale.sweep(store, recorder, Settings(job_lease_s=10, job_max_attempts=3), ["refit"])
    expected = sorted([dead.id, unsent.id, taken.id])
    assert sorted(recorder.sent) == [("refit", job_id) for job_id in expected]
    assert sorted(out["republished"]) == expected and out["failed_jobs"] == [exhausted.id]
    assert store.get_job(dead.id).state == "queued" and store.get_job(dead.id).lease_owner is None
    assert store.get_job(exhausted.id).state == "failed"
    assert store.get_job(alive.id).state == "running" and store.get_job(fresh.id).state == "queued"
    # Published ones are not sent again by the next sweep.
    assert stale.sweep(store, Recorder(), Settings(job_lease_s=10), ["refit"])["republished"] == []


def test_a_job_the_broker_refused_is_swept_again_later(store: Store) -> None:
    job = store.create_job("refit", _experiment(store), {})
    _set_job(store, job.id, created_at=utcnow() - timedelta(minutes=5))
    out = stale.sweep(store, Recorder(down=True), Settings(job_lease_s=10), ["refit"])
    assert out["unpublished"] == [job.id] and store.get_job(job.id).published_at is None
    back = Recorder()
    stale.sweep(store, back, Settings(job_lease_s=10), ["refit"])
    assert back.sent == [("refit", job.id)] and store.get_job(job.id).published_at is not None


def test_silent_running_runs_are_abandoned_and_their_points_freed(store: Store) -> None:
    exp_id = _experiment(store, n_runs=3)
    _report(store, exp_id, 2, seed=7, state="running")
    running = [r for r in store.list_runs(store.get_experiment(exp_id), 100, None)[0] if r.state == "running"]
    with transaction(store.factory) as s:
        s.execute(update(Run).where(Run.id == running[0].id)
                  .values(heartbeat_at=utcnow() - timedelta(hours=3)))
    version = store.get_experiment(exp_id).data_version
    assert store.abandon_stale_runs(3600) == {exp_id: 1}
    assert store.get_run(exp_id, running[0].id).state == "abandoned"
    assert store.get_run(exp_id, running[1].id).state == "running"
    assert store.get_experiment(exp_id).data_version == version + 1
    pending = store.snapshot(store.get_experiment(exp_id)).observations.pending_mixtures
    assert len(pending) == 1 and np.allclose(pending[0], running[1].mixture)
    assert store.abandon_stale_runs(3600) == {}


def _fit(law: str, selected: bool = False) -> Fit:
    return Fit(id=new_id("fit"), job_id=None, law=law, selected=selected, n_runs=3, data_version=0, scores={},
               params={}, duration_s=0.1, device="cpu")


def test_a_refit_overtaken_by_newer_data_is_not_applied(store: Store) -> None:
    exp_id = _experiment(store, n_runs=3)
    assert store.apply_refit(exp_id, [_fit("new", True)], 5, {"selected_law": "new"})
    assert not store.apply_refit(exp_id, [_fit("old", True)], 3, {"selected_law": "old"})
    assert [f.law for f in store.recent_fits(exp_id, 100)] == ["new"]
    assert store.get_experiment(exp_id).hints["selected_law"] == "new"
    assert store.apply_refit(exp_id, [_fit("same", True)], 5, {"selected_law": "same"})  # equal data: fine


def _state(completed: int, **policy: Any) -> PolicyState:
    p = ReoptPolicy(experiment_id="e", enabled=True, ready_suggestions=0, method="auto", last_completed=0,
                    last_enqueued_at=None, last_job_id=None, every_runs=None, every_minutes=None)
    for k, v in policy.items():
        setattr(p, k, v)
    return PolicyState(p, "default", completed)


def test_policy_is_due_after_n_new_runs_or_t_minutes_with_new_runs() -> None:
    now = utcnow()
    assert reoptimize.due_reason(_state(9, every_runs=10), now) is None
    assert "10 new completed runs" in (reoptimize.due_reason(_state(10, every_runs=10), now) or "")
    assert reoptimize.due_reason(_state(15, every_runs=10, last_completed=10), now) is None
    recent = now - timedelta(minutes=2)
    assert reoptimize.due_reason(_state(3, every_minutes=5, last_enqueued_at=recent, last_completed=2), now) is None
    assert reoptimize.due_reason(_state(3, every_minutes=1, last_enqueued_at=recent, last_completed=2), now)
    assert reoptimize.due_reason(_state(3, every_minutes=1, last_enqueued_at=recent, last_completed=3), now) is None
    assert reoptimize.due_reason(_state(0, every_minutes=1), now) is None


def test_ticks_enqueue_one_refit_per_due_policy(store: Store) -> None:
    exp_id = _experiment(store, n_runs=6)
    store.put_policy(exp_id, {"every_runs": 5, "ready_suggestions": 2, "enabled": True, "method": "auto"})
    sent = Recorder()
    first = reoptimize.tick(store, sent)
    assert len(first) == 1 and reoptimize.tick(store, sent) == [] and len(sent.sent) == 1
    job = store.get_job(first[0])
    assert job.kind == "reoptimize" and job.params["ready_suggestions"] == 2
    policy = store.get_policy(exp_id)
    assert policy is not None and policy.last_job_id == job.id and policy.last_completed == 6
    store.finish_job(job.id, {})
    assert reoptimize.tick(store, sent) == []  # nothing new since
    _report(store, exp_id, 5, seed=1)
    assert len(reoptimize.tick(store, sent)) == 1


def test_concurrent_ticks_enqueue_one_refit(postgres_db_factory: Callable[[], str]) -> None:
    """Several schedulers at once is a PostgreSQL deployment (SQLite serves one process)."""
    url = postgres_db_factory()
    upgrade(url)
    engine = make_engine(url)
    store = Store(engine, make_session_factory(engine))
    exp_id = _experiment(store, n_runs=6)
    store.put_policy(exp_id, {"every_runs": 5, "enabled": True, "method": "auto"})
    sent = Recorder()
    barrier = threading.Barrier(6)

    def tick() -> None:
        barrier.wait()
        reoptimize.tick(store, sent)

    threads = [threading.Thread(target=tick) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(sent.sent) == 1
    with store.factory() as s:
        assert len(list(s.scalars(select(Job).where(Job.experiment_id == exp_id)))) == 1


def test_one_active_refit_per_experiment(store: Store) -> None:
    exp_id = _experiment(store)
    job, created = store.enqueue_exclusive(exp_id, "refit", {}, REFIT_KINDS)
    again, created_again = store.enqueue_exclusive(exp_id, "reoptimize", {}, REFIT_KINDS)
    assert created and not created_again and again is not None and job is not None and again.id == job.id
    store.finish_job(job.id, {})
    assert store.enqueue_exclusive(exp_id, "refit", {}, REFIT_KINDS)[1]
