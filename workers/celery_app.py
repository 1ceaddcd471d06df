"""The Celery application: Redis as broker and result backend, one Celery task per job kind.

``celery -A workers.celery_app worker`` (or ``mixopt worker``) runs the job operations of
``service.operations.dispatch.JOBS`` (the same ones the in-process dispatcher runs), each adapted by
:func:`execute` so that:

* a delivery first takes the job's lease in the database; a second delivery of a job another live worker
  holds is retried after the lease runs out, and a delivery of a finished job is dropped (idempotence);
* a delivery also waits while ``worker_project_cap`` other jobs of its project and lane hold leases, so one
  project's flood leaves the other workers to other projects;
* the lease is renewed while the task runs, so a lapsed lease means the worker died (see ``workers.stale``);
* messages are acknowledged late and requeued if the worker process is lost, so a crash never drops a job;
* transient errors (database or broker connection, deadlock) put the job back to ``queued`` and retry it
  with exponential backoff, up to ``job_max_attempts`` starts;
* tasks are time-limited: the soft limit fails the job with a clear error, the hard limit kills it.
"""

from __future__ import annotations

import logging
import os
import random
import threading
from typing import Any

from celery import Task, signals

from mixing.methods import available_methods
from service.db import make_engine, make_session_factory
from service.errors import describe_error
from service.logs import configure_logging
from service.operations.dispatch import JOBS
from service.operations.kinds import LANE_KINDS, LANES, JobKind
from service.operations.reoptimize import tick
from service.settings import get_settings
from service.store import Store
from workers import beat, stale
from workers.config import LEASE_RETRIES, TRANSIENT, make_celery
from workers.dispatch import CeleryDispatcher

log = logging.getLogger("mixopt.worker")

app = make_celery(get_settings())

_store: Store | None = None
_store_guard = threading.Lock()


def worker_store() -> Store:
    """This worker process's store, built on first use (after the prefork fork, never inherited)."""
    global _store
    with _store_guard:
        if _store is None:
            engine = make_engine(get_settings().database_url)
            _store = Store(engine, make_session_factory(engine))
        return _store


@signals.worker_init.connect
def _warm_up(**_: Any) -> None:
    """Import the optional methods (torch, BoTorch) once in the parent, before the pool forks, so no job
    pays seconds of imports."""
    available_methods()


@signals.worker_process_init.connect
def _after_fork(**_: Any) -> None:
    global _store
    _store = None


@signals.setup_logging.connect
def _logging(**_: Any) -> None:
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_json)


class _LeaseKeeper(threading.Thread):
    """Renews a job's lease every third of its length until stopped."""

    def __init__(self, store: Store, job_id: str, owner: str, lease_s: float) -> None:
        super().__init__(name=f"lease-{job_id}", daemon=True)
        self.store, self.job_id, self.owner, self.lease_s = store, job_id, owner, lease_s
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.lease_s / 3):
            try:
                if not self.store.renew_lease(self.job_id, self.owner, self.lease_s):
                    log.warning("job lease lost to another worker", extra={"job_id": self.job_id})
                    return
            except Exception as exc:  # a database blip: the next renewal may succeed
                log.warning("could not renew job lease",
                            extra={"job_id": self.job_id, "error": str(exc)[:300]})


def execute(task: Task, kind: JobKind, job_id: str) -> Any:
    """Run one delivery of a job under its lease (see the module docstring)."""
    settings, store = get_settings(), worker_store()
    owner = f"{task.request.hostname}:{os.getpid()}"
    try:
        outcome, wait_s = store.lease_job(job_id, owner, settings.job_lease_s, settings.job_max_attempts,
                                          settings.worker_project_cap, LANE_KINDS[LANES[kind]])
    except TRANSIENT as exc:
        countdown = _backoff(task.request.retries)
        raise task.retry(exc=exc, countdown=countdown, max_retries=LEASE_RETRIES) from exc
    if outcome == "finished":
        log.info("job already finished; delivery dropped", extra={"job_id": job_id, "kind": kind})
        return None
    if outcome == "held":
        raise task.retry(countdown=wait_s + 0.5, max_retries=None)
    keeper = _LeaseKeeper(store, job_id, owner, settings.job_lease_s)
    keeper.start()
    try:
        return JOBS[kind](store, job_id)
    except TRANSIENT as exc:
        attempts = _attempts(store, job_id)
        if attempts is None or attempts >= settings.job_max_attempts:
            raise
        countdown = _backoff(attempts)
        note = f"retrying in {countdown:.0f} s after {describe_error(exc)}"
        _best_effort(store.requeue_job, job_id, note)
        raise task.retry(exc=exc, countdown=countdown, max_retries=None) from exc
    finally:
        keeper.stopped.set()
        _best_effort(store.release_lease, job_id, owner)


def _backoff(n: int) -> float:
    """Exponential backoff with jitter, capped at five minutes."""
    return float(min(300.0, 2.0 ** n) * (0.5 + random.random()))


def _attempts(store: Store, job_id: str) -> int | None:
    try:
        return store.get_job(job_id).attempts
    except Exception:  # the database itself is what failed: let the lease lapse and the sweep retry
        return None


def _best_effort(fn: Any, *args: Any) -> None:
    try:
        fn(*args)
    except Exception as exc:
        log.warning("job bookkeeping failed", extra={"call": fn.__name__, "error": str(exc)[:300]})


def _register(kind: JobKind) -> None:
    @app.task(name=f"mixopt.{kind}", bind=True, max_retries=None)
    def run(self: Task, job_id: str) -> Any:
        return execute(self, kind, job_id)


for _kind in JOBS:
    _register(_kind)


def _dispatcher() -> CeleryDispatcher:
    return CeleryDispatcher(worker_store(), get_settings(), app=app)


@app.task(name=beat.POLICIES_TASK)
def policies() -> list[str]:
    """Enqueue re-optimization for every experiment whose policy is due."""
    return tick(worker_store(), _dispatcher(), get_settings().refit_law_list)


@app.task(name=beat.SWEEP_TASK)
def sweep() -> dict[str, Any]:
    """Abandon silent runs, retry jobs of dead workers, publish jobs the broker never got."""
    return stale.sweep(worker_store(), _dispatcher(), get_settings(), list(JOBS))
