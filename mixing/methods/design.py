"""Model-free methods: the space-filling initial design and uniform random search.

Both are also the fallbacks every model-based method has before there is data to fit; recommending from
them means "the best mixture observed so far at the fidelity nearest the target".
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np

from mixing.design import space_filling_design
from mixing.errors import NotEnoughDataError
from mixing.methods.base import SearchContext
from mixing.methods.common import (
    SAME_POINT_L1,
    exclude_taken,
    first_free_distinct,
    members,
    nearest_fidelity_rows,
)
from mixing.outcomes import best_feasible, measured_outcomes
from mixing.problem import Candidates, Prediction, Proposal, Recommendation
from mixing.sampling import uniform_candidates
from mixing.simplex import FloatArray


class DesignMethod:
    """Space-filling designs around the prior, each level's baselines first; ``from_pool`` picks from
    candidates the same way."""

    name: ClassVar[str] = "design"

    def suggest(self, ctx: SearchContext, count: int, fidelity: FloatArray | None = None,
                candidates: Candidates | None = None) -> list[Proposal]:
        problem, obs = ctx.problem, ctx.observations
        fid = problem.fidelity.cheapest() if fidelity is None else fidelity
        taken = np.concatenate([obs.mixtures, obs.pending_mixtures])
        if candidates is not None:
            return _pick_from_pool(self.name, ctx, candidates, fid, count, taken, cheapest_only=fidelity is None)
        first = baselines_not_run(ctx, fid)[:count]
        rest = space_filling_design(count - len(first), problem.constraints, problem.prior, ctx.rng,
                                    existing=np.concatenate([taken, first]))
        return [Proposal(mixture=p, fidelity=fid.copy(), method=self.name) for p in [*first, *rest]]

    def recommend(self, ctx: SearchContext, candidates: FloatArray | None = None) -> Recommendation:
        return best_observed(ctx, self.name, candidates)


class RandomMethod:
    """Uniform draws over the constrained simplex: the baseline every method must beat."""

    name: ClassVar[str] = "random"

    def suggest(self, ctx: SearchContext, count: int, fidelity: FloatArray | None = None,
                candidates: Candidates | None = None) -> list[Proposal]:
        fid = ctx.problem.fidelity.cheapest() if fidelity is None else fidelity
        if candidates is not None:
            fids = np.where(np.isnan(candidates.fidelities), fid[None, :], candidates.fidelities)
            keep = np.flatnonzero(exclude_taken(candidates.mixtures, fids, ctx.observations))
            pick = ctx.rng.permutation(keep)[:count]
            return [Proposal(mixture=candidates.mixtures[i], fidelity=fids[i], method=self.name) for i in pick]
        return [Proposal(mixture=p, fidelity=fid.copy(), method=self.name) for p in fresh_uniform(ctx, count, fid)]

    def recommend(self, ctx: SearchContext, candidates: FloatArray | None = None) -> Recommendation:
        return best_observed(ctx, self.name, candidates)


def fresh_uniform(ctx: SearchContext, count: int, fidelity: FloatArray) -> FloatArray:
    """Up to ``count`` uniform draws ``(k, d)`` that are new runs at ``fidelity``: none pending or observed.

    Callers who pass the same seed draw the same sequence, so a later one skips the draws that earlier ones
    took and goes on along it. Chunks double in size and stop after ``count`` plus one draw per run taken:
    enough whenever the space has room, and a bounded search when it has none (a single feasible mixture).
    """
    obs = ctx.observations
    d, m = ctx.problem.n_domains, fidelity.size
    budget = count + obs.n + len(obs.pending_mixtures)
    chosen = np.zeros((0, d))
    chunk, drawn = count, 0
    while len(chosen) < count and drawn < budget:
        points = uniform_candidates(chunk, ctx.problem.constraints, ctx.rng)
        drawn += chunk
        seen = dataclasses.replace(obs, pending_mixtures=np.concatenate([obs.pending_mixtures, chosen]),
                                   pending_fidelities=np.concatenate([obs.pending_fidelities,
                                                                      np.tile(fidelity, (len(chosen), 1))]))
        keep = first_free_distinct(points, np.tile(fidelity, (chunk, 1)).reshape(chunk, m), seen,
                                   count - len(chosen))
        chosen = np.concatenate([chosen, points[keep]])
        chunk *= 2
    return chosen


def baselines_not_run(ctx: SearchContext, fidelity: FloatArray) -> FloatArray:
    """The prior (natural) mixture and the uniform one, made feasible, that no run has or will have at
    ``fidelity``.

    They are the mixtures a recommendation has to beat, so each fidelity level's design measures them
    first. Without them a model extrapolates the large-scale loss of the baselines from small proxies,
    which rank mixtures differently, and may recommend a mixture that loses to uniform while predicting
    it wins.
    """
    problem, obs = ctx.problem, ctx.observations
    c = problem.constraints
    wanted = [c.chebyshev_center()]  # the projection of the uniform mixture
    if problem.prior is not None:
        wanted.insert(0, c.project(problem.prior)[0])
    out: list[FloatArray] = []
    for w in wanted:
        repeat = any(np.abs(p - w).sum() < SAME_POINT_L1 for p in out)
        if not repeat and exclude_taken(w[None, :], fidelity[None, :], obs)[0]:
            out.append(w)
    return np.asarray(out, dtype=np.float64).reshape(len(out), c.n_domains)


def best_observed(ctx: SearchContext, method: str, candidates: FloatArray | None = None) -> Recommendation:
    """The best completed run at the fidelity nearest the target (no model, so no interval).

    With ``candidates``, only runs of those mixtures count. With outcome constraints, only runs whose
    measured metrics meet them count (a relative bound whose baseline was not run at the target is unknown,
    so it is met by none); :class:`~mixing.outcomes.NoFeasibleMixtureError` when no run does.
    """
    problem, obs = ctx.problem, ctx.observations
    if candidates is not None:
        obs = obs.completed_subset(members(obs.mixtures, candidates))
    if obs.n == 0:
        where = " of a candidate mixture" if candidates is not None else ""
        raise NotEnoughDataError(f"a recommendation needs completed runs{where}", 1, 0)
    rows = nearest_fidelity_rows(problem, obs, problem.fidelity.target, 1)
    loss = problem.loss(obs.metrics[rows])
    measured = measured_outcomes(problem, obs.completed_subset(rows))
    best = rows[best_feasible(loss, measured.probability(obs.mixtures[rows]), measured.threshold)
                if measured.active else int(np.argmin(loss))]
    value = float(problem.objective(obs.metrics[best : best + 1])[0])
    return Recommendation(mixture=obs.mixtures[best], fidelity=problem.fidelity.target,
                          predicted=Prediction(value=value), method=method, n_runs=len(rows),
                          details={"source": "best observed run", "observed_fidelity": obs.fidelities[best].tolist()},
                          outcomes=measured.report(obs.mixtures[best]))


def _pick_from_pool(method: str, ctx: SearchContext, candidates: Candidates, fid: FloatArray, count: int,
                    taken: FloatArray, cheapest_only: bool) -> list[Proposal]:
    """Greedy max-min picks from the free candidates.

    ``cheapest_only``: when the caller fixed no fidelity and the pool spans several, explore at the
    cheapest level the pool offers first, and move up a level only once that one is used up -- a design
    is cheap exploration, not a target-scale bet.
    """
    fids = np.where(np.isnan(candidates.fidelities), fid[None, :], candidates.fidelities)
    free = np.flatnonzero(exclude_taken(candidates.mixtures, fids, ctx.observations))
    if not (cheapest_only and len(free) and fids.shape[1]):
        tiers = [free]
    else:
        scale = np.round(ctx.problem.fidelity.normalise(fids[free]).sum(axis=1), 9)
        tiers = [free[scale == level] for level in np.unique(scale)]
    chosen: list[int] = []
    for tier in tiers:
        if len(chosen) >= count:
            break
        picked = _max_min(candidates.mixtures[tier], count - len(chosen),
                          np.concatenate([taken, candidates.mixtures[chosen]]), ctx.rng)
        chosen.extend(int(tier[i]) for i in picked)
    return [Proposal(mixture=candidates.mixtures[i], fidelity=fids[i], method=method) for i in chosen]


def _max_min(pool: FloatArray, count: int, taken: FloatArray, rng: np.random.Generator) -> list[int]:
    """Indices of ``count`` rows of ``pool`` picked one by one, each farthest (L1) from all before it."""
    chosen: list[int] = []
    min_dist = np.full(len(pool), np.inf)
    for t in taken:  # one taken row at a time, so memory does not grow with the runs taken
        np.minimum(min_dist, np.abs(pool - t).sum(axis=1), out=min_dist)
    for _ in range(min(count, len(pool))):
        i = int(np.argmax(min_dist)) if np.isfinite(min_dist).any() else int(rng.integers(len(pool)))
        chosen.append(i)
        min_dist = np.minimum(min_dist, np.abs(pool - pool[i]).sum(axis=1))
        min_dist[i] = -np.inf
    return chosen
