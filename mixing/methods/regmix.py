"""RegMix as a search method (Liu et al. 2024): regress the objective on the mixture with LightGBM,
simulate 100,000 prior-shaped mixtures, and average the best k.

Per-metric regressors are fitted and combined with the objective weights, so a weighted-mean objective is
predicted from its parts. Intervals are split-conformal from 5-fold out-of-fold residuals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from mixing.conformal import conformal_metric_halfwidths, oof_predictions
from mixing.errors import NoFeasibleMixtureError, NotEnoughDataError
from mixing.laws.regmix import RegMixLightGBM
from mixing.methods.base import SearchContext
from mixing.methods.common import best_candidate, exclude_taken, nearest_fidelity_rows
from mixing.outcomes import (
    ResolvedConstraints,
    best_feasible_candidate,
    feasible_first,
    resolve,
)
from mixing.problem import Candidates, Prediction, Problem, Proposal, Recommendation
from mixing.sampling import prior_candidates
from mixing.search import average_top_k
from mixing.simplex import FloatArray

MIN_RUNS = 8


@dataclass
class FittedRegMix:
    law: RegMixLightGBM
    halfwidth: float
    #: Conformal 90% half-width of each metric ``(k,)``.
    metric_halfwidth: FloatArray
    rows: np.ndarray
    fidelity: FloatArray

    def loss(self, ctx: SearchContext, mixtures: FloatArray) -> FloatArray:
        return ctx.problem.loss(self.law.predict(mixtures))

    def metrics(self, mixtures: FloatArray) -> FloatArray:
        return self.law.predict(np.atleast_2d(mixtures))

    def halfwidths(self, problem: Problem, mixtures: FloatArray) -> FloatArray:
        """90% half-widths of the objective at each mixture (one conformal width for all)."""
        return np.full(len(np.atleast_2d(mixtures)), self.halfwidth)

    def objective_intervals(self, problem: Problem, mixtures: FloatArray) -> tuple[FloatArray, FloatArray]:
        """The objective (user's orientation) and its 90% half-width ``(n,)`` each."""
        return problem.objective(self.metrics(mixtures)), self.halfwidths(problem, mixtures)

    def metric_intervals(self, problem: Problem, mixtures: FloatArray,
                         columns: np.ndarray | None = None) -> tuple[FloatArray, FloatArray]:
        """Predicted values and 90% half-widths ``(n, c)`` of the metric ``columns`` (default: the
        constrained ones, which makes this an :data:`~mixing.outcomes.OutcomeModel`)."""
        cols = problem.constrained_metrics if columns is None else columns
        values = self.metrics(mixtures)[:, cols]
        return values, np.broadcast_to(self.metric_halfwidth[cols], values.shape).copy()

    def outcomes(self, ctx: SearchContext) -> ResolvedConstraints:
        """The problem's outcome constraints resolved against this fit (see :mod:`mixing.outcomes`)."""
        return resolve(ctx.problem, ctx.observations, lambda m: self.metric_intervals(ctx.problem, m),
                       self.fidelity)

    def prediction(self, ctx: SearchContext, loss: float) -> Prediction:
        value = ctx.problem.sign * loss
        return Prediction(value=float(value), lower=float(value - self.halfwidth),
                          upper=float(value + self.halfwidth))


class RegMixMethod:
    name: ClassVar[str] = "regmix"
    model_hints: ClassVar[tuple[str, ...]] = ()

    def __init__(self, n_candidates: int = 100_000, top_k: int = 128, n_estimators: int = 1000) -> None:
        self.n_candidates = n_candidates
        self.top_k = top_k
        self.n_estimators = n_estimators

    def fit(self, ctx: SearchContext, fidelity: FloatArray | None = None) -> FittedRegMix:
        obs, problem = ctx.observations, ctx.problem
        target = problem.fidelity.target if fidelity is None else fidelity
        rows = nearest_fidelity_rows(problem, obs, target, MIN_RUNS)
        if len(rows) < MIN_RUNS:
            raise NotEnoughDataError("regmix needs completed runs at one fidelity", MIN_RUNS, len(rows))
        x, y = obs.mixtures[rows], obs.metrics[rows]
        seed = int(ctx.rng.integers(2**31))

        def make() -> RegMixLightGBM:
            return RegMixLightGBM(n_estimators=self.n_estimators, seed=seed)

        def fit_predict(train: np.ndarray, test: np.ndarray) -> FloatArray:
            return make().fit(x[train], None, y[train]).predict(x[test])

        oof = oof_predictions(fit_predict, len(rows), 5, seed)
        halfwidth, metric_halfwidth = conformal_metric_halfwidths(problem, oof, y)
        level = obs.fidelities[rows[0]] if problem.fidelity.n_axes else np.zeros(0)
        return FittedRegMix(make().fit(x, None, y), halfwidth, metric_halfwidth, rows, level)

    def recommend(self, ctx: SearchContext, candidates: FloatArray | None = None) -> Recommendation:
        fitted = self.fit(ctx)
        resolved = fitted.outcomes(ctx)
        if candidates is None:
            cands = prior_candidates(self.n_candidates, ctx.problem.constraints, ctx.problem.prior, ctx.rng)
            if resolved.active:
                cands = cands[resolved.probability(cands) >= resolved.threshold]
            if len(cands) == 0:
                raise NoFeasibleMixtureError(0.0, resolved.threshold)
            top = average_top_k(lambda m: fitted.loss(ctx, m), cands, ctx.problem.constraints, self.top_k)
            mixture = top.mixture
            if resolved.probability(mixture[None, :])[0] < resolved.threshold:  # the average left the set
                mixture = top.top_mixtures[0]
            loss = float(fitted.loss(ctx, mixture[None, :])[0])
        elif resolved.active:
            mixture, loss = best_feasible_candidate(lambda m: fitted.loss(ctx, m), resolved, candidates)
        else:
            mixture, loss = best_candidate(lambda m: fitted.loss(ctx, m), candidates)
        return Recommendation(
            mixture=mixture, fidelity=ctx.problem.fidelity.target, predicted=fitted.prediction(ctx, loss),
            method=self.name, n_runs=len(fitted.rows),
            details={"fitted_at_fidelity": fitted.fidelity.tolist(), "top_k": self.top_k,
                     "n_candidates": self.n_candidates if candidates is None else len(candidates),
                     "conformal_halfwidth_90": fitted.halfwidth},
            outcomes=resolved.report(mixture),
        )

    def suggest(self, ctx: SearchContext, count: int, fidelity: FloatArray | None = None,
                candidates: Candidates | None = None) -> list[Proposal]:
        problem = ctx.problem
        fid = problem.fidelity.cheapest() if fidelity is None else fidelity
        fitted = self.fit(ctx, fid)
        if candidates is not None:
            pool, pool_fid = candidates.mixtures, _fill_fidelity(candidates.fidelities, fid)
        else:
            pool = prior_candidates(max(self.n_candidates // 4, 20 * count), problem.constraints, problem.prior,
                                    ctx.rng)
            pool_fid = np.repeat(fid[None, :], len(pool), axis=0)
        losses = fitted.loss(ctx, pool)
        keep = exclude_taken(pool, pool_fid, ctx.observations)
        resolved = fitted.outcomes(ctx)
        score = losses
        if resolved.active:
            score = feasible_first(losses, resolved.probability(pool), resolved.threshold)
        chosen = _diverse_best(pool, score, keep, count)
        return [Proposal(mixture=pool[i], fidelity=pool_fid[i], method=self.name,
                         predicted=fitted.prediction(ctx, float(losses[i]))) for i in chosen]

    def predictor(self, ctx: SearchContext, fidelity: FloatArray | None = None) -> RegMixPredictor:
        return RegMixPredictor(self.fit(ctx, fidelity), ctx.problem)


@dataclass
class RegMixPredictor:
    """Fitted per-metric regressors, the objective formed from them and the conformal half-width."""

    fitted: FittedRegMix
    problem: Problem

    def predict(self, mixtures: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
        metrics = self.fitted.law.predict(mixtures)
        return metrics, self.problem.objective(metrics), np.full(len(mixtures), self.fitted.halfwidth)


def _fill_fidelity(fidelities: FloatArray, default: FloatArray) -> FloatArray:
    return np.where(np.isnan(fidelities), default[None, :], fidelities)


def _diverse_best(pool: FloatArray, losses: FloatArray, keep: np.ndarray, count: int) -> list[int]:
    """The best points, each at least a small L1 distance from those already chosen.

    Pure exploitation would hand out ``count`` near-copies of the arg-min; the radius halves until enough
    distinct points are found, so diversity gives way to quality only when it must.
    """
    order = [int(i) for i in np.argsort(losses) if keep[i]]
    radius = 0.2
    while True:
        chosen: list[int] = []
        for i in order:
            if all(np.abs(pool[i] - pool[j]).sum() >= radius for j in chosen):
                chosen.append(i)
                if len(chosen) == count:
                    return chosen
        if radius < 1e-6:
            return chosen
        radius /= 2
