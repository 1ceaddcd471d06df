"""The suggest and recommend loops of multi-fidelity BO, on Problem/Observations arrays.

Suggest: fit the GP (warm-started), believe the pending runs, score a feasible pool of (mixture, fidelity)
pairs by information about the target-fidelity minimum per unit cost, refine around the best, then build
the batch greedily (see :mod:`mixing.bo.acquisition`); with trade-offs, by the expected improvement of the
target-level front's hypervolume per unit cost instead (:class:`_FrontScorer`). Recommend: minimise the
posterior mean at the target fidelity over the same kind of pool, refined locally (or over the caller's
mixtures), and report its interval -- unless a mixture already run at the target is not confidently beaten (see
:func:`recommend`).

Fidelity is chosen among *levels*: the distinct fidelities already run plus the cheapest and the target
ones the problem declares (or exactly the one the caller fixes). Proxy scales are discrete in practice --
a team trains at the sizes its recipes exist for -- and every level has a cost the cost model can
predict from reported runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from botorch.utils.multi_objective.box_decompositions.non_dominated import FastNondominatedPartitioning
from botorch.utils.multi_objective.hypervolume import infer_reference_point
from botorch.utils.multi_objective.pareto import is_non_dominated
from scipy.stats import spearmanr

from mixing.bo.acquisition import (
    expected_hypervolume_improvement,
    greedy_batch,
    information_gain,
    sample_min_values,
)
from mixing.bo.cost import CostModel
from mixing.bo.device import DTYPE, as_tensor
from mixing.bo.encoding import Encoding, decode_mixtures, encode
from mixing.bo.pool import RADII, global_pool, local_pool
from mixing.bo.posterior import ExactPosterior, PairedStats
from mixing.bo.surrogate import FitSettings, FittedGP, fit_gp
from mixing.methods.common import chunked, first_free_distinct, members
from mixing.outcomes import Z90, OutcomeModel, ResolvedConstraints, best_feasible
from mixing.problem import Observations, Problem
from mixing.simplex import FloatArray
from mixing.transfer import TransferPrior


@dataclass(frozen=True)
class BOSettings:
    """Sizes of the search; device-independent so CPU and CUDA runs give the same answers."""

    encoding: Encoding = "sqrt"
    fit: FitSettings = field(default_factory=FitSettings)
    #: Global pool of mixtures scored at every fidelity level.
    n_global: int = 4096
    #: Local perturbations per refinement round, spread over ``n_centres`` best points.
    n_local: int = 1024
    n_centres: int = 16
    #: Best distinct (mixture, fidelity) pairs kept for the greedy batch (at least the batch size).
    n_batch_pool: int = 256
    #: Samples of the target minimum and the size of the support they are drawn on.
    n_min_samples: int = 32
    n_min_support: int = 256
    #: Half-width of reported intervals in posterior standard deviations (1.645: central 90%).
    interval_z: float = 1.645


@dataclass
class Surrogate:
    """A fitted GP together with the map from (mixture, raw fidelity) to its inputs."""

    gp: FittedGP
    problem: Problem
    encoding: Encoding
    device: torch.device

    def inputs(self, mixtures: FloatArray, fidelities: FloatArray) -> torch.Tensor:
        """GP inputs for ``mixtures`` at ``fidelities``: one raw fidelity ``(m,)`` for all, or one per row."""
        mixtures = np.atleast_2d(mixtures)
        m = self.problem.fidelity.n_axes
        fid = (
            np.zeros((len(mixtures), 0))
            if m == 0
            else np.broadcast_to(np.asarray(fidelities, dtype=np.float64).reshape(-1, m), (len(mixtures), m))
        )
        return as_tensor(encode(mixtures, self.problem.fidelity.normalise(fid), self.encoding), self.device)

    def predict(self, mixtures: FloatArray, fidelities: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Posterior (mean, sd) of the latent loss, in loss units."""
        return self.gp.to_loss(*self.gp.posterior.mean_var(self.inputs(mixtures, fidelities)))

    def difference(self, a: FloatArray, b: FloatArray, fidelity: FloatArray) -> tuple[float, float]:
        """Posterior (mean, sd) of ``loss(a) - loss(b)`` at ``fidelity``, in loss units, from their joint."""
        mean, cov = self.gp.posterior.joint(self.inputs(np.stack([a, b]), fidelity))
        var = float(cov[0, 0] + cov[1, 1] - 2.0 * cov[0, 1])
        return float(mean[0] - mean[1]) * self.gp.y_std, float(np.sqrt(max(var, 0.0))) * self.gp.y_std


