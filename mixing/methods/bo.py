"""Multi-fidelity Bayesian optimisation as a search method (``bo``), and its single-fidelity baseline.

``bo`` chooses both the mixture and the fidelity of every next run by information about the target-scale
optimum per unit of compute (see :mod:`mixing.bo`); ``single-fidelity-bo`` is the same machinery restricted
to target-fidelity runs, the baseline that multi-fidelity must beat on cost.

Warm start: the GP hyperparameters of the previous fit arrive in ``ctx.hints["bo_state"]`` and the new ones
leave in ``details["bo_state"]`` of every proposal and recommendation (a small JSON-able dict).
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

    def fit(self, ctx: SearchContext) -> tuple[Surrogate, Observations]:
        problem, obs = self.view(ctx)
        surrogate = engine.fit_surrogate(
            problem, obs, bo_device(self.device_choice), ctx.rng, ctx.hints.get("bo_state"), self.settings
        )
        return surrogate, obs

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
            surrogate, obs = self.fit(ctx)
            problem = surrogate.problem
            levels = engine.fidelity_levels(problem, obs, fixed)
            cost_model = fit_cost_model(obs.fidelities, obs.costs)
            picks = engine.suggest(surrogate, obs, count, levels, cost_model, ctx.rng, self.settings, pool)
        common = {
            **self._details(surrogate),
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
            surrogate, obs = self.fit(ctx)
            mixture, mean, sd = engine.recommend(surrogate, obs, ctx.rng, self.settings, candidates)
        return Recommendation(
            mixture=mixture,
            fidelity=ctx.problem.fidelity.target.copy(),
            predicted=self._prediction(surrogate.problem, mean, sd),
            method=self.name,
            n_runs=obs.n,
            details={**self._details(surrogate), "posterior_sd": sd},
        )

    def predictor(self, ctx: SearchContext, fidelity: FloatArray | None = None) -> BOPredictor:
        """The GP's posterior at ``fidelity``; unset fidelity axes (NaN) are taken at the target, where a
        recommendation is made."""
        target = ctx.problem.fidelity.target
        fid = target if fidelity is None else np.where(np.isnan(fidelity), target, fidelity)
        at = self.model_fidelity(ctx, fid)
        with cpu_threads():
            surrogate, _ = self.fit(ctx)
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

    def _details(self, surrogate: Surrogate) -> dict[str, Any]:
        return {
            "bo_state": surrogate.gp.state,
            "device": str(surrogate.device),
            "encoding": surrogate.encoding,
            "fit": surrogate.gp.info,
        }


class SingleFidelityBayesOptMethod(BayesOptMethod):
    """BO on target-fidelity runs only, proposing only at the target fidelity (the replay baseline)."""

    name: ClassVar[str] = "single-fidelity-bo"

    def view(self, ctx: SearchContext) -> tuple[Problem, Observations]:
        problem, obs = ctx.problem, ctx.observations
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


def _require_target(ctx: SearchContext, fidelity: FloatArray, verb: str) -> None:
    if not np.allclose(fidelity, ctx.problem.fidelity.target, rtol=1e-9, atol=0.0):
        raise UnsupportedFidelityError(f"single-fidelity-bo {verb} at the target fidelity only")


def _at(fidelities: FloatArray, target: FloatArray) -> np.ndarray:
    f = np.asarray(fidelities, dtype=np.float64).reshape(-1, target.size)
    if f.shape[1] == 0:
        return np.ones(len(f), dtype=bool)
    return np.all(np.isclose(f, target[None, :], rtol=1e-9, atol=0.0), axis=1)
