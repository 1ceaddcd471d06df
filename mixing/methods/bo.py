"""Multi-fidelity Bayesian optimisation as a search method (``bo``), and its single-fidelity baseline.

``bo`` chooses both the mixture and the fidelity of every next run by information about the target-scale
optimum per unit of compute (see :mod:`mixing.bo`); ``single-fidelity-bo`` is the same machinery restricted
to target-fidelity runs, the baseline that multi-fidelity must beat on cost.

Trust in the proxies. Before relying on cheap runs, ``bo`` buys a few target-fidelity runs of its own
(:meth:`BayesOptMethod.target_design`): the mixtures its model predicts best there, and mixtures spread out
among the target level's. With those, it measures how well each cheaper level ranks the mixtures run at
the target (:func:`mixing.bo.engine.level_trust`). If every cheaper level falls below :data:`TRUST_MIN`,
the proxies mislead: suggestions *and* the recommendation come from a GP on the target runs alone (the
recommendation with the usual guard), so ``bo`` behaves like single-fidelity BO on every target run it has
bought and buys no more cheap runs while the measured trust stays low. What changes is which levels are
proposed, not the acquisition's credit for a cheap run: capping that credit by the measured trust made
``bo`` slower on the pools it was meant to help (``bench/RESULTS.md``).

Outcome constraints (:mod:`mixing.outcomes`): one GP per constrained metric, on every run at every level
with the objective's kernel, judges them at the target. Suggestions weight each run's information per unit
cost by the probability that its mixture is feasible at the target (the constrained acquisition; the
factor is BoTorch's probability of feasibility, a test checks it against ``LogConstrainedExpectedImprovement``);
the recommendation is the posterior-mean optimum among mixtures feasible with the required probability.

Trade-offs (``problem.trade_offs``): one GP per trade-off metric, over every level like the constraints'. Suggestions
then buy the runs that most improve the hypervolume of the target-level front of (objective, trade-offs) per unit
cost, times the probability of feasibility (:class:`mixing.bo.engine.FrontAcquisition`); the recommendation is
unchanged, the best feasible objective. While the proxies are distrusted, suggestions stay single-objective (the
target-only fit has no trade-off GPs).

Warm start: the GP hyperparameters of the previous fit arrive in ``ctx.hints["bo_state"]`` and the new ones
leave in ``details["bo_state"]`` of every proposal and recommendation (a small JSON-able dict; the target-only
fit's, when there is one, under its key ``"target_only"``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from mixing.bo import engine
from mixing.bo.cost import fit_cost_model
from mixing.bo.device import bo_device, cpu_threads
from mixing.bo.engine import BOSettings, Surrogate
from mixing.errors import UnsupportedFidelityError
from mixing.methods.base import SearchContext
from mixing.methods.common import transfer_prior
from mixing.methods.design import DesignMethod
from mixing.outcomes import Z90, ResolvedConstraints, resolve
from mixing.pareto import front_axes
from mixing.problem import (
    Candidates,
    FidelitySpace,
    Observations,
    Prediction,
    Problem,
    Proposal,
    Recommendation,
    same_fidelity,
)
from mixing.simplex import FloatArray
from mixing.transfer import TransferPrior

#: Measured trust (Spearman) below which a cheaper level is taken to mislead (see the module docstring).
#: Not tuned. Measured only on target runs that ``bo`` chose by the proxies, the trust did not separate
#: agreeing from misleading proxies (-0.3 to 0.45 on a RegMix pool whose cheap level has rank correlation
#: 0.95 with the target): near the proxies' optimum every ranking is flat. The spread-out runs of
#: :meth:`BayesOptMethod.target_design` are what give the measurement range.
TRUST_MIN = 0.5
#: Key of the target-only fit's hyperparameters inside ``bo_state``.
TARGET_ONLY = "target_only"
#: Key of the outcome-constraint GPs' hyperparameters (a list, in constraint order) inside ``bo_state``.
OUTCOMES = "outcomes"
#: Key of the trade-off metrics' GP hyperparameters (by metric column, as a string) inside ``bo_state``.
TRADE_OFFS = "trade_offs"
#: Target-fidelity runs bought before the proxies are relied on (see :meth:`BayesOptMethod.target_design`):
#: as many as the trust needs to be measured at all.
TARGET_DESIGN = engine.MIN_TRUST_RUNS
#: How many of those are the mixtures the multi-fidelity model predicts best at the target.
TARGET_DESIGN_BEST = 2


@dataclass
class FittedBO:
    """The multi-fidelity fit, the measured trust per level, and the target-only fit when proxies mislead."""

    surrogate: Surrogate
    obs: Observations
    trust: dict[bytes, float]
    #: The target-only fit and its runs; None unless every cheaper level is distrusted.
    target: tuple[Surrogate, Observations] | None
    state: dict[str, Any]
    #: One GP per constrained metric (all runs, every level), and the outcome constraints judged by them
    #: at the target.
    outcome_fits: list[Surrogate]
    outcomes: ResolvedConstraints
    #: The warm start's prior mean (used only where it helped by leave-one-out), None without transfers.
    transfer: TransferPrior | None = None

    @property
    def distrusted(self) -> bool:
        """Every cheaper level measured, and every one below :data:`TRUST_MIN`."""
        return bool(self.trust) and max(self.trust.values()) < TRUST_MIN

    def for_target(self) -> tuple[Surrogate, Observations]:
        """The model that recommends: the target-only one if the proxies mislead."""
        return self.target or (self.surrogate, self.obs)


@dataclass
class BOPredictor:
    """The GP posterior at one fidelity (model inputs). The GP models the aggregate objective only, so
    no per-metric values are returned."""

    surrogate: Surrogate
    fidelity: FloatArray
    interval_z: float
    #: Torch CPU threads for predictions (the fitting call's :attr:`SearchContext.compute`).
    threads: int

    def predict(self, mixtures: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
        with cpu_threads(self.threads):
            mean, sd = self.surrogate.predict(mixtures, self.fidelity)
        return np.zeros((len(mixtures), 0)), self.surrogate.problem.sign * mean, self.interval_z * sd


@dataclass
class BOFront:
    """BO's GPs at the target, as a :class:`~mixing.pareto.MetricModel`: the objective's and one per metric
    axis of the front (``fits`` by metric column); half-widths are the 90% ones of the Gaussian posterior."""

    surrogate: Surrogate
    fits: dict[int, Surrogate]
    at: FloatArray
    threads: int

    def objective_intervals(self, problem: Problem, mixtures: FloatArray) -> tuple[FloatArray, FloatArray]:
        with cpu_threads(self.threads):
            mean, sd = self.surrogate.predict(np.atleast_2d(mixtures), self.at)
        return problem.sign * mean, Z90 * sd

    def metric_intervals(self, problem: Problem, mixtures: FloatArray,
                         columns: np.ndarray | None = None) -> tuple[FloatArray, FloatArray]:
        cols = problem.constrained_metrics if columns is None else columns
        with cpu_threads(self.threads):
            return engine.outcome_model([self.fits[int(j)] for j in cols], self.at)(mixtures)


class BayesOptMethod:
    """Cost-aware multi-fidelity BO; with no fidelity axes it is plain single-fidelity BO."""

    name: ClassVar[str] = "bo"
    #: The previous fit's GP hyperparameters: the warm start changes what the next fit converges to.
    model_hints: ClassVar[tuple[str, ...]] = ("bo_state",)

    def __init__(self, settings: BOSettings | None = None) -> None:
        self.settings = settings or BOSettings()

    def view(self, ctx: SearchContext) -> tuple[Problem, Observations]:
        """The problem and runs the model sees (all of them here; narrowed by the baseline)."""
        return ctx.problem, ctx.observations

    def fit(self, ctx: SearchContext, with_target_only: bool = True) -> FittedBO:
        """The multi-fidelity fit and the measured trust; the target-only fit too when every cheaper level
        misleads and ``with_target_only`` (suggestions and recommendations use it; predictions do not)."""
        problem, obs = self.view(ctx)
        state = ctx.hints.get("bo_state") or {}
        device = bo_device(ctx.compute.device)
        loss = problem.loss(obs.metrics)
        prior = transfer_prior(ctx.transfers, problem, obs, loss[:, None])
        surrogate = engine.fit_surrogate(problem, obs, device, ctx.rng, state, self.settings)
        mean = None
        if prior is not None and prior.any_used:
            # The GP with the transfer prior as its mean, kept only if it predicts the better half of the own
            # runs better (exact leave-one-out): the search is decided among good mixtures, and a source
            # whose objective agrees globally but has its optimum elsewhere misleads exactly there.
            warm = engine.fit_surrogate(problem, obs, device, ctx.rng, state, self.settings, prior=prior)
            finite = loss[np.isfinite(loss)]
            good = finite <= np.median(finite)
            errors = {"with": warm.gp.loo_mse(good), "without": surrogate.gp.loo_mse(good)}
            prior.details["gp_loo_mse_better_half"] = errors
            if errors["with"] < errors["without"]:
                surrogate, mean = warm, prior
            else:
                prior.used[:] = False
                prior.details["used"] = prior.used.tolist()
        trust = engine.level_trust(surrogate, obs)
        fits = engine.fit_outcomes(problem, obs, device, ctx.rng, state.get(OUTCOMES), self.settings)
        outcomes = resolve(problem, obs, engine.outcome_model(fits, problem.fidelity.target))
        kept = {k: state[k] for k in (TARGET_ONLY,) if k in state}
        if fits:
            kept[OUTCOMES] = [f.gp.state for f in fits]
        fitted = FittedBO(surrogate, obs, trust, None, {**surrogate.gp.state, **kept}, fits, outcomes, prior)
        if not with_target_only or not fitted.distrusted:
            return fitted
        t_problem, t_obs = target_view(problem, obs)
        t_fit = engine.fit_surrogate(t_problem, t_obs, device, ctx.rng, state.get(TARGET_ONLY), self.settings,
                                     prior=mean)
        return dataclasses.replace(fitted, target=(t_fit, t_obs), state={**fitted.state, TARGET_ONLY: t_fit.gp.state})

    def suggest(
        self,
        ctx: SearchContext,
        count: int,
        fidelity: FloatArray | None = None,
        candidates: Candidates | None = None,
    ) -> list[Proposal]:
        fixed = self.fixed_fidelity(ctx, fidelity)
        with cpu_threads(ctx.compute.threads):
            fitted = self.fit(ctx)
            design = self.target_design(ctx, fitted, fixed, count, candidates)
            ctx = _with_pending(ctx, design)
            at: FloatArray | None
            if fitted.target is not None:  # the proxies mislead: search at the target, on its runs alone
                surrogate, obs = fitted.target
                pool = None if candidates is None else target_pool(ctx.problem, candidates)
                obs = target_view(ctx.problem, ctx.observations)[1]
                at = np.zeros((1, 0))
            else:
                surrogate, obs = fitted.surrogate, self.view(ctx)[1]
                pool = None if candidates is None else self.pool(ctx, candidates)
                at = fixed
            problem = surrogate.problem
            levels = engine.fidelity_levels(problem, obs, at)
            cost_model = fit_cost_model(obs.fidelities, obs.costs, problem.declared_costs)
            front = None
            if ctx.problem.trade_offs and fitted.target is None:
                fits = self.metric_fits(ctx, fitted, [t.metric for t in ctx.problem.trade_offs])
                front = engine.FrontAcquisition([fits[t.metric] for t in ctx.problem.trade_offs],
                                                tuple(t.minimize for t in ctx.problem.trade_offs),
                                                ctx.problem.feasibility_probability)
                fitted.state[TRADE_OFFS] = {str(j): f.gp.state for j, f in fits.items()
                                            if j not in ctx.problem.constrained_metrics}
            picks = engine.suggest(
                surrogate, obs, count - len(design), levels, cost_model, ctx.rng, self.settings, pool,
                fitted.outcomes.probability if fitted.outcomes.active else None, front,
            )
        common = {
            **self._details(surrogate, fitted),
            "cost_model": cost_model.source,
            "fidelity_levels": levels.tolist(),
        }
        to_target = fitted.target is not None
        return [
            dataclasses.replace(p, details={**common, "target_design": True}) for p in design
        ] + [
            Proposal(
                mixture=p.mixture,
                fidelity=ctx.problem.fidelity.target.copy() if to_target else self.proposed_fidelity(ctx, p.fidelity),
                method=self.name,
                predicted=self._prediction(problem, p.mean, p.sd),
                details={
                    **common,
                    "expected_hypervolume_improvement" if front else "information_nats": p.information,
                    "utility": p.utility,
                    "predicted_cost": p.cost,
                },
            )
            for p in picks
        ]

    def target_design(
        self, ctx: SearchContext, fitted: FittedBO, fixed: FloatArray | None, count: int,
        candidates: Candidates | None,
    ) -> list[Proposal]:
        """Target-fidelity runs that the search buys early, to judge its proxies before it relies on them.

        Up to :data:`TARGET_DESIGN` runs at the target (completed and pending together), whenever the
        caller leaves the fidelity open and the cheaper runs have cost as much as one target run (by the
        cost model): the insurance against misleading proxies is then at most what was spent on them.
        First the :data:`TARGET_DESIGN_BEST` mixtures the multi-fidelity model predicts best there, then
        mixtures spread out among the target level's. The predicted best are what the proxies vouch for:
        if they agree with the target these are good runs to have (and the recommendation's guard then
        has a good measured mixture to compare with); if they mislead, this is where it shows most. The
        spread-out runs measure the trust (:func:`mixing.bo.engine.level_trust`) where the ranking has
        range -- near the proxies' optimum a misleading and an agreeing proxy rank mixtures about
        equally -- and they are what single-fidelity BO's own design would have bought. While the target's
        cost is a forecast (:meth:`mixing.bo.cost.CostModel.known`), one run at a time.
        """
        problem, obs = ctx.problem, ctx.observations
        if fixed is not None or self.view(ctx)[0].fidelity.n_axes == 0:
            return []
        target = problem.fidelity.target
        pending = _at(obs.pending_fidelities, target)
        have = int(obs.at_fidelity(target).sum() + pending.sum())
        want = min(count, TARGET_DESIGN - have)
        cost = fit_cost_model(obs.fidelities, obs.costs, problem.declared_costs)
        if not cost.known(target[None])[0]:
            # A forecast along the axes can be off several-fold either way (a target run on more tokens, or
            # timed on other hardware): one run measures it, and the next batch re-checks the trigger.
            want = min(want, 1 - int(pending.sum()))
        cheap = ~obs.at_fidelity(target)
        if want <= 0 or cost(obs.fidelities[cheap]).sum() < cost(target[None])[0]:
            return []
        if candidates is not None:
            rows = np.all(np.isnan(candidates.fidelities), axis=1) | _at(candidates.fidelities, target)
            candidates = Candidates(candidates.mixtures[rows], candidates.fidelities[rows])
        best = engine.predicted_best(
            fitted.surrogate,
            obs,
            min(want, max(TARGET_DESIGN_BEST - have, 0)),
            ctx.rng,
            self.settings,
            None if candidates is None else candidates.mixtures,
        )
        chosen = [Proposal(mixture=w, fidelity=target.copy(), method=self.name) for w in best]
        at_target = _with_pending(
            dataclasses.replace(
                ctx,
                observations=dataclasses.replace(
                    obs.completed_subset(obs.at_fidelity(target)),
                    pending_mixtures=obs.pending_mixtures[pending],
                    pending_fidelities=obs.pending_fidelities[pending],
                ),
            ),
            chosen,
        )
        spread = DesignMethod().suggest(at_target, want - len(chosen), target, candidates) if want > len(chosen) else []
        return chosen + [dataclasses.replace(p, method=self.name) for p in spread]

    def recommend(self, ctx: SearchContext, candidates: FloatArray | None = None) -> Recommendation:
        with cpu_threads(ctx.compute.threads):
            fitted = self.fit(ctx)
            surrogate, obs = fitted.for_target()
            mixture, mean, sd = engine.recommend(surrogate, obs, ctx.rng, self.settings, candidates, fitted.outcomes)
            outcomes = fitted.outcomes.report(mixture)
        return Recommendation(
            mixture=mixture,
            fidelity=ctx.problem.fidelity.target.copy(),
            predicted=self._prediction(surrogate.problem, mean, sd),
            method=self.name,
            n_runs=fitted.obs.n,
            details={**self._details(surrogate, fitted), "posterior_sd": sd},
            outcomes=outcomes,
        )

    def predictor(self, ctx: SearchContext, fidelity: FloatArray | None = None) -> BOPredictor:
        """The GP's posterior at ``fidelity``; unset fidelity axes (NaN) are taken at the target, where a
        recommendation is made."""
        target = ctx.problem.fidelity.target
        fid = target if fidelity is None else np.where(np.isnan(fidelity), target, fidelity)
        at = self.model_fidelity(ctx, fid)
        with cpu_threads(ctx.compute.threads):
            surrogate = self.fit(ctx, with_target_only=False).surrogate
        return BOPredictor(surrogate, at, self.settings.interval_z, ctx.compute.threads)

    def front_model(self, ctx: SearchContext) -> BOFront:
        """The GPs a trade-off front needs (:func:`mixing.pareto.predicted_front`): the objective's, the
        constrained metrics', and one more per metric axis of the front, all over every fidelity."""
        problem = self.view(ctx)[0]
        with cpu_threads(ctx.compute.threads):
            fitted = self.fit(ctx, with_target_only=False)
            fits = self.metric_fits(ctx, fitted, [a.metric for a in front_axes(problem) if a.metric is not None])
        return BOFront(fitted.surrogate, fits, problem.fidelity.target, ctx.compute.threads)

    def metric_fits(self, ctx: SearchContext, fitted: FittedBO, columns: list[int]) -> dict[int, Surrogate]:
        """A GP over every fidelity per metric column: the outcome constraint's where the metric has one,
        else a new fit (warm-started from ``bo_state``'s :data:`TRADE_OFFS`), keyed by column."""
        problem, obs = self.view(ctx)
        fits = {c.metric: f for c, f in zip(problem.outcome_constraints, fitted.outcome_fits, strict=True)}
        states = (ctx.hints.get("bo_state") or {}).get(TRADE_OFFS) or {}
        device = bo_device(ctx.compute.device)
        for j in columns:
            if j not in fits:
                fits[j] = engine.fit_surrogate(problem, obs, device, ctx.rng, states.get(str(j)), self.settings,
                                               values=obs.metrics[:, j])
        return fits

    def model_fidelity(self, ctx: SearchContext, fidelity: FloatArray) -> FloatArray:
        """A fidelity as the model's inputs see it (all axes here; none for the single-fidelity view)."""
        return fidelity

    def fixed_fidelity(self, ctx: SearchContext, fidelity: FloatArray | None) -> FloatArray | None:
        return fidelity

    def pool(self, ctx: SearchContext, candidates: Candidates) -> tuple[FloatArray, FloatArray]:
        return candidates.mixtures, candidates.fidelities

    def proposed_fidelity(self, ctx: SearchContext, fidelity: FloatArray) -> FloatArray:
        return np.asarray(fidelity, dtype=np.float64).copy()

    def _prediction(self, problem: Problem, mean: float, sd: float) -> Prediction:
        """Loss-space (mean, sd) as a central interval in the user's orientation of the objective."""
        half = self.settings.interval_z * sd
        a, b = problem.sign * (mean - half), problem.sign * (mean + half)
        return Prediction(value=problem.sign * mean, lower=min(a, b), upper=max(a, b))

    def _details(self, surrogate: Surrogate, fitted: FittedBO) -> dict[str, Any]:
        fidelity = fitted.surrogate.problem.fidelity
        return {
            "bo_state": fitted.state,
            "device": str(surrogate.device),
            "encoding": surrogate.encoding,
            "fit": surrogate.gp.info,
            # measured trust per cheaper level, keyed by its fidelity values
            "level_trust": [
                {"fidelity": np.frombuffer(k, dtype=np.float64).reshape(fidelity.n_axes).tolist(), "spearman": v}
                for k, v in fitted.trust.items()
            ],
            "proxies_distrusted": fitted.distrusted,
            "transfer": None if fitted.transfer is None else fitted.transfer.details,
        }