@dataclass(frozen=True)
class Pick:
    """One suggested run with what the model expects of it."""

    mixture: FloatArray
    fidelity: FloatArray
    mean: float
    sd: float
    information: float
    utility: float
    cost: float


def fit_surrogate(
    problem: Problem,
    obs: Observations,
    device: torch.device,
    rng: np.random.Generator,
    state: dict[str, Any] | None,
    settings: BOSettings,
    values: FloatArray | None = None,
    prior: TransferPrior | None = None,
) -> Surrogate:
    """Fit the GP to the completed runs (objective = ``problem.loss``, lower is better), or to ``values``
    ``(n,)`` of the runs instead (a constrained metric, see :func:`fit_outcomes`).

    Runs whose objective is not finite (a diverged or failed run reported with NaN metrics) carry no
    information about the loss surface and are left out of the fit rather than failing it. ``prior``
    (a warm start's map of related runs onto the loss, :mod:`mixing.transfer`) is the GP's mean function.
    """
    loss = problem.loss(obs.metrics) if values is None else np.asarray(values, dtype=np.float64)
    ok = np.isfinite(loss)
    loss = loss[ok]
    inputs = encode(obs.mixtures[ok], problem.fidelity.normalise(obs.fidelities[ok]), settings.encoding)
    gp = fit_gp(
        inputs,
        loss,
        problem.n_domains,
        problem.fidelity.n_axes,
        device,
        rng,
        state,
        settings.fit,
        signature=settings.encoding,
        prior_mean=None if prior is None else TransferMean(prior, problem.n_domains, settings.encoding),
    )
    return Surrogate(gp, problem, settings.encoding, device)


def fit_outcomes(
    problem: Problem,
    obs: Observations,
    device: torch.device,
    rng: np.random.Generator,
    states: list[dict[str, Any]] | None,
    settings: BOSettings,
) -> list[Surrogate]:
    """One GP per outcome constraint, on its metric, with the objective's kernel over every fidelity (so a
    constrained metric learns from cheap runs too). ``states`` are the previous fits' (warm starts)."""
    states = states if states is not None and len(states) == len(problem.outcome_constraints) else None
    return [
        fit_surrogate(problem, obs, device, rng, None if states is None else states[j], settings,
                      values=obs.metrics[:, c.metric])
        for j, c in enumerate(problem.outcome_constraints)
    ]


def outcome_model(outcomes: list[Surrogate], at: FloatArray) -> OutcomeModel:
    """The constrained metrics' posteriors at fidelity ``at`` as an :data:`~mixing.outcomes.OutcomeModel`
    (half-widths :data:`~mixing.outcomes.Z90` sd, from which :mod:`mixing.outcomes` recovers the sd)."""

    def model(mixtures: FloatArray) -> tuple[FloatArray, FloatArray]:
        pairs = [s.predict(np.atleast_2d(mixtures), at) for s in outcomes]
        n = len(np.atleast_2d(mixtures))
        mean = np.stack([m for m, _ in pairs], axis=1) if pairs else np.zeros((n, 0))
        sd = np.stack([v for _, v in pairs], axis=1) if pairs else np.zeros((n, 0))
        return mean, Z90 * sd

    return model


