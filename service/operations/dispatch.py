"""How operations hand work to whatever runs jobs, and which operation each job kind runs.

The application layer depends only on :class:`Dispatcher`; the app factory is given one at start-up: the
in-process dispatcher (:mod:`service.operations.inprocess`) by default, or the Celery one that the
``workers`` package registers (see :mod:`service.composition`). Both run the runners of :data:`JOBS`.
"""

from __future__ import annotations

from typing import Protocol

from service.operations.jobs import JobRunner
from service.operations.kinds import JobKind
from service.operations.proposing import propose
from service.operations.refit import refit, reoptimize


class Dispatcher(Protocol):
    def submit(self, kind: JobKind, job_id: str, project: str) -> None:
        """Queue the job (its row already exists) to run :data:`JOBS` ``[kind]``."""
        ...

    def wait(self, job_id: str, timeout_s: float) -> bool:
        """True when the job finished within ``timeout_s``."""
        ...

    def close(self) -> None: ...


#: The operation each job kind runs.
JOBS: dict[JobKind, JobRunner] = {
    JobKind.propose: propose,
    JobKind.propose_ready: propose,
    JobKind.refit: refit,
    JobKind.reoptimize: reoptimize,
}
