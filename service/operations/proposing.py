"""The propose job: new suggested runs for an experiment, from its search method.

Idempotent: a propose job records the runs it created in its result, and a redelivery of a finished job
does nothing (:func:`~service.operations.jobs.job_operation`), so a retry after a crash never hands out
a second batch.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from mixing.errors import NotEnoughDataError
from mixing.methods import resolve_method
from mixing.methods.common import new_runs
from mixing.methods.design import DesignMethod
from mixing.problem import Candidates
from service.jsonable import to_jsonable
from service.locks import experiment_lock
from service.operations.context import prediction_dict, search_context
from service.operations.jobs import JobResult, job_operation
from service.spec import spec_of
from service.store import Store
from service.store.models import Job

log = logging.getLogger("mixopt.propose")


@job_operation
def propose(store: Store, job: Job) -> JobResult:
    """Suggest ``params["count"]`` runs and store them as ``suggested`` runs; their ids in ``run_ids``.

    ``exhausted`` is true when fewer runs than asked came out: the rest would repeat a pending or observed
    run.
    """
    params = job.params
    count = int(params["count"])
    t0 = time.perf_counter()
    exp = store.get_experiment(job.experiment_id or "", params.get("project", "default"))
    with experiment_lock(store.engine, exp.id):
        ctx, snap = search_context(store, exp, params.get("seed"))
        method = resolve_method(params.get("method") or "auto", ctx, spec_of(exp).search.initial_runs)
        fidelity = None if params.get("fidelity") is None else np.asarray(params["fidelity"], dtype=np.float64)
        candidates = _candidates(store, exp.id, params)
        try:
            proposals = method.suggest(ctx, count, fidelity, candidates)
        except NotEnoughDataError as exc:
            log.info("method fell back to design", extra={"job_id": job.id, "reason": str(exc)})
            proposals = DesignMethod().suggest(ctx, count, fidelity, candidates)
        proposals = new_runs(proposals, ctx.observations)[:count]
        runs = store.add_suggested_runs(
            exp.id,
            np.array([p.mixture for p in proposals]).reshape(len(proposals), ctx.problem.n_domains),
            np.array([p.fidelity for p in proposals]).reshape(len(proposals), ctx.problem.fidelity.n_axes),
            proposals[0].method if proposals else method.name,
            [prediction_dict(p.predicted) for p in proposals],
            proposal={"data_version": snap.data_version, "n_runs": snap.observations.n,
                      "payload": {"count": params["count"], "duration_s": time.perf_counter() - t0}},
            job_id=job.id,
            handed_to=params.get("client_id"),
            # A ready queue's runs wait for a taker; a request's are handed out as they are made.
            claimed=not params.get("ready_queue", False),
        )
        store_hints(store, exp.id, [p.details for p in proposals])
    result: JobResult = {"run_ids": [r.id for r in runs], "method": runs[0].method if runs else method.name,
                          "duration_s": time.perf_counter() - t0, "exhausted": len(runs) < count}
    log.info("proposed", extra={"job_id": job.id, "experiment_id": exp.id, "n": len(runs),
                                "method": result["method"], "duration_s": round(result["duration_s"], 3)})
    return result


def _candidates(store: Store, experiment_id: str, params: dict[str, Any]) -> Candidates | None:
    """The job's pool: stored once by hash (``pool``), or inline (``candidates``) in a job queued before
    pools had their own table."""
    if params.get("pool"):
        return store.load_pool(experiment_id, params["pool"])
    cands = params.get("candidates")
    if not cands:
        return None
    return Candidates(mixtures=np.asarray(cands["mixtures"], dtype=np.float64),
                      fidelities=np.asarray(cands["fidelities"], dtype=np.float64))


def store_hints(store: Store, exp_id: str, details: list[dict[str, Any]]) -> None:
    """Keep the warm-start state a method returned (``bo_state``: GP hyperparameters) for its next call."""
    states = [d["bo_state"] for d in details if "bo_state" in d]
    if states:
        store.update_hints(exp_id, to_jsonable({"bo_state": states[-1]}))