@dataclass
class TransferMean:
    """A transfer prior's loss column as a function of GP inputs (their mixture part decoded)."""

    prior: TransferPrior
    n_domains: int
    encoding: Encoding

    def __call__(self, inputs: FloatArray) -> FloatArray:
        mixtures = decode_mixtures(np.asarray(inputs)[:, : self.n_domains], self.encoding)
        return self.prior.predict(mixtures)[:, 0]


def fidelity_levels(problem: Problem, obs: Observations, fixed: FloatArray | None) -> FloatArray:
    """The fidelities to choose among: ``fixed`` alone, else observed levels plus cheapest and target."""
    space = problem.fidelity
    if fixed is not None:
        return np.asarray(fixed, dtype=np.float64).reshape(1, space.n_axes)
    if space.n_axes == 0:
        return np.zeros((1, 0))
    return np.unique(np.concatenate([obs.fidelities, space.cheapest()[None], space.target[None]]), axis=0)


#: Target-fidelity runs needed before a cheaper level's trust is measured (a rank correlation on fewer
#: pairs is mostly noise).
MIN_TRUST_RUNS = 5


def level_trust(surrogate: Surrogate, obs: Observations, min_runs: int = MIN_TRUST_RUNS) -> dict[bytes, float]:
    """Measured trust of each cheaper level: how well its runs alone rank the mixtures run at the target.

    For each observed level other than the target, the GP (same hyperparameters) is conditioned on that
    level's runs only and predicts, at that level, every mixture that was run at the target; the value is
    the Spearman correlation of those predictions with the target results. Keys are ``level.tobytes()``
    (raw fidelities, float64); empty until ``min_runs`` target runs with finite objectives exist.

    Why not the kernel's own cross-level correlation alone: target runs are bought where the proxies
    predict good mixtures, and there a misleading proxy and an agreeing one fit the marginal likelihood
    about equally well -- on a RegMix pool whose cheap level had rank correlation 0.2 with the target, the
    kernel's cross-level correlation *rose* from 0.8 to about 0.92 as target runs arrived, and a kernel with
    a signed learned correlation fitted 0.96 (``bench/RESULTS.md``). A held-out check of the ranking does
    not depend on the model being right about the levels' relation.
    """
    problem = surrogate.problem
    target = problem.fidelity.target
    loss = problem.loss(obs.metrics)
    ok = np.isfinite(loss)
    at_target = ok & obs.at_fidelity(target)
    if problem.fidelity.n_axes == 0 or at_target.sum() < min_runs:
        return {}
    post, gp = surrogate.gp.posterior, surrogate.gp
    trust = {}
    for level in np.unique(obs.fidelities[ok & ~at_target], axis=0):
        rows = ok & obs.at_fidelity(level)
        if rows.sum() < 2:
            continue
        own = ExactPosterior(
            post.kernel,
            post.constant,
            post.noise,
            surrogate.inputs(obs.mixtures[rows], obs.fidelities[rows]),
            as_tensor((loss[rows] - gp.y_mean) / gp.y_std, surrogate.device),
            post.mean_fn,
        )
        said, _ = own.mean_var(surrogate.inputs(obs.mixtures[at_target], level))
        rho = spearmanr(said.detach().cpu().numpy(), loss[at_target])[0]
        trust[np.asarray(level, dtype=np.float64).tobytes()] = float(rho) if np.isfinite(rho) else 0.0
    return trust


@dataclass
class _Scored:
    """(mixture, fidelity) pairs with their posterior statistics, relative cost and utility."""

    mixtures: FloatArray
    fids: FloatArray
    #: The run and its mixture at the target fidelity, from :meth:`ExactPosterior.paired`.
    stats: PairedStats
    cost: torch.Tensor
    #: Probability that the mixture meets the outcome constraints at the target (1 without any).
    feasible: torch.Tensor
    utility: torch.Tensor

    def concat(self, other: _Scored) -> _Scored:
        return _Scored(
            np.concatenate([self.mixtures, other.mixtures]),
            np.concatenate([self.fids, other.fids]),
            self.stats.concat(other.stats),
            torch.cat([self.cost, other.cost]),
            torch.cat([self.feasible, other.feasible]),
            torch.cat([self.utility, other.utility]),
        )


class _Scorer:
    """Scores (mixture, fidelity) pairs by information about the target minimum per unit cost, times the
    probability that the mixture meets the outcome constraints at the target (``feasibility``; the
    constrained acquisition: information is worth as much as the chance that it is about a usable mixture,
    at every fidelity alike)."""

    def __init__(
        self, surrogate: Surrogate, posterior: ExactPosterior, cost_model: CostModel, settings: BOSettings,
        feasibility: Callable[[FloatArray], FloatArray] | None = None,
    ) -> None:
        self.s, self.post, self.cost_model, self.settings = surrogate, posterior, cost_model, settings
        self.feasibility = feasibility
        self.target = surrogate.problem.fidelity.target
        self.target_cost = float(cost_model(self.target[None])[0])
        #: Samples of the target minimum, drawn from the first pool scored (see :meth:`score`).
        self.min_values = torch.empty(0, dtype=DTYPE)

    def stats(self, mixtures: FloatArray, fids: FloatArray) -> PairedStats:
        return _paired_stats(self.s, self.post, mixtures, fids)

    def score(self, mixtures: FloatArray, fids: FloatArray, rng: np.random.Generator) -> _Scored:
        """Score pairs; the first call also samples the target minimum over the most promising of them.

        The support of the samples is the pool's mixtures with the lowest lower confidence bounds at the
        target fidelity: where the minimum can plausibly be.
        """
        stats = self.stats(mixtures, fids)
        if self.min_values.numel() == 0:
            order = np.argsort((stats.ref_mean - 2.0 * stats.ref_var.sqrt()).cpu().numpy())
            _, first = np.unique(np.round(mixtures[order], 9), axis=0, return_index=True)
            support = mixtures[order[np.sort(first)][: self.settings.n_min_support]]
            z = self.s.inputs(support, self.target)
            self.min_values = sample_min_values(self.post, z, self.settings.n_min_samples, rng)
        gain = information_gain(
            stats.ref_mean, stats.ref_var, stats.var + self.post.noise, stats.cov, self.min_values
        )
        cost = as_tensor(self.cost_model(fids) / self.target_cost, self.s.device)
        feasible = as_tensor(np.ones(len(mixtures)) if self.feasibility is None else self.feasibility(mixtures),
                             self.s.device)
        return _Scored(mixtures, fids, stats, cost, feasible, gain * feasible / cost)

    def batch(self, scored: _Scored, keep: np.ndarray, count: int) -> list[tuple[int, float, float]]:
        """Greedy batch among the pairs ``keep`` (see :func:`~mixing.bo.acquisition.greedy_batch`)."""
        m = len(keep)
        mixtures, fids = scored.mixtures[keep], scored.fids[keep]
        keep_t = torch.as_tensor(keep, device=self.s.device)
        _, cov = self.post.joint(
            torch.cat([self.s.inputs(mixtures, fids), self.s.inputs(mixtures, self.target)])
        )
        mean_twin, noise, idx = (
            scored.stats.ref_mean[keep_t],
            self.post.noise,
            torch.arange(m, device=self.s.device),
        )

        feasible = scored.feasible[keep_t]

        def gain(c: torch.Tensor) -> torch.Tensor:
            d = c.diagonal()
            return feasible * information_gain(mean_twin, d[m:], d[:m] + noise, c[idx, idx + m], self.min_values)

        return greedy_batch(gain, cov, noise, scored.cost[keep_t], count)


def _paired_stats(surrogate: Surrogate, post: ExactPosterior, mixtures: FloatArray, fids: FloatArray) -> PairedStats:
    """Posterior statistics of each (mixture, fidelity) pair and its mixture at the target, one batched pass
    per distinct fidelity."""
    target = surrogate.problem.fidelity.target
    out = PairedStats.empty(len(mixtures), torch.empty(0, dtype=DTYPE, device=surrogate.device))
    levels, which = np.unique(fids, axis=0, return_inverse=True)
    for j, level in enumerate(levels):
        rows = np.flatnonzero(which.reshape(-1) == j)
        out.put(
            torch.as_tensor(rows, device=surrogate.device),
            post.paired(surrogate.inputs(mixtures[rows], level), surrogate.inputs(mixtures[rows], target)),
        )
    return out


@dataclass(frozen=True)
class FrontAcquisition:
    """What the multi-objective acquisition needs besides the objective's GP: one GP per further objective
    (a trade-off metric, on its raw values) over every fidelity, its direction, and the probability of
    feasibility a mixture needs to count on the current front (the problem's ``feasibility_probability``)."""

    fits: list[Surrogate]
    minimize: tuple[bool, ...]
    threshold: float


class _FrontScorer:
    """Scores (mixture, fidelity) pairs by the expected improvement of the target-level front's hypervolume
    that the run buys, per unit cost, times the probability that the mixture meets the outcome constraints.

    Axes: the objective and each trade-off metric, each with its own GP over every fidelity (taken as
    independent). The current front is the posterior means at the target of the mixtures run or pending,
    among those likely feasible; the reference point is BoTorch's ``infer_reference_point`` of the front of
    all of them, and the region the front does not dominate is tiled by BoTorch's box decomposition.

    Across fidelities, as for the single objective: a run at fidelity s moves its mixture's posterior mean
    at the target by a Gaussian with sd ``|cov(y_s, f_T)| / sd(y_s)`` per axis (the preposterior, ``rho *
    sd_T``). The score is the EHVI under that distribution: about the plain EHVI for a target run, less for
    a proxy the further it decorrelates from the target, and then divided by its cost. Batches are greedy:
    each pick is believed in every GP (its variance shrinks, its mean stays) and its predicted point joins
    the front before the next pick.
    """

    def __init__(
        self, surrogate: Surrogate, posterior: ExactPosterior, cost_model: CostModel, obs: Observations,
        front: FrontAcquisition, feasibility: Callable[[FloatArray], FloatArray] | None = None,
    ) -> None:
        self.s, self.cost_model, self.feasibility, self.threshold = surrogate, cost_model, feasibility, front.threshold
        self.target = surrogate.problem.fidelity.target
        self.target_cost = float(cost_model(self.target[None])[0])
        pending = obs.pending_mixtures, obs.pending_fidelities
        self.models = [surrogate, *front.fits]
        self.posts = [posterior] + [f.gp.posterior.believe(f.inputs(*pending)) if len(pending[0]) else f.gp.posterior
                                    for f in front.fits]
        #: Per axis, +1 where lower is better and -1 where higher is: values times ``orient`` are losses.
        self.orient = np.array([1.0] + [1.0 if m else -1.0 for m in front.minimize])
        done = obs.mixtures[surrogate.problem.constraints.contains(obs.mixtures)] if obs.n else obs.mixtures
        self.on_front = np.concatenate([done, obs.pending_mixtures])
        self.cells = self._partition()

    def _at_target(self, mixtures: FloatArray) -> FloatArray:
        """Posterior means ``(n, m)`` at the target, lower is better on every axis."""
        means = [s.gp.to_loss(*post.mean_var(s.inputs(mixtures, self.target)))[0]
                 for s, post in zip(self.models, self.posts, strict=True)]
        return np.stack(means, axis=1) * self.orient

    def _partition(self) -> torch.Tensor:
        """Cell bounds ``(2, C, m)`` of the region the current front does not dominate (higher is better)."""
        y = torch.as_tensor(-self._at_target(self.on_front), dtype=DTYPE)
        ref = infer_reference_point(y[is_non_dominated(y)])
        if self.feasibility is not None:
            y = y[torch.as_tensor(self.feasibility(self.on_front) >= self.threshold)]
        return FastNondominatedPartitioning(ref_point=ref, Y=y).get_hypercell_bounds().to(self.s.device)

    def _gain(self, mixtures: FloatArray, fids: FloatArray) -> tuple[PairedStats, torch.Tensor, torch.Tensor]:
        """(the objective's paired statistics, EHVI of the preposterior, probability of feasibility), per pair."""
        models = list(zip(self.models, self.posts, strict=True))
        stats = [_paired_stats(model, post, mixtures, fids) for model, post in models]
        pairs = list(zip(models, stats, strict=True))
        mean = np.stack([m.gp.to_loss(st.ref_mean, st.ref_var)[0] for (m, _), st in pairs], axis=1)
        sd = np.stack([(st.cov.abs() / (st.var + p.noise).sqrt()).cpu().numpy() * m.gp.y_std
                       for (m, p), st in pairs], axis=1)
        ehvi = expected_hypervolume_improvement(as_tensor(-mean * self.orient, self.s.device),
                                                as_tensor(sd, self.s.device), self.cells)
        feasible = as_tensor(np.ones(len(mixtures)) if self.feasibility is None else self.feasibility(mixtures),
                             self.s.device)
        return stats[0], ehvi, feasible

    def score(self, mixtures: FloatArray, fids: FloatArray, rng: np.random.Generator) -> _Scored:
        stats, ehvi, feasible = self._gain(mixtures, fids)
        cost = as_tensor(self.cost_model(fids) / self.target_cost, self.s.device)
        return _Scored(mixtures, fids, stats, cost, feasible, ehvi * feasible / cost)

    def batch(self, scored: _Scored, keep: np.ndarray, count: int) -> list[tuple[int, float, float]]:
        """Greedy batch among the pairs ``keep``: ``(index into keep, gain, gain / cost)`` per pick."""
        mixtures, fids = scored.mixtures[keep], scored.fids[keep]
        cost = scored.cost[torch.as_tensor(keep, device=self.s.device)]
        allowed = torch.ones(len(keep), dtype=torch.bool, device=self.s.device)
        picks: list[tuple[int, float, float]] = []
        for _ in range(min(count, len(keep))):
            _, ehvi, feasible = self._gain(mixtures, fids)
            gain = ehvi * feasible
            utility = torch.where(allowed, gain / cost, torch.full_like(gain, -torch.inf))
            best = int(torch.argmax(utility))
            picks.append((best, float(gain[best]), float(utility[best])))
            allowed[best] = False
            self.posts = [post.believe(model.inputs(mixtures[best][None], fids[best]))
                          for model, post in zip(self.models, self.posts, strict=True)]
            self.on_front = np.concatenate([self.on_front, mixtures[best][None]])
            self.cells = self._partition()
        return picks


