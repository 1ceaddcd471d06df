"""Stale work: runs whose trainer went silent, and jobs whose worker died or whose message was lost.

Run by ``mixopt beat`` every ``beat_interval_s`` (task ``mixopt.sweep``):

* a run ``running`` with no report (heartbeat) for ``run_heartbeat_timeout_s`` becomes ``abandoned``; it
  leaves the pending set, so the next suggestions may propose its point again;
* a job ``running`` whose worker lease lapsed (the worker died) is queued and published again, or failed
  once it has been started ``job_max_attempts`` times;
* a job ``queued`` whose message never reached the broker (Redis was down when it was submitted), or
  reached it more than ``job_republish_after_s`` ago without being started (Redis lost it), is published
  again. Duplicate deliveries are harmless: only the holder of a job's lease runs it.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from service.operations.kinds import JobKind
from service.settings import Settings
from service.store import Store

log = logging.getLogger("mixopt.stale")


class Publisher(Protocol):
    def publish(self, kind: JobKind, job_id: str) -> bool: ...


def sweep(store: Store, publisher: Publisher, settings: Settings, kinds: list[JobKind]) -> dict[str, Any]:
    """One pass over stale runs and jobs of ``kinds``; returns what it changed."""
    abandoned = store.abandon_stale_runs(settings.run_heartbeat_timeout_s)
    to_publish, failed = store.sweep_jobs(kinds, unpublished_grace_s=settings.job_lease_s,
                                          republish_after_s=settings.job_republish_after_s,
                                          max_attempts=settings.job_max_attempts)
    published, unpublished = [], []
    for kind, job_id in to_publish:
        if publisher.publish(JobKind(kind), job_id):
            published.append(job_id)
        else:  # the broker is still down: the next sweep tries again
            store.mark_published(job_id, published=False)
            unpublished.append(job_id)
    out = {"abandoned_runs": abandoned, "republished": published, "failed_jobs": failed,
           "unpublished": unpublished}
    if abandoned or to_publish or failed:
        log.info("swept stale work", extra=out)
    return out
