"""Multi-fidelity Bayesian optimisation as a search method (``bo``), and its single-fidelity baseline.

``bo`` chooses both the mixture and the fidelity of every next run by information about the target-scale
optimum per unit of compute (see :mod:`mixing.bo`); ``single-fidelity-bo`` is the same machinery restricted
to target-fidelity runs, the baseline that multi-fidelity must beat on cost.

Trust in the proxies: once enough target-fidelity runs exist, ``bo`` measures how well each cheaper level
ranks the mixtures run at the target (:func:`mixing.bo.engine.level_trust`). If every cheaper level falls
below :data:`TRUST_MIN`, the proxies mislead and the *recommendation* comes from a GP on the target runs
alone (with the usual guard), so forecasts from those levels cannot overrule what was measured at the
target. Suggestions keep using every run: on the RegMix family of ``bench/mf_family.py``, proposing from
the target-only GP as well, or capping GIBBON's credit for a cheap run at its level's measured trust,
made ``bo`` slower where proxies mislead, not faster (``bench/RESULTS.md``).

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
from mixing.problem import (
    Candidates,
    FidelitySpace,
    Observations,
    Prediction,
    Problem,
    Proposal,
    Recommendation,
)
from mixing.simplex import FloatArray

#: Measured trust (Spearman) below which a cheaper level is taken to mislead (see the module docstring).
#: Not tuned: on the RegMix family of ``bench/mf_family.py`` the trust measured on the target runs that
#: ``bo`` buys -- near the proxies' optimum, where every ranking is flatter -- was -0.3 to 0.45 on a pool
#: whose cheap level has rank correlation 0.95 with the target, and -0.3 where it has 0.2; no threshold
#: separates those. It only switches the recommendation, which then still keeps the best measured
#: mixture unless the target runs confidently say otherwise.
TRUST_MIN = 0.5
#: Key of the target-only fit's hyperparameters inside ``bo_state``.
TARGET_ONLY = "target_only"


@dataclass
class FittedBO:
    """The multi-fidelity fit, the measured trust per level, and the target-only fit when proxies mislead."""

    surrogate: Surrogate
    obs: Observations
    trust: dict[bytes, float]
    #: The target-only fit and its runs; None unless recommending with every cheaper level distrusted.
    target: tuple[Surrogate, Observations] | None
    state: dict[str, Any]

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

    def predict(self, mixtures: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
        with cpu_threads():
            mean, sd = self.surrogate.predict(mixtures, self.fidelity)
        return np.zeros((len(mixtures), 0)), self.surrogate.problem.sign * mean, self.interval_z * sd


class BayesOptMethod:
    """Cost-aware multi-fidelity BO; with no fidelity axes it is plain single-fidelity BO."""

    name: ClassVar[str] = "bo"
    #: The previous fit's GP hyperparameters: the warm start changes what the next fit converges to.
    model_hints: ClassVar[tuple[str, ...]] = ("bo_state",)

    def __init__(self, settings: BOSettings | None = None, device: str | None = None) -> None:
        self.settings = settings or BOSettings()
        self.device_choice = device

    def view(self, ctx: SearchContext) -> tuple[Problem, Observations]:
        """The problem and runs the model sees (all of them here; narrowed by the baseline)."""
        return ctx.problem, ctx.observations

    def fit(self, ctx: SearchContext, recommending: bool = False) -> FittedBO:
        """The multi-fidelity fit and the measured trust; the target-only fit too when ``recommending`` and
        every cheaper level misleads (suggestions do not use it, so they do not pay for it)."""
        problem, obs = self.view(ctx)
        state = ctx.hints.get("bo_state") or {}
        device = bo_device(self.device_choice)
        surrogate = engine.fit_surrogate(problem, obs, device, ctx.rng, state, self.settings)
        trust = engine.level_trust(surrogate, obs)
        kept = {TARGET_ONLY: state[TARGET_ONLY]} if TARGET_ONLY in state else {}
        fitted = FittedBO(surrogate, obs, trust, None, {**surrogate.gp.state, **kept})
        if not recommending or not fitted.distrusted:
            return fitted
        t_problem, t_obs = target_view(problem, obs)
        t_fit = engine.fit_surrogate(t_problem, t_obs, device, ctx.rng, state.get(TARGET_ONLY), self.settings)
        return FittedBO(surrogate, obs, trust, (t_fit, t_obs), {**surrogate.gp.state, TARGET_ONLY: t_fit.gp.state})

    def suggest(
        self,
        ctx: SearchContext,
        count: int,
        fidelity: FloatArray | None = None,
        candidates: Candidates | None = None,
    ) -> list[Proposal]:
        fixed = self.fixed_fidelity(ctx, fidelity)
        pool = None if candidates is None else self.pool(ctx, candidates)
        with cpu_threads():
            fitted = self.fit(ctx)
            surrogate, obs = fitted.surrogate, fitted.obs
            problem = surrogate.problem
            levels = engine.fidelity_levels(problem, obs, fixed)
            cost_model = fit_cost_model(obs.fidelities, obs.costs)
            picks = engine.suggest(surrogate, obs, count, levels, cost_model, ctx.rng, self.settings, pool)
        common = {
            **self._details(surrogate, fitted),
            "cost_model": cost_model.source,
            "fidelity_levels": levels.tolist(),
        }
        return [
            Proposal(
                mixture=p.mixture,
                fidelity=self.proposed_fidelity(ctx, p.fidelity),
                method=self.name,
                predicted=self._prediction(problem, p.mean, p.sd),
                details={
                    **common,
                    "information_nats": p.information,
                    "utility": p.utility,
                    "predicted_cost": p.cost,
                },
            )
            for p in picks
        ]

    def recommend(self, ctx: SearchContext, candidates: FloatArray | None = None) -> Recommendation:
        with cpu_threads():
            fitted = self.fit(ctx, recommending=True)
            surrogate, obs = fitted.for_target()
            mixture, mean, sd = engine.recommend(surrogate, obs, ctx.rng, self.settings, candidates)
        return Recommendation(
            mixture=mixture,
            fidelity=ctx.problem.fidelity.target.copy(),
            predicted=self._prediction(surrogate.problem, mean, sd),
            method=self.name,
            n_runs=fitted.obs.n,
            details={**self._details(surrogate, fitted), "posterior_sd": sd},
        )

    def predictor(self, ctx: SearchContext, fidelity: FloatArray | None = None) -> BOPredictor:
        """The GP's posterior at ``fidelity``; unset fidelity axes (NaN) are taken at the target, where a
        recommendation is made."""
        target = ctx.problem.fidelity.target
        fid = target if fidelity is None else np.where(np.isnan(fidelity), target, fidelity)
        at = self.model_fidelity(ctx, fid)
        with cpu_threads():
            surrogate = self.fit(ctx).surrogate
        return BOPredictor(surrogate, at, self.settings.interval_z)

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
        """Pool rows whose fidelity is unset or the target; the reduced problem has no fidelity axes."""
        rows = np.all(np.isnan(candidates.fidelities), axis=1) | _at(
            candidates.fidelities, ctx.problem.fidelity.target
        )
        return candidates.mixtures[rows], np.zeros((int(rows.sum()), 0))

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


def _require_target(ctx: SearchContext, fidelity: FloatArray, verb: str) -> None:
    if not np.allclose(fidelity, ctx.problem.fidelity.target, rtol=1e-9, atol=0.0):
        raise UnsupportedFidelityError(f"single-fidelity-bo {verb} at the target fidelity only")


def _at(fidelities: FloatArray, target: FloatArray) -> np.ndarray:
    f = np.asarray(fidelities, dtype=np.float64).reshape(-1, target.size)
    if f.shape[1] == 0:
        return np.ones(len(f), dtype=bool)
    return np.all(np.isclose(f, target[None, :], rtol=1e-9, atol=0.0), axis=1)
