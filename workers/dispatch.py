"""Job dispatch: the API hands a job id to a dispatcher and may wait a short budget for it.

With no broker configured the in-process dispatcher runs the task functions on a thread pool inside the
API process; the Celery dispatcher (see ``workers.celery_app``) sends the same task names to Redis.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TYPE_CHECKING, Any, Protocol

from service.errors import Unavailable
from service.models import JobState
from service.settings import Settings
from service.store import Store
from workers import refit, tasks

if TYPE_CHECKING:
    from celery import Celery

log = logging.getLogger("mixopt.dispatch")

TASKS: dict[str, Callable[[Store, str], Any]] = {
    "propose": tasks.propose,
    refit.READY_KIND: tasks.propose,
    "refit": refit.refit,
    "reoptimize": refit.reoptimize,
}


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


class CeleryDispatcher:
    """Sends jobs to Celery workers through the broker; waits by polling the job row, never the broker.

    When the broker is unreachable, a job somebody is waiting for (``INTERACTIVE``: suggestions) fails at
    once with a 503 instead of hanging; any other job stays ``queued`` in the database and the stale-work
    sweep of ``mixopt beat`` publishes it once the broker is back.
    """

    INTERACTIVE = frozenset({"propose"})

    def __init__(self, store: Store, settings: Settings, app: Celery | None = None) -> None:
        from workers.celery_app import make_celery

        self.store = store
        self.settings = settings
        self.app = app if app is not None else make_celery(settings)

    def submit(self, kind: str, job_id: str) -> None:
        if self.publish(kind, job_id):
            return
        if kind in self.INTERACTIVE:
            self.store.finish_job(job_id, error="the job broker is unreachable; nothing was computed")
            raise Unavailable("the job broker (Redis) is unreachable, so no worker can compute this; "
                              "retry later", code="broker_unavailable", details={"job_id": job_id})
        log.warning("broker unreachable; job stays queued until the sweep publishes it",
                    extra={"job_id": job_id, "kind": kind})

    def publish(self, kind: str, job_id: str) -> bool:
        """Send the job's task and mark it published; False when the broker cannot be reached."""
        from workers.celery_app import BROKER_ERRORS, PUBLISH_RETRY, queue_for

        try:
            # Results and progress live on the job row; not asking Celery for the result keeps the API
            # from subscribing to the result backend (which would block while Redis is down).
            self.app.send_task(f"mixopt.{kind}", args=[job_id], queue=queue_for(kind, self.settings),
                               retry=True, retry_policy=PUBLISH_RETRY, ignore_result=True)
        except BROKER_ERRORS as exc:
            log.warning("could not publish job",
                        extra={"job_id": job_id, "kind": kind, "error": str(exc)[:300]})
            return False
        self.store.mark_published(job_id)
        return True

    def wait(self, job_id: str, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        delay = 0.02
        while True:
            if self.store.get_job(job_id).state in (JobState.succeeded.value, JobState.failed.value):
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(delay, left))
            delay = min(delay * 1.5, 0.25)

    def close(self) -> None:
        self.app.close()