def suggest(
    surrogate: Surrogate,
    obs: Observations,
    count: int,
    levels: FloatArray,
    cost_model: CostModel,
    rng: np.random.Generator,
    settings: BOSettings,
    candidates: tuple[FloatArray, FloatArray] | None = None,
    feasibility: Callable[[FloatArray], FloatArray] | None = None,
    front: FrontAcquisition | None = None,
) -> list[Pick]:
    """``count`` runs that buy the most information about the target minimum per unit of cost, weighted by
    ``feasibility`` (mixtures -> probability of meeting the outcome constraints) when given. With ``front``
    (further objectives), the runs that most improve the target-level front's hypervolume per unit of
    cost instead (:class:`_FrontScorer`); ``Pick.information`` is then that expected improvement.

    ``candidates`` = (mixtures, fidelities with NaN = "choose") restricts the search to a finite pool.
    The runs are distinct and neither pending nor observed; there are exactly ``count`` of them unless
    the pool holds fewer such runs, in which case all of those are returned.
    """
    problem = surrogate.problem
    post = surrogate.gp.posterior
    if len(obs.pending_mixtures):
        post = post.believe(surrogate.inputs(obs.pending_mixtures, obs.pending_fidelities))
    scorer: _Scorer | _FrontScorer = (
        _Scorer(surrogate, post, cost_model, settings, feasibility) if front is None
        else _FrontScorer(surrogate, post, cost_model, obs, front, feasibility)
    )
    if candidates is not None:
        scored = scorer.score(*_expand_pool(candidates[0], candidates[1], levels), rng)
    else:
        incumbents = _incumbents(surrogate, obs, settings.n_centres)
        start = np.concatenate(
            [
                global_pool(settings.n_global, problem.constraints, problem.prior, rng),
                local_pool(incumbents, settings.n_local, problem.constraints, rng),
            ]
        )
        scored = scorer.score(*_cross(start, levels), rng)
        # one refinement round around the most useful mixtures, at every level
        top = scored.mixtures[_top(scored.utility, settings.n_centres)]
        local = local_pool(top, settings.n_local, problem.constraints, rng)
        scored = scored.concat(scorer.score(*_cross(local, levels), rng))

    keep = _allowed_top(scored, obs, max(settings.n_batch_pool, count))
    if len(keep) == 0:
        return []
    picks = scorer.batch(scored, keep, count)
    keep_t = torch.as_tensor(keep, device=surrogate.device)
    mean, sd = surrogate.gp.to_loss(scored.stats.mean[keep_t], scored.stats.var[keep_t])
    cost = scored.cost[keep_t].cpu().numpy() * scorer.target_cost
    return [
        Pick(
            scored.mixtures[keep[i]], scored.fids[keep[i]], float(mean[i]), float(sd[i]), g, u, float(cost[i])
        )
        for i, g, u in picks
    ]


