"""The law engine as a search method: fit the selected mixing law, optimise it, propose around it.

Which law: ``ctx.hints["selected_law"]`` (with ``ctx.hints["law_params"]`` when the fidelity report left
them, e.g. the ensemble's members and weights), else a quick 3-fold selection over every law here.
Which runs: all fidelities (normalised coordinates) for a law that models fidelity when several were
observed, otherwise the level nearest the fidelity asked for, as single-fidelity laws need.

Intervals (90%): the law's own calibrated posterior when it gives one (``provides_intervals``, e.g. the
GP of :mod:`mixing.laws.gp`); for every other law the split-conformal width of its 5-fold
cross-validation refits' out-of-fold errors on the objective.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from sklearn.base import clone

from mixing.conformal import conformal_metric_halfwidths, oof_predictions
from mixing.errors import NotEnoughDataError
from mixing.evaluation import evaluate_laws
from mixing.laws import UnknownLawError, law_spec, make_law
from mixing.laws.base import MixingLaw
from mixing.laws.ensemble import ENSEMBLE
from mixing.laws.gp import NORMAL_Q90
from mixing.laws.threads import single_threaded
from mixing.methods.base import SearchContext
from mixing.methods.common import (
    SAME_POINT_L1,
    best_candidate,
    chunked,
    exclude_taken,
    nearest_fidelity_rows,
    transfer_prior,
)
from mixing.optimize import candidate_pool, optimize_mixture
from mixing.outcomes import ResolvedConstraints, best_feasible_candidate, feasible_first, resolve
from mixing.problem import Candidates, Prediction, Problem, Proposal, Recommendation
from mixing.simplex import FloatArray
from mixing.transfer import TransferPrior, residual

CONFORMAL_FOLDS = 5
SELECTION_FOLDS = 3
#: Suggestions closer than this (L1) to one already chosen are skipped while others remain.
DIVERSITY_L1 = 0.05


@dataclass
class FittedLaw:
    """A law fitted for one call, with what is needed to predict the objective and its interval."""

    law: MixingLaw
    rows: np.ndarray
    #: Normalised fidelity coordinates to predict at (None for single-fidelity fits).
    at: FloatArray | None
    #: The raw fidelity the law predicts at: the one asked for when it models fidelity, else its runs' level.
    level: FloatArray
    halfwidth: float
    #: Conformal 90% half-width of each metric ``(k,)`` (NaN for laws with their own intervals).
    metric_halfwidth: FloatArray
    interval_source: str
    selection: dict[str, Any]
    #: The warm start's prior of the metrics; the law was fitted to what it leaves (None: no transfers used).
    transfer: TransferPrior | None = None

    def fidelity_rows(self, n: int) -> FloatArray | None:
        return None if self.at is None else np.repeat(self.at[None, :], n, axis=0)

    def metrics(self, mixtures: FloatArray) -> FloatArray:
        law = self.law.predict(mixtures, self.fidelity_rows(len(mixtures)))
        return law if self.transfer is None else law + self.transfer.predict(mixtures)

    def loss(self, ctx: SearchContext, mixtures: FloatArray) -> FloatArray:
        return ctx.problem.loss(self.metrics(mixtures))

    def halfwidths(self, problem: Problem, mixtures: FloatArray) -> FloatArray:
        """90% half-widths of the objective at each mixture."""
        if self.law.provides_intervals:
            std = self.law.aggregate_std(mixtures, self.fidelity_rows(len(mixtures)), problem.metric_weights)
            return NORMAL_Q90 * std
        return np.full(len(mixtures), self.halfwidth)

    def objective_intervals(self, problem: Problem, mixtures: FloatArray) -> tuple[FloatArray, FloatArray]:
        """The objective (user's orientation) and its 90% half-width ``(n,)`` each."""
        x = np.atleast_2d(np.asarray(mixtures, dtype=np.float64))
        return problem.objective(self.metrics(x)), self.halfwidths(problem, x)

    def metric_intervals(self, problem: Problem, mixtures: FloatArray,
                         columns: np.ndarray | None = None) -> tuple[FloatArray, FloatArray]:
        """Predicted values and 90% half-widths ``(n, c)`` of the metric ``columns`` (default: the
        constrained ones, which makes this an :data:`~mixing.outcomes.OutcomeModel`)."""
        cols = problem.constrained_metrics if columns is None else columns
        x = np.atleast_2d(np.asarray(mixtures, dtype=np.float64))
        values = self.metrics(x)[:, cols]
        if not self.law.provides_intervals:
            return values, np.broadcast_to(self.metric_halfwidth[cols], values.shape).copy()
        fid, k = self.fidelity_rows(len(x)), len(problem.metric_names)
        half = np.stack([NORMAL_Q90 * self.law.aggregate_std(x, fid, np.eye(k)[j]) for j in cols], axis=1)
        return values, half.reshape(values.shape)

    def outcomes(self, ctx: SearchContext) -> ResolvedConstraints:
        """The problem's outcome constraints resolved against this fit (see :mod:`mixing.outcomes`)."""
        return resolve(ctx.problem, ctx.observations, lambda m: self.metric_intervals(ctx.problem, m), self.level)

    def interval_fn(self, ctx: SearchContext) -> Callable[[FloatArray], tuple[FloatArray, FloatArray]]:
        def interval(mixtures: FloatArray) -> tuple[FloatArray, FloatArray]:
            loss, half = self.loss(ctx, mixtures), self.halfwidths(ctx.problem, mixtures)
            return loss - half, loss + half

        return interval

    def prediction(self, ctx: SearchContext, loss: float, half: float) -> Prediction:
        """Loss (lower is better) and half-width -> a prediction in the user's orientation."""
        value = ctx.problem.sign * loss
        return Prediction(value=float(value), lower=float(value - half), upper=float(value + half))


class LawMethod:
    name: ClassVar[str] = "law"
    #: The refit's choice of law (see the module docstring); without it a quick selection runs.
    model_hints: ClassVar[tuple[str, ...]] = ("selected_law", "law_params", "transfer_helps")

    def __init__(self, n_candidates: int = 100_000, top_k: int = 128) -> None:
        self.n_candidates = n_candidates
        self.top_k = top_k

    # ------------------------------------------------------------------------------------------ fitting
    @single_threaded
    def fit(self, ctx: SearchContext, fidelity: FloatArray | None = None) -> FittedLaw:
        problem, obs = ctx.problem, ctx.observations
        target = problem.fidelity.target if fidelity is None else np.asarray(fidelity, dtype=np.float64)
        law, selection = self._law(ctx, target)
        multi = problem.fidelity.n_axes > 0 and len(obs.distinct_fidelities()) > 1
        if law.uses_fidelity and multi:
            rows = np.arange(obs.n)
            fid = problem.fidelity.normalise(obs.fidelities)
            at: FloatArray | None = problem.fidelity.normalise(target)[0]
        else:
            rows = nearest_fidelity_rows(problem, obs, target, law.min_runs(problem.n_domains))
            fid, at = None, None
        need = law.min_runs(problem.n_domains)
        if len(rows) < need:
            raise NotEnoughDataError(f"law {law.name} needs completed runs", need, len(rows))
        x = obs.mixtures[rows]
        prior = self._transfer(ctx, target)
        y = residual(prior, x, obs.metrics[rows])
        f = None if fid is None else fid[rows]
        halfwidth, source = float("nan"), f"{law.name}_posterior_calibrated"
        metric_halfwidth = np.full(y.shape[1], np.nan)
        if not law.provides_intervals:
            (halfwidth, metric_halfwidth), source = self._conformal(ctx, law, x, f, y), "conformal_cv_refits"
        return FittedLaw(
            law=clone(law).fit(x, f, y),
            rows=rows,
            at=at,
            level=target if at is not None or problem.fidelity.n_axes == 0 else obs.fidelities[rows[0]],
            halfwidth=halfwidth,
            metric_halfwidth=metric_halfwidth,
            interval_source=source,
            selection=selection,
            transfer=prior if prior is not None and prior.any_used else None,
        )

    @staticmethod
    def _transfer(ctx: SearchContext, target: FloatArray) -> TransferPrior | None:
        """The warm start's prior of the metrics, unless the fidelity report found it does not help the law
        (``ctx.hints["transfer_helps"]``, :func:`mixing.evaluation.compare_transfer`); before any report,
        each metric keeps it where its leave-one-out error says so."""
        if ctx.hints.get("transfer_helps") is False:
            return None
        return transfer_prior(ctx.transfers, ctx.problem, ctx.observations, ctx.observations.metrics, target)

    def _law(self, ctx: SearchContext, target: FloatArray) -> tuple[MixingLaw, dict[str, Any]]:
        """The hinted law, else the winner of a quick cross-validated selection.

        An ``ensemble`` hint without its members and weights (``law_params``) is not followed: learning
        them again would cost more than the quick selection, which rebuilds them.
        """
        name = ctx.hints.get("selected_law")
        params = ctx.hints.get("law_params")
        if name and (name != ENSEMBLE or params):
            try:
                law = make_law(str(name), **dict(params or {}))
                return law, {"source": "hint", "law": law_spec(law)}
            except (UnknownLawError, TypeError):
                pass
        problem, obs = ctx.problem, ctx.observations
        rows = nearest_fidelity_rows(problem, obs, target, 8)
        if len(rows) < 8:
            raise NotEnoughDataError("law selection needs completed runs at one fidelity", 8, len(rows))
        report = evaluate_laws(
            None,
            obs.mixtures[rows],
            None,
            obs.metrics[rows],
            problem.metric_weights,
            goal_sign=problem.sign,
            folds=SELECTION_FOLDS,
            seed=int(ctx.rng.integers(2**31)),
        )
        if report.selected is None:
            raise NotEnoughDataError("no law could be fitted to the runs", 8, len(rows))
        entry = report.law(report.selected)
        law = make_law(report.selected, **entry.params)
        cv = entry.cv.get("from_metrics")
        return law, {
            "source": "quick_selection",
            "law": law_spec(law),
            "cv_spearman": None if cv is None else cv.spearman,
        }

    @staticmethod
    def _conformal(
        ctx: SearchContext, law: MixingLaw, x: FloatArray, f: FloatArray | None, y: FloatArray
    ) -> tuple[float, FloatArray]:
        """Conformal 90% half-widths of the objective and of each metric ``(k,)``, from one set of refits."""

        def fit_predict(train: np.ndarray, test: np.ndarray) -> FloatArray:
            fitted = clone(law).fit(x[train], None if f is None else f[train], y[train])
            return fitted.predict(x[test], None if f is None else f[test])

        oof = oof_predictions(fit_predict, len(x), CONFORMAL_FOLDS, int(ctx.rng.integers(2**31)))
        return conformal_metric_halfwidths(ctx.problem, oof, y)

    # ------------------------------------------------------------------------------------ the interface
    def recommend(self, ctx: SearchContext, candidates: FloatArray | None = None) -> Recommendation:
        problem = ctx.problem
        fitted = self.fit(ctx)
        resolved = fitted.outcomes(ctx)
        if candidates is None:
            opt = optimize_mixture(
                lambda m: fitted.loss(ctx, m),
                problem.constraints,
                prior=problem.prior,
                rng=ctx.rng,
                differentiable=fitted.law.differentiable,
                n_candidates=self.n_candidates,
                top_k=self.top_k,
                interval_fn=fitted.interval_fn(ctx),
            )
            mixture, value, optimizer = opt.mixture, opt.value, opt.details
            if resolved.active and resolved.probability(mixture[None, :])[0] < resolved.threshold:
                pool = candidate_pool(self.n_candidates, problem.constraints, problem.prior, ctx.rng)
                mixture, value = best_feasible_candidate(lambda m: fitted.loss(ctx, m), resolved, pool)
                optimizer = {**optimizer, "outcome_constrained_pool": len(pool)}
        elif resolved.active:
            mixture, value = best_feasible_candidate(lambda m: fitted.loss(ctx, m), resolved, candidates)
            optimizer = {"pool": len(candidates)}
        else:
            mixture, value = best_candidate(lambda m: fitted.loss(ctx, m), candidates)
            optimizer = {"pool": len(candidates)}
        half = float(fitted.halfwidths(problem, mixture[None, :])[0])
        return Recommendation(
            mixture=mixture,
            fidelity=problem.fidelity.target,
            predicted=fitted.prediction(ctx, value, half),
            method=self.name,
            n_runs=len(fitted.rows),
            details={
                "law": fitted.law.name,
                "selection": fitted.selection,
                "interval": fitted.interval_source,
                "interval_coverage": 0.9,
                "optimizer": optimizer,
                "fitted_on_fidelities": "all" if fitted.at is not None else "nearest",
                "transfer": None if fitted.transfer is None else fitted.transfer.details,
            },
            outcomes=resolved.report(mixture),
        )

    def suggest(
        self,
        ctx: SearchContext,
        count: int,
        fidelity: FloatArray | None = None,
        candidates: Candidates | None = None,
    ) -> list[Proposal]:
        """The predicted best point, then Thompson-style picks: each minimises the predicted loss plus
        noise of its own uncertainty, away from points already chosen, pending or observed."""
        problem = ctx.problem
        fid = problem.fidelity.cheapest() if fidelity is None else np.asarray(fidelity, dtype=np.float64)
        fitted = self.fit(ctx, fid)
        if candidates is not None:
            pool = candidates.mixtures
            pool_fid = np.where(np.isnan(candidates.fidelities), fid[None, :], candidates.fidelities)
        else:
            pool = candidate_pool(
                max(self.n_candidates // 4, 20 * count), problem.constraints, problem.prior, ctx.rng
            )
            pool_fid = np.repeat(fid[None, :], len(pool), axis=0)
        keep = exclude_taken(pool, pool_fid, ctx.observations) & problem.constraints.contains(pool)
        losses = chunked(lambda m: fitted.loss(ctx, m), pool)
        half = chunked(lambda m: fitted.halfwidths(problem, m), pool)
        resolved = fitted.outcomes(ctx)
        score = losses
        if resolved.active:
            score = feasible_first(losses, chunked(resolved.probability, pool), resolved.threshold)
        chosen = _thompson_picks(pool, score, half / NORMAL_Q90, keep, count, ctx.rng)
        return [
            Proposal(
                mixture=pool[i],
                fidelity=pool_fid[i],
                method=self.name,
                predicted=fitted.prediction(ctx, float(losses[i]), float(half[i])),
                details={
                    "law": fitted.law.name,
                    "pick": "best" if j == 0 else "perturbed",
                    "interval": fitted.interval_source,
                },
            )
            for j, i in enumerate(chosen)
        ]

    def predictor(self, ctx: SearchContext, fidelity: FloatArray | None = None) -> LawPredictor:
        return LawPredictor(self.fit(ctx, fidelity), ctx.problem)


@dataclass
class LawPredictor:
    """A fitted law answering predictions: per-metric values, the objective formed from them, intervals."""

    fitted: FittedLaw
    problem: Problem

    def predict(self, mixtures: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
        x = np.atleast_2d(np.asarray(mixtures, dtype=np.float64))
        metrics = self.fitted.metrics(x)
        return metrics, self.problem.objective(metrics), self.fitted.halfwidths(self.problem, x)


def _thompson_picks(
    pool: FloatArray,
    losses: FloatArray,
    sd: FloatArray,
    keep: np.ndarray,
    count: int,
    rng: np.random.Generator,
) -> list[int]:
    """First the predicted best, then minima of ``loss + sd * noise`` over points not near earlier picks.

    The exclusion radius halves whenever too few points remain, so diversity yields only when it must.
    """
    sd = np.where(np.isfinite(sd), sd, 0.0)
    allowed = keep.copy()
    chosen: list[int] = []
    radius = DIVERSITY_L1
    while len(chosen) < count and allowed.any():
        noise = sd * rng.standard_normal(len(pool)) if chosen else 0.0
        score = np.where(allowed, losses + noise, np.inf)
        i = int(np.argmin(score))
        chosen.append(i)
        near = np.abs(pool - pool[i]).sum(axis=1) < max(radius, SAME_POINT_L1)
        allowed &= ~near
        if not allowed.any() and len(chosen) < count and radius > SAME_POINT_L1:
            radius /= 2
            allowed = keep.copy()
            for j in chosen:
                allowed &= np.abs(pool - pool[j]).sum(axis=1) >= max(radius, SAME_POINT_L1)
    return chosen
