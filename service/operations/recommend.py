"""The recommendation: the best mixture at the target fidelity, stored per data version, or among given
candidates (computed, not stored)."""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from mixing.errors import NotEnoughDataError
from mixing.methods import resolve_recommender
from mixing.methods.design import best_observed
from mixing.problem import Recommendation
from service.errors import Conflict, ErrorCode
from service.jsonable import to_jsonable
from service.locks import experiment_lock
from service.operations.context import prediction_dict, search_context
from service.operations.proposing import store_hints
from service.store import Store
from service.store.models import Experiment

log = logging.getLogger("mixopt.recommend")


@dataclass(frozen=True)
class RecommendationResult:
    """A recommendation as stored (``payload``: mixture and fidelity in domain and axis order, prediction,
    method details) with what it was computed from."""

    payload: dict[str, Any]
    method: str
    n_runs: int
    data_version: int
    created_at: datetime


def current_recommendation(store: Store, exp: Experiment, seed: int | None, refresh: bool = False
                           ) -> RecommendationResult:
    """The stored recommendation, recomputed first when the data changed since it (or with ``refresh``).

    Raises :class:`Conflict` ``not_enough_data`` before any run completed.
    """
    prop = store.latest_recommendation(exp.id)
    if refresh or prop is None or prop.data_version != store.get_experiment(exp.id, exp.project).data_version:
        with experiment_lock(store.engine, exp.id, "recommend"):
            prop = store.latest_recommendation(exp.id)
            current = store.get_experiment(exp.id, exp.project).data_version
            if refresh or prop is None or prop.data_version != current:
                try:
                    recommend(store, exp.id, exp.project, seed=seed)
                except NotEnoughDataError as exc:
                    raise Conflict(f"no recommendation yet: {exc}", code=ErrorCode.not_enough_data) from exc
                prop = store.latest_recommendation(exp.id)
    assert prop is not None
    return RecommendationResult(prop.payload, prop.method, prop.n_runs, prop.data_version, prop.created_at)


def recommend_among(store: Store, exp: Experiment, method_name: str, seed: int | None,
                    candidates: np.ndarray) -> RecommendationResult:
    """The best of ``candidates`` (mixtures (n, d) in domain order) for the current data; stores nothing."""
    try:
        rec, data_version, payload = compute_recommendation(store, exp, method_name, seed, candidates)
    except NotEnoughDataError as exc:
        raise Conflict(f"no recommendation yet: {exc}", code=ErrorCode.not_enough_data) from exc
    return RecommendationResult(payload, rec.method, rec.n_runs, data_version, datetime.now(UTC))


def recommend(store: Store, experiment_id: str, project: str = "default", method_name: str = "auto",
              seed: int | None = None, job_id: str | None = None) -> dict[str, Any]:
    """Compute and store the recommendation for the experiment's current data."""
    exp = store.get_experiment(experiment_id, project)
    rec, data_version, payload = compute_recommendation(store, exp, method_name, seed)
    prop = store.save_recommendation(exp.id, rec.method, data_version, rec.n_runs, payload, job_id)
    store_hints(store, exp.id, [rec.details])
    return {"proposal_id": prop.id, "method": rec.method, "data_version": data_version}


def compute_recommendation(store: Store, exp: Experiment, method_name: str = "auto", seed: int | None = None,
                           candidates: np.ndarray | None = None) -> tuple[Recommendation, int, dict[str, Any]]:
    """(recommendation, data version it saw, its stored form) for the current data; stores nothing.

    ``candidates`` (mixtures, in domain order) restricts the choice to them. A model that cannot fit yet,
    or whose answer is not finite, gives way to the best observed run. With outcome constraints the answer
    is feasible with the spec's probability, or :class:`~mixing.outcomes.NoFeasibleMixtureError` (a 409
    ``no_feasible_mixture``): an infeasible mixture is never returned as the answer.
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
        "details": to_jsonable(rec.details),
        "outcomes": to_jsonable([dataclasses.asdict(o) for o in rec.outcomes]),
        "duration_s": time.perf_counter() - t0,
    }
    return rec, snap.data_version, payload
