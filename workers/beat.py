"""Scheduled re-optimization: the beat schedule and the per-experiment policy it evaluates.

``mixopt beat`` is only a clock: every ``beat_interval_s`` it sends two tasks, and whichever worker takes
them does the database work. A policy is due after ``every_runs`` new completed runs, or every
``every_minutes`` when runs completed since the last scheduled refit. Enqueueing is a compare-and-set on
the policy row plus a check for an active refit of the experiment (see :meth:`Store.enqueue_exclusive`),
so two ticks, or two beat processes started by mistake, never enqueue the same refit twice.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any, Protocol

from service.settings import Settings
from service.store import PolicyState, Store
from service.store.models import utcnow
from workers.refit import REFIT_KINDS

log = logging.getLogger("mixopt.beat")

#: Celery task names of the two periodic tasks (registered in ``workers.celery_app``).
POLICIES_TASK = "mixopt.policies"
SWEEP_TASK = "mixopt.sweep"


class Submitter(Protocol):
    def submit(self, kind: str, job_id: str, project: str) -> None: ...


def schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """Celery's ``beat_schedule``: both tasks every ``beat_interval_s``, dropped if not run by the next tick
    (a backlog of ticks while workers are down would only repeat the same work)."""
    every = float(settings.beat_interval_s)
    return {name: {"task": name, "schedule": every, "options": {"expires": every}}
            for name in (POLICIES_TASK, SWEEP_TASK)}


def due_reason(state: PolicyState, now: datetime) -> str | None:
    """Why the policy's experiment should be refitted now, or None."""
    p = state.policy
    new_runs = state.completed - p.last_completed
    if new_runs <= 0:
        return None
    if p.every_runs and new_runs >= p.every_runs:
        return f"{new_runs} new completed runs (policy: every {p.every_runs})"
    if p.every_minutes and (p.last_enqueued_at is None
                            or now - p.last_enqueued_at >= timedelta(minutes=p.every_minutes)):
        return f"{new_runs} new completed runs and {p.every_minutes:g} minutes passed"
    return None


def tick(store: Store, dispatcher: Submitter, laws: list[str] | None = None, now: datetime | None = None
         ) -> list[str]:
    """Enqueue a ``reoptimize`` job (scoring ``laws``, default all) for every due policy; returns the ids of
    the jobs created."""
    now = now or utcnow()
    created: list[str] = []
    for state in store.policy_states():
        reason = due_reason(state, now)
        if reason is None:
            continue
        p = state.policy
        params = {"project": state.project, "method": p.method, "ready_suggestions": p.ready_suggestions,
                  "reason": reason, "scheduled": True, "laws": laws}
        job, is_new = store.enqueue_exclusive(p.experiment_id, "reoptimize", params, REFIT_KINDS,
                                              policy_token=(p.pk, p.last_job_id, state.completed))
        if job is None or not is_new:
            continue
        dispatcher.submit("reoptimize", job.id, state.project)
        created.append(job.id)
        log.info("scheduled refit",
                 extra={"experiment_id": p.experiment_id, "job_id": job.id, "reason": reason})
    return created
