"""The in-process dispatcher is fair: suggestions never wait behind refits, and one project's queue of jobs
delays another project by at most the jobs already running (issue 14, item 9).

The tasks here block on events the test releases, so every ordering is decided by the dispatcher, not by
timing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from service.operations.inprocess import FairQueue, InProcessDispatcher, _Queued

JobLog = list[str]


class Gate:
    """Tasks that record when they start and then wait until the test opens their gate."""

    def __init__(self) -> None:
        self.started: JobLog = []
        self.released: set[str] = set()
        self.all_released = False
        self.changed = threading.Condition()

    def task(self, _: Any, job_id: str) -> str:
        with self.changed:
            self.started.append(job_id)
            self.changed.notify_all()
            self.changed.wait_for(lambda: self.all_released or job_id in self.released)
        return job_id

    def release(self, job_id: str) -> None:
        with self.changed:
            self.released.add(job_id)
            self.changed.notify_all()

    def release_all(self) -> None:
        with self.changed:
            self.all_released = True
            self.changed.notify_all()

    def wait_started(self, count: int) -> JobLog:
        with self.changed:
            self.changed.wait_for(lambda: len(self.started) >= count)
            return list(self.started)


class NoStore:
    """The dispatcher only reads a job's state after its future; these tests never get there."""


@pytest.fixture
def gate() -> Gate:
    return Gate()


@pytest.fixture
def dispatcher(gate: Gate) -> Iterator[Callable[..., InProcessDispatcher]]:
    made: list[InProcessDispatcher] = []

    def make(**kwargs: Any) -> InProcessDispatcher:
        tasks = {kind: gate.task for kind in ("propose", "refit", "reoptimize", "propose_ready")}
        d = InProcessDispatcher(NoStore(), tasks=tasks, **kwargs)  # type: ignore[arg-type]
        made.append(d)
        return d

    yield make
    gate.release_all()
    for d in made:
        d.close()


def test_a_suggestion_is_not_queued_behind_background_jobs(
        gate: Gate, dispatcher: Callable[..., InProcessDispatcher]) -> None:
    d = dispatcher(workers=2, interactive_workers=1, project_cap=2)
    for i in range(12):
        d.submit("refit", f"fit-{i}", "flooder")
    assert gate.wait_started(2) == ["fit-0", "fit-1"]
    d.submit("propose", "suggest", "victim")
    suggestion = d.futures["suggest"]
    assert gate.wait_started(3)[-1] == "suggest", "the suggestion waited for the background jobs"
    gate.release("suggest")
    assert suggestion.result() == "suggest"


def test_projects_take_turns_and_one_project_is_capped(
        gate: Gate, dispatcher: Callable[..., InProcessDispatcher]) -> None:
    d = dispatcher(workers=2, interactive_workers=1, project_cap=1)
    for i in range(5):
        d.submit("refit", f"a{i}", "a")
    assert gate.wait_started(1) == ["a0"]
    d.submit("refit", "b0", "b")
    assert gate.wait_started(2) == ["a0", "b0"], "the second worker went to project a's queue"
    d.submit("refit", "c0", "c")
    gate.release("a0")
    assert gate.wait_started(3) == ["a0", "b0", "a1"]
    gate.release("b0")
    # a is at its cap: the free worker goes to c, not to a's three remaining jobs queued before c0
    assert gate.wait_started(4) == ["a0", "b0", "a1", "c0"]
    gate.release("c0")
    gate.release("a1")
    assert gate.wait_started(5)[-1] == "a2"


def test_close_finishes_every_submitted_job(gate: Gate) -> None:
    tasks = {"refit": gate.task, "propose": gate.task}
    d = InProcessDispatcher(NoStore(), workers=1, interactive_workers=1, tasks=tasks)  # type: ignore[arg-type]
    futures = []
    for i in range(4):
        d.submit("refit", f"x{i}", "p")
        futures.append(d.futures[f"x{i}"])
    gate.release_all()
    d.close()
    assert [f.result() for f in futures] == ["x0", "x1", "x2", "x3"]
    assert not any(t.is_alive() for t in d.threads)


def test_the_fair_queue_serves_projects_in_turn() -> None:
    queue = FairQueue(cap=1)
    for name in ("a1", "a2", "a3"):
        queue.put("a", _Queued(lambda: None, name))  # type: ignore[arg-type]
    queue.put("b", _Queued(lambda: None, "b1"))  # type: ignore[arg-type]
    first = queue.take()
    assert first is not None and first[0] == "a"
    second = queue.take()
    assert second is not None and second[0] == "b"
    assert queue.take() is None, "a is at its cap"
    queue.done("a")
    third = queue.take()
    assert third is not None and third[1].future == "a2"


def test_celery_routes_suggestions_to_the_interactive_queue() -> None:
    from service.settings import Settings
    from workers.config import queue_for

    assert queue_for("propose", Settings()) == "interactive"
    assert {queue_for(kind, Settings()) for kind in ("refit", "reoptimize", "propose_ready")} == {"default"}
    assert queue_for("propose", Settings(gpu_kinds="propose,refit")) == "gpu"
