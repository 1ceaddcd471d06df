"""Job dispatch: the API hands a job id to a dispatcher and may wait a short budget for it.

With no broker configured the in-process dispatcher runs the task functions on a thread pool inside the
API process; the Celery dispatcher (see ``workers.celery_app``) sends the same task names to Redis.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Protocol

from service.store import Store
from workers import tasks

log = logging.getLogger("mixopt.dispatch")

TASKS: dict[str, Callable[[Store, str], Any]] = {"propose": tasks.propose}


class Dispatcher(Protocol):
    def submit(self, kind: str, job_id: str) -> None: ...

    def wait(self, job_id: str, timeout_s: float) -> bool:
        """True when the job finished within ``timeout_s``."""
        ...

    def close(self) -> None: ...


class InProcessDispatcher:
    """Runs jobs on a thread pool in this process (the embedded default)."""

    def __init__(self, store: Store, workers: int = 2) -> None:
        self.store = store
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mixopt-job")
        self.futures: dict[str, Future[Any]] = {}

    def submit(self, kind: str, job_id: str) -> None:
        fut = self.pool.submit(self._run, TASKS[kind], job_id)
        self.futures[job_id] = fut
        fut.add_done_callback(lambda _: self.futures.pop(job_id, None))

    def _run(self, fn: Callable[[Store, str], Any], job_id: str) -> Any:
        try:
            return fn(self.store, job_id)
        except Exception:  # the task has recorded the error on its job row
            return None

    def wait(self, job_id: str, timeout_s: float) -> bool:
        fut = self.futures.get(job_id)
        if fut is not None:
            try:
                fut.result(timeout=timeout_s)
            except FutureTimeout:
                return False
        return self.store.get_job(job_id).state in ("succeeded", "failed")

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=False)
