"""The Celery job backend, registered in ``pyproject.toml`` under ``mixopt.job_backends`` as ``celery``.

``service`` finds it there (:func:`service.composition.job_backend`) and never imports this package.
"""

from __future__ import annotations

from service.operations.dispatch import Dispatcher
from service.settings import Settings
from service.store import Store
from workers.dispatch import CeleryDispatcher


class CeleryBackend:
    def dispatcher(self, store: Store, settings: Settings) -> Dispatcher:
        return CeleryDispatcher(store, settings)

    def worker(self, argv: list[str]) -> None:
        from workers.celery_app import app  # builds the worker's app from the settings: only when run

        app.worker_main(["worker", *argv])

    def beat(self, argv: list[str]) -> None:
        from workers.celery_app import app

        app.start(["beat", *argv])


backend = CeleryBackend()
