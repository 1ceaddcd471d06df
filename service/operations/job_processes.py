"""Child processes that run the embedded default's jobs outside the API's process.

A 5,000-run refit holds gigabytes and the interpreter lock for a minute; run on the API's threads it raised
another caller's GET p99 from 17 ms to 5.6 s. Each dispatcher thread owns one :class:`JobProcess`: a
single-worker process pool, started (``spawn``: no inherited locks, connections or torch threads) on its
first job and kept for the next ones. The child opens its own store from the same :class:`Settings`, so it
reads and writes the job row exactly as a thread or a Celery worker would. A child that dies (killed for
memory, a segfault in a native library) fails only the job it ran, and the next job gets a new child.
"""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from service.db import DbTimeouts, make_engine, make_session_factory
from service.logs import configure_logging
from service.settings import Settings
from service.store import Store
from service.store.models import JobState

log = logging.getLogger("mixopt.dispatch")

#: Job runners take the store and a job id; module-level functions, so a child finds them by name.
JobFunction = Callable[[Store, str], Any]

#: The store of this child process (set by :func:`_open_store`; None in the API's own process).
_child_store: Store | None = None


def _open_store(settings: Settings) -> None:
    global _child_store
    configure_logging(settings.log_level, settings.log_json)
    engine = make_engine(settings.database_url, pool_size=2, timeouts=DbTimeouts.of(settings))
    _child_store = Store(engine, make_session_factory(engine))


def _run(fn: JobFunction, job_id: str) -> Any:
    """Runs in the child: the task's result (JSON-like), or None when it failed (it recorded why on the job
    row, so its exception, which may not pickle, stays here)."""
    assert _child_store is not None, "a job process starts by opening its store"
    try:
        return fn(_child_store, job_id)
    except Exception:
        log.debug("job failed in its process; the error is on the job row", extra={"job_id": job_id})
        return None


class JobProcess:
    """One child process running one job at a time for one dispatcher thread."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pool: ProcessPoolExecutor | None = None

    def run(self, fn: JobFunction, store: Store, job_id: str) -> Any:
        """``fn(store, job_id)``'s result, computed in the child; ``store`` (the API's) records a lost child."""
        if self.pool is None:
            self.pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                            initializer=_open_store, initargs=(self.settings,))
        try:
            return self.pool.submit(_run, fn, job_id).result()
        except BrokenProcessPool:
            self.pool.shutdown(wait=False)
            self.pool = None
            log.error("the process running a job died", extra={"job_id": job_id})
            if store.get_job(job_id).state not in (JobState.succeeded, JobState.failed):
                store.finish_job(job_id, error="the process running this job died (killed for memory, or a "
                                               "crash in a native library); nothing was stored")
            return None

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True)
            self.pool = None
