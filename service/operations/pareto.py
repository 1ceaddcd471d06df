"""The predicted trade-off front of an experiment (objective against its constrained metrics), computed for
the current data and not stored."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mixing.errors import FitError, NotEnoughDataError
from mixing.methods.base import SearchContext
from mixing.methods.law import LawMethod
from mixing.methods.regmix import RegMixMethod
from mixing.optimize import candidate_pool
from mixing.pareto import Front, MetricModel, predicted_front
from service.errors import Conflict, ErrorCode
from service.operations.context import search_context
from service.store import Store
from service.store.models import Experiment


def _bo_front(ctx: SearchContext) -> MetricModel:
    from mixing.methods.bo import BayesOptMethod  # torch loads on first use, as the method registry does

    return BayesOptMethod().front_model(ctx)


#: How each method fits the models of a front's axes at the target.
FRONT_MODELS: dict[str, Callable[[SearchContext], MetricModel]] = {
    "law": lambda ctx: LawMethod().fit(ctx),
    "regmix": lambda ctx: RegMixMethod().fit(ctx),
    "bo": _bo_front,
}


@dataclass(frozen=True)
class ParetoResult:
    """The front, the completed-run ids its observed rows belong to, and what it was computed from."""

    front: Front
    run_ids: list[str]
    method: str
    n_candidates: int
    n_runs: int
    data_version: int


def pareto_front(store: Store, exp: Experiment, method_name: str, n_candidates: int, seed: int | None
                 ) -> ParetoResult:
    """Fit ``method_name`` (``law``, ``regmix`` or ``bo``) at the target and return the non-dominated predictions over
    ``n_candidates`` feasible mixtures, with the observed runs. :class:`Conflict` ``not_enough_data`` before a
    model can fit; :class:`FitError` rather than serve a non-finite prediction."""
    ctx, snap = search_context(store, exp, seed)
    try:
        fitted = FRONT_MODELS[method_name](ctx)
    except NotEnoughDataError as exc:
        raise Conflict(f"no front yet: {exc}", code=ErrorCode.not_enough_data) from exc
    problem = ctx.problem
    pool = candidate_pool(n_candidates, problem.constraints, problem.prior, ctx.rng)
    front = predicted_front(ctx, fitted, pool)
    if not all(np.isfinite(a).all() for a in (front.values, front.lower, front.upper, front.feasibility)):
        raise FitError(f"the {method_name} model predicts non-finite values on the front")
    return ParetoResult(front, [snap.completed_ids[i] for i in front.observed_rows], method_name, len(pool),
                        ctx.observations.n, snap.data_version)
