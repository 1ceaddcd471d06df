"""Task functions. Each takes the store and a job id, so the in-process runner and Celery run the same code.

A task is idempotent: a job already ``succeeded`` is skipped on redelivery, and a propose job records the
runs it created in its result so a retry after a crash does not hand out a second batch.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from mixing.errors import NotEnoughDataError
from mixing.methods import resolve_method, resolve_recommender
from mixing.methods.common import new_runs
from mixing.methods.design import best_observed
from mixing.problem import Candidates, Recommendation
from service.errors import describe_error
from service.locks import experiment_lock
from service.store import Store
from service.store.models import Experiment
from workers.context import prediction_dict, search_context

log = logging.getLogger("mixopt.tasks")


def propose(store: Store, job_id: str) -> dict[str, Any] | None:
    """Suggest ``count`` runs for an experiment and store them as ``suggested`` runs."""
    job = store.start_job(job_id)
    if job is None:
        return None
    params = job.params
    t0 = time.perf_counter()
    try:
        exp = store.get_experiment(job.experiment_id or "", params.get("project", "default"))
        with experiment_lock(store.engine, exp.id):
            ctx, snap = search_context(store, exp, params.get("seed"))
            method = resolve_method(params.get("method") or "auto", ctx,
                                    (exp.spec.get("search") or {}).get("initial_runs"))
            fidelity = None if params.get("fidelity") is None else np.asarray(params["fidelity"], dtype=np.float64)
            candidates = _candidates(store, exp.id, params)
            try:
                proposals = method.suggest(ctx, int(params["count"]), fidelity, candidates)
            except NotEnoughDataError as exc:
                log.info("method fell back to design", extra={"job_id": job_id, "reason": str(exc)})
                from mixing.methods.design import DesignMethod

                proposals = DesignMethod().suggest(ctx, int(params["count"]), fidelity, candidates)
            proposals = new_runs(proposals, ctx.observations)[: int(params["count"])]
            runs = store.add_suggested_runs(
                exp.id,
                np.array([p.mixture for p in proposals]).reshape(len(proposals), ctx.problem.n_domains),
                np.array([p.fidelity for p in proposals]).reshape(len(proposals), ctx.problem.fidelity.n_axes),
                proposals[0].method if proposals else method.name,
                [prediction_dict(p.predicted) for p in proposals],
                proposal={"data_version": snap.data_version, "n_runs": snap.observations.n,
                          "payload": {"count": params["count"], "duration_s": time.perf_counter() - t0}},
                job_id=job_id,
                handed_to=params.get("client_id"),
                # A ready queue's runs wait for a taker; a request's are handed out as they are made.
                claimed=not params.get("ready_queue", False),
            )
            _store_hints(store, exp.id, [p.details for p in proposals])
        # Fewer runs than asked: the rest would repeat a pending or observed run (the space is exhausted).
        result = {"run_ids": [r.id for r in runs], "method": runs[0].method if runs else method.name,
                  "duration_s": time.perf_counter() - t0, "exhausted": len(runs) < int(params["count"])}
        store.finish_job(job_id, result)
        log.info("proposed", extra={"job_id": job_id, "experiment_id": exp.id, "n": len(runs),
                                    "method": result["method"], "duration_s": round(result["duration_s"], 3)})
        return result
    except Exception as exc:
        store.finish_job(job_id, error=describe_error(exc))
        log.exception("propose failed", extra={"job_id": job_id})
        raise


def recommend(store: Store, experiment_id: str, project: str = "default", method_name: str = "auto",
              seed: int | None = None, job_id: str | None = None) -> dict[str, Any]:
    """Compute and store the recommendation for the experiment's current data."""
    exp = store.get_experiment(experiment_id, project)
    rec, data_version, payload = compute_recommendation(store, exp, method_name, seed)
    prop = store.save_recommendation(exp.id, rec.method, data_version, rec.n_runs, payload, job_id)
    _store_hints(store, exp.id, [rec.details])
    return {"proposal_id": prop.id, "method": rec.method, "data_version": data_version}


def compute_recommendation(store: Store, exp: Experiment, method_name: str = "auto", seed: int | None = None,
                           candidates: np.ndarray | None = None) -> tuple[Recommendation, int, dict[str, Any]]:
    """(recommendation, data version it saw, its stored form) for the current data; stores nothing.

    ``candidates`` (mixtures, in domain order) restricts the choice to them. A model that cannot fit yet,
    or whose answer is not finite, gives way to the best observed run.
    """
    ctx, snap = search_context(store, exp, seed)
    t0 = time.perf_counter()
    try:
        rec = resolve_recommender(method_name, ctx).recommend(ctx, candidates)
    except NotEnoughDataError:
        rec = best_observed(ctx, "best-observed", candidates)
    if not (np.all(np.isfinite(rec.mixture)) and np.isfinite(rec.predicted.value)):
        log.warning("model recommendation not finite", extra={"experiment_id": exp.id, "method": rec.method})
        rec = best_observed(ctx, "best-observed", candidates)
    payload = {
        "mixture": [float(x) for x in rec.mixture],
        "fidelity": [float(x) for x in rec.fidelity],
        "predicted": prediction_dict(rec.predicted),
        "details": _jsonable(rec.details),
        "duration_s": time.perf_counter() - t0,
    }
    return rec, snap.data_version, payload


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


def _store_hints(store: Store, exp_id: str, details: list[dict[str, Any]]) -> None:
    """Keep warm-start state a method returned (e.g. GP hyperparameters) for its next call."""
    hints = {k: d[k] for d in details for k in ("bo_state", "selected_law") if k in d}
    if hints:
        store.update_hints(exp_id, _jsonable(hints))


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj
