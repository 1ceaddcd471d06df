"""Outcome constraints: bounds on predicted metrics that a recommended mixture must respect.

Every method that recommends models each constrained metric with an interval; this module turns those
into the one feasibility rule all of them apply. The probability that a mixture satisfies constraint
``j`` is ``Phi(s_j (b_j - mu_j) / sd_j)`` (``s_j`` = +1 for ``<=``, -1 for ``>=``), with the predictive
``sd_j`` read off the model's central 90% interval as ``halfwidth / 1.645`` -- exact for a Gaussian
posterior (BO, the GP law), a Gaussian approximation for the conformal widths of the other laws and
RegMix. Constraints are taken as independent, so a mixture's probability of feasibility is the product.

Relative bounds are resolved here, in one place (:func:`resolve`): the baseline's value of the metric is
the mean of the completed runs of the baseline mixture at the fidelity the model predicts at (the target,
unless a single-level model was fitted on a cheaper level) when there are any, else the model's
prediction there -- so bound and predictions are always on the same scale.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr

from mixing.errors import NoFeasibleMixtureError
from mixing.methods.common import SAME_POINT_L1, chunked
from mixing.problem import Observations, OutcomePrediction, Problem
from mixing.simplex import FloatArray

#: z of a central 90% interval: halfwidth = Z90 * sd.
Z90 = 1.6448536269514722

#: A model of the constrained metrics: mixtures ``(n, d)`` -> (predicted values ``(n, c)``, 90%
#: half-widths ``(n, c)``), one column per outcome constraint, in the problem's order, at the target.
OutcomeModel = Callable[[FloatArray], tuple[FloatArray, FloatArray]]


@dataclass(frozen=True)
class ResolvedConstraints:
    """The problem's outcome constraints with absolute bounds, and the model that predicts them."""

    names: tuple[str, ...]
    #: +1 for ``<=``, -1 for ``>=``, per constraint ``(c,)``.
    sign: FloatArray
    bound: FloatArray
    threshold: float
    model: OutcomeModel

    @property
    def active(self) -> bool:
        return len(self.names) > 0

    def probability(self, mixtures: FloatArray) -> FloatArray:
        """Probability ``(n,)`` that each mixture meets every constraint (1 without constraints)."""
        if not self.active:
            return np.ones(len(mixtures))
        mean, half = self.model(mixtures)
        return probability_of(mean, half, self.sign, self.bound)

    def report(self, mixture: FloatArray) -> tuple[OutcomePrediction, ...]:
        """Each constraint as predicted at ``mixture`` ``(d,)``."""
        if not self.active:
            return ()
        mean, half = (a[0] for a in self.model(mixture[None, :]))
        prob = ndtr(_z(mean, half, self.sign, self.bound))
        return tuple(
            OutcomePrediction(metric=n, op="<=" if s > 0 else ">=", bound=float(b), value=float(m),
                              lower=float(m - h), upper=float(m + h), probability=float(p))
            for n, s, b, m, h, p in zip(self.names, self.sign, self.bound, mean, half, prob, strict=True)
        )


def probability_of(mean: FloatArray, half: FloatArray, sign: FloatArray, bound: FloatArray) -> FloatArray:
    """Product over constraints of ``Phi(sign (bound - mean) / sd)``: ``(n, c)`` arrays -> ``(n,)``."""
    return np.prod(ndtr(_z(mean, half, sign, bound)), axis=-1)


def _z(mean: FloatArray, half: FloatArray, sign: FloatArray, bound: FloatArray) -> FloatArray:
    """Standardised margin; a zero-width prediction is certain either way (+-inf)."""
    margin = sign * (bound - np.asarray(mean, dtype=np.float64))
    sd = np.asarray(half, dtype=np.float64) / Z90
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(sd > 0, margin / np.where(sd > 0, sd, 1.0), np.where(margin >= 0, np.inf, -np.inf))
    return np.asarray(z, dtype=np.float64)


