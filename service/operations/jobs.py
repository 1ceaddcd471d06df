"""The job bookkeeping every background operation shares, written once.

A job operation receives the started :class:`~service.store.models.Job` and returns its result (a JSON-ready
dict). :func:`job_operation` turns it into a runner ``(store, job_id) -> result | None`` that every
dispatcher calls: it starts the job (None when the job already finished: a redelivery does nothing),
records the result, or records the error and re-raises it so a Celery adapter can decide on a retry.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from service.errors import describe_error
from service.store import Store
from service.store.models import Job

log = logging.getLogger("mixopt.jobs")

JobResult = dict[str, Any]
#: What a dispatcher runs for a job id.
JobRunner = Callable[[Store, str], JobResult | None]


def job_operation(fn: Callable[[Store, Job], JobResult]) -> JobRunner:
    """``fn`` with the job started before and finished (result or error) after it."""

    @functools.wraps(fn)
    def run(store: Store, job_id: str) -> JobResult | None:
        job = store.start_job(job_id)
        if job is None:
            return None
        try:
            result = fn(store, job)
        except Exception as exc:
            store.finish_job(job_id, error=describe_error(exc))
            log.exception("job failed", extra={"job_id": job_id, "kind": job.kind})
            raise
        store.finish_job(job_id, result)
        return result

    return run
