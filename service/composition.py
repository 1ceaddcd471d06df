"""Which job backend runs the jobs: chosen at start-up, without ``service`` importing it.

With no broker configured, jobs run in the API process (:class:`~service.operations.inprocess.InProcessDispatcher`).
With one, a :class:`JobBackend` registered under the entry-point group ``mixopt.job_backends`` provides the
dispatcher the API submits to and the ``mixopt worker`` and ``mixopt beat`` processes; ``pyproject.toml``
registers the Celery one of the ``workers`` package as ``celery``. The arrow thus points from ``workers``
to ``service`` only: the app factory is handed a dispatcher, whoever built it.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from importlib.metadata import entry_points
from typing import Protocol

from service.operations.dispatch import Dispatcher
from service.operations.inprocess import InProcessDispatcher
from service.settings import Settings
from service.store import Store

GROUP = "mixopt.job_backends"
#: The backend a broker URL selects.
BROKER_BACKEND = "celery"
#: What ``pyproject.toml`` declares in :data:`GROUP`, for a source tree run without installing it (its
#: installed metadata, if any, may predate the group).
DECLARED = {"celery": "workers.backend:backend"}

DispatcherFactory = Callable[[Store, Settings], Dispatcher]


class JobBackend(Protocol):
    """Runs jobs outside the API process."""

    def dispatcher(self, store: Store, settings: Settings) -> Dispatcher:
        """What the API submits jobs to."""
        ...

    def worker(self, argv: list[str]) -> None:
        """Run a worker process (``mixopt worker``); ``argv`` in the backend's own terms."""
        ...

    def beat(self, argv: list[str]) -> None:
        """Run the scheduler of periodic work (``mixopt beat``)."""
        ...


def job_backend(name: str = BROKER_BACKEND) -> JobBackend:
    """The backend registered as ``name`` (ValueError for a name nobody registered)."""
    found = entry_points(group=GROUP, name=name)
    target = next(iter(found)).value if found else DECLARED.get(name)
    if target is None:
        raise ValueError(f"no job backend {name!r} in entry-point group {GROUP}")
    module, _, attr = target.partition(":")
    backend: JobBackend = getattr(import_module(module), attr)
    return backend


def in_process(store: Store, settings: Settings) -> Dispatcher:
    return InProcessDispatcher(store, settings.inprocess_workers, settings.inprocess_interactive_workers,
                               settings.inprocess_project_cap,
                               processes=settings if settings.job_processes and not settings.in_memory_sqlite
                               else None)


def default_dispatcher(settings: Settings) -> DispatcherFactory:
    """The in-process dispatcher without a broker; with one, the broker backend's."""
    return job_backend().dispatcher if settings.broker_url else in_process