def resolve(problem: Problem, obs: Observations, model: OutcomeModel, level: FloatArray | None = None
            ) -> ResolvedConstraints:
    """Absolute bounds for the problem's outcome constraints, for a ``model`` that predicts at fidelity
    ``level`` (default: the target); see the module docstring for baselines."""
    cons = problem.outcome_constraints
    bounds = np.empty(len(cons))
    target_rows = obs.at_fidelity(problem.fidelity.target if level is None else level)
    predicted: dict[bytes, FloatArray] = {}
    for j, c in enumerate(cons):
        if c.bound is not None:
            bounds[j] = c.bound
            continue
        assert c.baseline is not None
        base = np.asarray(c.baseline, dtype=np.float64)
        same = target_rows & (np.abs(obs.mixtures - base).sum(axis=1) < SAME_POINT_L1)
        values = obs.metrics[same, c.metric]
        values = values[np.isfinite(values)]
        if len(values):
            value = float(values.mean())
        else:
            key = base.tobytes()
            if key not in predicted:
                predicted[key] = model(base[None, :])[0][0]
            value = float(predicted[key][j])
        bounds[j] = value + (1.0 if c.upper else -1.0) * c.slack * abs(value)
    return ResolvedConstraints(
        names=tuple(problem.metric_names[c.metric] for c in cons),
        sign=np.array([1.0 if c.upper else -1.0 for c in cons]),
        bound=bounds,
        threshold=problem.feasibility_probability,
        model=model,
    )


def best_feasible(loss: FloatArray, probability: FloatArray, threshold: float) -> int:
    """Index of the lowest ``loss`` among rows with ``probability >= threshold``; raises
    :class:`NoFeasibleMixtureError` when there is none."""
    ok = (probability >= threshold) & np.isfinite(loss)
    if not ok.any():
        raise NoFeasibleMixtureError(float(np.max(probability, initial=0.0)), threshold)
    return int(np.flatnonzero(ok)[np.argmin(loss[ok])])


def feasible_first(loss: FloatArray, probability: FloatArray, threshold: float) -> FloatArray:
    """Scores ``(n,)`` to minimise for suggestions: the loss where a mixture is likely feasible; above every
    such score, the others ordered by how likely they are to be feasible (the way to the feasible set)."""
    ok = probability >= threshold
    finite = loss[np.isfinite(loss)]
    top = float(finite.max()) if finite.size else 0.0
    span = float(np.ptp(finite)) + 1.0 if finite.size else 1.0
    return np.where(ok, loss, top + span * (1.0 + threshold - probability))


def best_feasible_candidate(
    loss: Callable[[FloatArray], FloatArray], resolved: ResolvedConstraints, pool: FloatArray
) -> tuple[FloatArray, float]:
    """(mixture, loss) of the row of ``pool`` ``(n, d)`` with the lowest loss among the likely feasible."""
    losses = chunked(loss, pool)
    i = best_feasible(losses, chunked(resolved.probability, pool), resolved.threshold)
    return pool[i], float(losses[i])


def measured_outcomes(problem: Problem, obs: Observations) -> ResolvedConstraints:
    """The outcome constraints judged on measured runs alone: a mixture's "prediction" is the mean of its
    completed runs (zero width, so its probability is 0 or 1); an unmeasured mixture, or a relative bound
    whose baseline was not run at the target, is unknown (NaN), which meets no bound."""
    cols = problem.constrained_metrics

    def measured(mixtures: FloatArray) -> tuple[FloatArray, FloatArray]:
        values = np.full((len(mixtures), len(cols)), np.nan)
        for i, w in enumerate(np.atleast_2d(mixtures)):
            same = np.abs(obs.mixtures - w).sum(axis=1) < SAME_POINT_L1
            if same.any():
                values[i] = np.nanmean(obs.metrics[np.ix_(same, cols)], axis=0)
        return values, np.zeros_like(values)

    return resolve(problem, obs, measured)
