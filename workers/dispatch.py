"""Job dispatch: the API hands a job id to a dispatcher and may wait a short budget for it.

With no broker configured the in-process dispatcher schedules the task functions on threads of the API
process, each running its jobs in a child process of its own (:mod:`workers.job_processes`); the Celery
dispatcher (see ``workers.celery_app``) sends the same task names to Redis."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from enum import StrEnum
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

from service.errors import Unavailable
from service.settings import Settings
from service.store import Store
from service.store.models import JobState
from workers import refit, tasks
from workers.job_processes import JobFunction, JobProcess

if TYPE_CHECKING:
    from celery import Celery

log = logging.getLogger("mixopt.dispatch")

TASKS: dict[str, JobFunction] = {
    "propose": tasks.propose,
    refit.READY_KIND: tasks.propose,
    "refit": refit.refit,
    "reoptimize": refit.reoptimize,
}


class Dispatcher(Protocol):
    def submit(self, kind: str, job_id: str, project: str) -> None: ...

    def wait(self, job_id: str, timeout_s: float) -> bool:
        """True when the job finished within ``timeout_s``."""
        ...

    def close(self) -> None: ...


class Lane(StrEnum):
    """Which workers run a job kind: a caller waits on ``interactive`` jobs, nobody waits on the rest."""

    interactive = "interactive"
    background = "background"


LANES: dict[str, Lane] = {"propose": Lane.interactive, refit.READY_KIND: Lane.background,
                          "refit": Lane.background, "reoptimize": Lane.background}


@dataclass
class _Queued:
    #: Runs the job given the thread's child process (None: run it on the thread); returns its result.
    run: Callable[[JobProcess | None], Any]
    future: Future[Any]


class FairQueue:
    """Jobs waiting in one lane: a FIFO per project, served round-robin, at most ``cap`` running per project.

    So 30 queued jobs of one project delay another project's job by at most one job per worker, instead of
    by all 30. Not thread-safe by itself: :class:`InProcessDispatcher` holds its condition around every call.
    """

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.waiting: dict[str, deque[_Queued]] = {}
        self.running: dict[str, int] = {}

    def put(self, project: str, item: _Queued) -> None:
        self.waiting.setdefault(project, deque()).append(item)

    def take(self) -> tuple[str, _Queued] | None:
        """The next job to run, from the first project (in turn order) that is under its cap."""
        for project, items in self.waiting.items():
            if self.running.get(project, 0) < self.cap:
                item = items.popleft()
                del self.waiting[project]
                if items:  # its remaining jobs wait behind every other project's
                    self.waiting[project] = items
                self.running[project] = self.running.get(project, 0) + 1
                return project, item
        return None

    def done(self, project: str) -> None:
        left = self.running[project] - 1
        if left:
            self.running[project] = left
        else:
            del self.running[project]


class InProcessDispatcher:
    """Runs jobs without a broker (the embedded default), fairly across projects.

    Two lanes, each with its own threads, so a suggestion a caller is waiting for never queues behind
    refits (``interactive_workers`` threads for ``propose``, ``workers`` for the rest). Within a lane,
    :class:`FairQueue` serves projects in turn, with at most ``project_cap`` of one project's jobs running.
    With ``processes`` (the settings a child opens its store from), each thread runs its jobs in a child
    process of its own; without, on the thread itself.
    """

    def __init__(self, store: Store, workers: int = 2, interactive_workers: int = 1, project_cap: int = 1,
                 tasks: Mapping[str, JobFunction] = TASKS, processes: Settings | None = None) -> None:
        self.store = store
        self.tasks = tasks
        self.processes = processes
        self.queues = {lane: FairQueue(project_cap) for lane in Lane}
        self.changed = threading.Condition()
        self.closing = False
        self.futures: dict[str, Future[Any]] = {}
        self.threads = [threading.Thread(target=self._serve, args=(lane,), daemon=True,
                                         name=f"mixopt-job-{lane.value}-{i}")
                        for lane, count in ((Lane.background, workers), (Lane.interactive, interactive_workers))
                        for i in range(count)]
        self.started = False

    def submit(self, kind: str, job_id: str, project: str) -> None:
        fn = self.tasks[kind]
        future: Future[Any] = Future()
        self.futures[job_id] = future
        future.add_done_callback(lambda _: self.futures.pop(job_id, None))
        with self.changed:
            if not self.started:  # an app that never runs a job (most in tests) never starts its threads
                self.started = True
                for thread in self.threads:
                    thread.start()
            self.queues[LANES[kind]].put(project, _Queued(partial(self._execute, fn, job_id), future))
            self.changed.notify_all()

    def _serve(self, lane: Lane) -> None:
        queue = self.queues[lane]
        process = JobProcess(self.processes) if self.processes is not None else None
        while True:
            with self.changed:
                while (taken := queue.take()) is None:
                    if self.closing:
                        if process is not None:
                            process.close()
                        return
                    self.changed.wait()
            project, item = taken
            try:
                item.future.set_result(item.run(process))
            except Exception:  # the task has recorded the error on its job row
                item.future.set_result(None)
            finally:
                with self.changed:
                    queue.done(project)
                    self.changed.notify_all()

    def _execute(self, fn: JobFunction, job_id: str, process: JobProcess | None) -> Any:
        return fn(self.store, job_id) if process is None else process.run(fn, self.store, job_id)

    def wait(self, job_id: str, timeout_s: float) -> bool:
        fut = self.futures.get(job_id)
        if fut is not None:
            try:
                fut.result(timeout=timeout_s)
            except FutureTimeout:
                return False
        return self.store.get_job(job_id).state in ("succeeded", "failed")

    def close(self) -> None:
        """Finish every job already submitted, then stop the threads."""
        with self.changed:
            self.closing = True
            self.changed.notify_all()
            started = self.started
        for thread in self.threads if started else ():
            thread.join()


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

    def submit(self, kind: str, job_id: str, project: str) -> None:
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
