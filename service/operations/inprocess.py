"""The embedded default: jobs scheduled on threads of the API process, two lanes, fair across projects,
each thread running its jobs in a child process of its own (:mod:`service.operations.job_processes`).

Runs the runners of :data:`~service.operations.dispatch.JOBS`, as a Celery worker does.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from functools import partial
from typing import Any

from service.operations.dispatch import JOBS
from service.operations.job_processes import JobProcess
from service.operations.jobs import JobRunner
from service.operations.kinds import LANES, JobKind, Lane
from service.settings import Settings
from service.store import Store
from service.store.models import JobState


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
                 tasks: Mapping[JobKind, JobRunner] = JOBS, processes: Settings | None = None) -> None:
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

    def submit(self, kind: JobKind, job_id: str, project: str) -> None:
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

    def _execute(self, fn: JobRunner, job_id: str, process: JobProcess | None) -> Any:
        return fn(self.store, job_id) if process is None else process.run(fn, self.store, job_id)

    def wait(self, job_id: str, timeout_s: float) -> bool:
        fut = self.futures.get(job_id)
        if fut is not None:
            try:
                fut.result(timeout=timeout_s)
            except FutureTimeout:
                return False
        return self.store.get_job(job_id).state in (JobState.succeeded, JobState.failed)

    def close(self) -> None:
        """Finish every job already submitted, then stop the threads."""
        with self.changed:
            self.closing = True
            self.changed.notify_all()
            started = self.started
        for thread in self.threads if started else ():
            thread.join()