def recommend(
    surrogate: Surrogate,
    obs: Observations,
    rng: np.random.Generator,
    settings: BOSettings,
    pool: FloatArray | None = None,
    outcomes: ResolvedConstraints | None = None,
) -> tuple[FloatArray, float, float]:
    """The mixture minimising the posterior mean at the target fidelity, with (mean, sd) there.

    ``pool`` restricts the choice to those mixtures (a caller who can only train some); otherwise the
    constrained simplex is searched. With ``outcomes``, only mixtures meeting them with the required
    probability are chosen (measured incumbents included); :class:`~mixing.errors.NoFeasibleMixtureError`
    when none does.

    Guarded by the runs already made at the target: the optimum replaces the best mixture measured
    there only if the posterior is confident that it is better -- if the upper bound of the reported
    interval on their *difference* is below zero. Away from target-scale data the optimum rests on what
    small proxies say, and they can rank mixtures differently from the target (the tiny-LM search: a
    confident extrapolation lost to the uniform mixture it had measured at the target size). The
    difference, not the optimum's own interval, is what decides: the target-scale loss is often
    uncertain mostly by an offset shared by every mixture, which says nothing about which one is better.
    """
    problem = surrogate.problem
    target = problem.fidelity.target
    measured = _measured_at(obs, target, problem)
    if pool is None:
        pool, mean = _posterior_mean_search(surrogate, obs, rng, settings)
    else:
        pool = np.atleast_2d(pool)
        mean, _ = surrogate.predict(pool, target)
        measured = measured[members(measured, pool)]
    if outcomes is not None and outcomes.active:
        best = pool[best_feasible(mean, chunked(outcomes.probability, pool), outcomes.threshold)]
        measured = measured[outcomes.probability(measured) >= outcomes.threshold] if len(measured) else measured
    else:
        best = pool[int(np.argmin(mean))]
    if len(measured):
        measured_mean, _ = surrogate.predict(measured, target)
        incumbent = measured[int(np.argmin(measured_mean))]
        gap, gap_sd = surrogate.difference(best, incumbent, target)
        if gap + settings.interval_z * gap_sd >= 0.0:
            best = incumbent
    m, s = surrogate.predict(best[None], target)
    return best, float(m[0]), float(s[0])


