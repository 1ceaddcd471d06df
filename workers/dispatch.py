"""The Celery dispatcher: the API publishes a job's task to the broker and waits on the job's row."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from service.errors import ErrorCode, Unavailable
from service.operations.kinds import JobKind
from service.settings import Settings
from service.store import Store
from service.store.models import JobState
from workers.config import BROKER_ERRORS, PUBLISH_RETRY, make_celery, queue_for

if TYPE_CHECKING:
    from celery import Celery

log = logging.getLogger("mixopt.dispatch")


class CeleryDispatcher:
    """Sends jobs to Celery workers through the broker; waits by polling the job row, never the broker.

    When the broker is unreachable, a job somebody is waiting for (``INTERACTIVE``: suggestions) fails at
    once with a 503 instead of hanging; any other job stays ``queued`` in the database and the stale-work
    sweep of ``mixopt beat`` publishes it once the broker is back.
    """

    INTERACTIVE = frozenset({JobKind.propose})

    def __init__(self, store: Store, settings: Settings, app: Celery | None = None) -> None:
        self.store = store
        self.settings = settings
        self.app = app if app is not None else make_celery(settings)

    def submit(self, kind: JobKind, job_id: str, project: str) -> None:
        if self.publish(kind, job_id):
            return
        if kind in self.INTERACTIVE:
            self.store.finish_job(job_id, error="the job broker is unreachable; nothing was computed")
            raise Unavailable("the job broker (Redis) is unreachable, so no worker can compute this; "
                              "retry later", code=ErrorCode.broker_unavailable, details={"job_id": job_id})
        log.warning("broker unreachable; job stays queued until the sweep publishes it",
                    extra={"job_id": job_id, "kind": kind})

    def publish(self, kind: JobKind, job_id: str) -> bool:
        """Send the job's task and mark it published; False when the broker cannot be reached."""
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
            if self.store.get_job(job_id).state in (JobState.succeeded, JobState.failed):
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(delay, left))
            delay = min(delay * 1.5, 0.25)

    def close(self) -> None:
        self.app.close()