class SingleFidelityBayesOptMethod(BayesOptMethod):
    """BO on target-fidelity runs only, proposing only at the target fidelity (the replay baseline)."""

    name: ClassVar[str] = "single-fidelity-bo"

    def view(self, ctx: SearchContext) -> tuple[Problem, Observations]:
        return target_view(ctx.problem, ctx.observations)

    def fixed_fidelity(self, ctx: SearchContext, fidelity: FloatArray | None) -> FloatArray | None:
        if fidelity is not None:
            _require_target(ctx, fidelity, "proposes")
        return None

    def model_fidelity(self, ctx: SearchContext, fidelity: FloatArray) -> FloatArray:
        _require_target(ctx, fidelity, "predicts")
        return np.zeros(0)

    def pool(self, ctx: SearchContext, candidates: Candidates) -> tuple[FloatArray, FloatArray]:
        return target_pool(ctx.problem, candidates)

    def proposed_fidelity(self, ctx: SearchContext, fidelity: FloatArray) -> FloatArray:
        return ctx.problem.fidelity.target.copy()


def target_view(problem: Problem, obs: Observations) -> tuple[Problem, Observations]:
    """The problem without fidelity axes and the runs (completed and pending) made at its target."""
    target = problem.fidelity.target
    rows = obs.at_fidelity(target)
    pending = _at(obs.pending_fidelities, target)
    d = problem.n_domains
    return (
        dataclasses.replace(problem, fidelity=FidelitySpace()),
        Observations(
            obs.mixtures[rows],
            np.zeros((int(rows.sum()), 0)),
            obs.metrics[rows],
            obs.costs[rows],
            obs.pending_mixtures[pending].reshape(-1, d),
            np.zeros((int(pending.sum()), 0)),
        ),
    )