def predicted_best(
    surrogate: Surrogate,
    obs: Observations,
    count: int,
    rng: np.random.Generator,
    settings: BOSettings,
    pool: FloatArray | None = None,
) -> FloatArray:
    """Up to ``count`` distinct mixtures ``(k, d)`` with the lowest posterior mean at the target fidelity,
    none run or pending there: the rows of ``pool``, else the simplex searched as :func:`recommend` does."""
    target = surrogate.problem.fidelity.target
    if pool is None:
        pool, mean = _posterior_mean_search(surrogate, obs, rng, settings)
    else:
        pool = np.atleast_2d(pool)
        mean, _ = surrogate.predict(pool, target)
    order = np.argsort(mean)
    keep = first_free_distinct(pool[order], np.tile(target, (len(pool), 1)), obs, count)
    return pool[order[keep]]


def _posterior_mean_search(
    surrogate: Surrogate, obs: Observations, rng: np.random.Generator, settings: BOSettings
) -> tuple[FloatArray, FloatArray]:
    """Mixtures ``(n, d)`` and their posterior means at the target ``(n,)``: a global pool refined in
    shrinking local rounds around the best so far."""
    problem = surrogate.problem
    target = problem.fidelity.target
    seen = (
        obs.mixtures[problem.constraints.contains(obs.mixtures)]
        if obs.n
        else np.zeros((0, problem.n_domains))
    )
    pool = np.concatenate([seen, global_pool(settings.n_global, problem.constraints, problem.prior, rng)])
    mean, _ = surrogate.predict(pool, target)
    for shrink in (1.0, 1 / 3, 1 / 9):  # successively finer local rounds around the best so far
        centres = pool[np.argsort(mean)[: settings.n_centres]]
        local = local_pool(
            centres, settings.n_local, problem.constraints, rng, tuple(r * shrink for r in RADII)
        )
        local_mean, _ = surrogate.predict(local, target)
        pool, mean = np.concatenate([pool, local]), np.concatenate([mean, local_mean])
    return pool, mean


def _measured_at(obs: Observations, fidelity: FloatArray, problem: Problem) -> FloatArray:
    """The feasible mixtures of completed runs made at ``fidelity``."""
    mixtures = obs.mixtures[obs.at_fidelity(fidelity)]
    return mixtures[problem.constraints.contains(mixtures)]


def _incumbents(surrogate: Surrogate, obs: Observations, k: int) -> FloatArray:
    """The ``k`` observed mixtures with the lowest posterior mean at the target fidelity."""
    if obs.n == 0:
        return np.zeros((0, surrogate.problem.n_domains))
    ok = obs.mixtures[surrogate.problem.constraints.contains(obs.mixtures)]
    if len(ok) == 0:
        return ok
    mean, _ = surrogate.predict(ok, surrogate.problem.fidelity.target)
    return ok[np.argsort(mean)[:k]]


def _cross(mixtures: FloatArray, levels: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Every mixture at every level."""
    return np.repeat(mixtures, len(levels), axis=0), np.tile(levels, (len(mixtures), 1))


def _expand_pool(
    mixtures: FloatArray, fidelities: FloatArray, levels: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Pool rows with a full fidelity stay as they are; NaN axes are filled from each level in turn."""
    mix, fid = [], []
    for w, f in zip(np.atleast_2d(mixtures), np.atleast_2d(fidelities), strict=True):
        options = np.unique(np.where(np.isnan(f)[None, :], levels, f[None, :]), axis=0)
        mix.append(np.repeat(w[None], len(options), axis=0))
        fid.append(options)
    return np.concatenate(mix), np.concatenate(fid)


def _top(values: torch.Tensor, k: int) -> np.ndarray:
    k = min(k, values.shape[0])
    return torch.topk(values, k).indices.cpu().numpy()


def _allowed_top(scored: _Scored, obs: Observations, k: int) -> np.ndarray:
    """Indices of the ``k`` best distinct pairs that are neither pending nor already observed at that fidelity.

    Every pair is a candidate, best first: the projection puts many local moves exactly on a vertex or
    a bound's corner, and a finite pool may be mostly taken, so no shorter prefix is sure to hold ``k``.
    """
    order = torch.argsort(scored.utility, descending=True).cpu().numpy()
    return order[first_free_distinct(scored.mixtures[order], scored.fids[order], obs, k)]
