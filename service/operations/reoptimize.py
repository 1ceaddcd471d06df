"""Queueing refits: on request (``POST /refits``) and by an experiment's re-optimization policy.

A policy is due after ``every_runs`` new completed runs, or every ``every_minutes`` when runs completed
since the last scheduled refit. Enqueueing is a compare-and-set on the policy row plus a check for an
active refit of the experiment (see :meth:`Store.enqueue_exclusive`), so two ticks, or two schedulers
started by mistake, never enqueue the same refit twice.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from service.operations.dispatch import Dispatcher
from service.operations.kinds import REFIT_KINDS, JobKind
from service.store import PolicyState, Store
from service.store.models import Experiment, Job, utcnow

log = logging.getLogger("mixopt.reoptimize")


def queue_refit(store: Store, dispatcher: Dispatcher, exp: Experiment, *, force: bool, method: str,
                  laws: list[str] | None, seed: int | None) -> Job:
    """Queue a refit of ``laws`` (None: all) and a refreshed recommendation by ``method``; the refit already
    queued or running for the experiment instead, when there is one."""
    params = {"project": exp.project, "force": force, "method": method, "seed": seed, "laws": laws}
    job, created = store.enqueue_exclusive(exp.id, JobKind.refit, params, REFIT_KINDS)
    assert job is not None
    if created:
        dispatcher.submit(JobKind.refit, job.id, exp.project)
    return store.get_job(job.id)


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


def tick(store: Store, dispatcher: Dispatcher, laws: list[str] | None = None, now: datetime | None = None
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
        job, is_new = store.enqueue_exclusive(p.experiment_id, JobKind.reoptimize, params, REFIT_KINDS,
                                              policy_token=(p.pk, p.last_job_id, state.completed))
        if job is None or not is_new:
            continue
        dispatcher.submit(JobKind.reoptimize, job.id, state.project)
        created.append(job.id)
        log.info("scheduled refit",
                 extra={"experiment_id": p.experiment_id, "job_id": job.id, "reason": reason})
    return created