def target_pool(problem: Problem, candidates: Candidates) -> tuple[FloatArray, FloatArray]:
    """Pool rows whose fidelity is unset or the target, for the problem without fidelity axes."""
    rows = np.all(np.isnan(candidates.fidelities), axis=1) | _at(candidates.fidelities, problem.fidelity.target)
    return candidates.mixtures[rows], np.zeros((int(rows.sum()), 0))


def _with_pending(ctx: SearchContext, proposals: list[Proposal]) -> SearchContext:
    """``ctx`` with ``proposals`` added to the runs in flight."""
    if not proposals:
        return ctx
    obs = ctx.observations
    return dataclasses.replace(
        ctx,
        observations=dataclasses.replace(
            obs,
            pending_mixtures=np.concatenate([obs.pending_mixtures, [p.mixture for p in proposals]]),
            pending_fidelities=np.concatenate([obs.pending_fidelities, [p.fidelity for p in proposals]]),
        ),
    )


def _require_target(ctx: SearchContext, fidelity: FloatArray, verb: str) -> None:
    if not same_fidelity(fidelity, ctx.problem.fidelity.target):
        raise UnsupportedFidelityError(f"single-fidelity-bo {verb} at the target fidelity only")


def _at(fidelities: FloatArray, target: FloatArray) -> np.ndarray:
    return same_fidelity(np.asarray(fidelities, dtype=np.float64).reshape(-1, target.size), target)
