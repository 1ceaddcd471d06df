"""Random mixtures on the constrained simplex: initial designs and candidate pools.

The initial design follows RegMix (Liu et al. 2024, ``mixture_config/synthesize_mixture.py``): Dirichlet
draws around the token-share prior, flattened by a temperature, with a concentration scale picked per draw
from 15 log-spaced strengths between 0.1 and 5, rejected if they break a cap, tiny weights zeroed.
Diversity of concentration matters: low strengths give near-one-hot mixtures that pin down each domain's
own effect, high strengths give mixtures near the prior where the optimum usually lies.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from mixing.simplex import FloatArray, SimplexConstraints


@dataclass(frozen=True)
class DirichletDesign:
    """Settings of the RegMix initial design; the defaults are the published ones."""

    temperature: float = 0.5
    min_strength: float = 0.1
    max_strength: float = 5.0
    n_strengths: int = 15
    minimum_weight: float = 2e-4
    oversample: int = 20


def normalise_prior(prior: ArrayLike | None, n_domains: int) -> FloatArray:
    """A strictly positive prior summing to 1; uniform when none (or an all-zero one) is given."""
    if prior is None:
        return np.full(n_domains, 1.0 / n_domains)
    p = np.clip(np.asarray(prior, dtype=np.float64), 0.0, None)
    if p.shape != (n_domains,) or p.sum() <= 0:
        return np.full(n_domains, 1.0 / n_domains)
    p = np.maximum(p / p.sum(), 1e-6)
    return p / p.sum()


def dirichlet_design(
    n: int,
    constraints: SimplexConstraints,
    prior: ArrayLike | None,
    rng: np.random.Generator,
    design: DirichletDesign = DirichletDesign(),
) -> FloatArray:
    """``n`` diverse feasible mixtures around the prior (RegMix's initial design).

    Draws that break a bound are rejected; if the bounds are so tight that rejection yields too few, the
    remainder are projected onto the feasible set instead, so the call always returns ``n`` rows.
    """
    d = constraints.n_domains
    base = normalise_prior(prior, d) ** design.temperature
    base = base / base.sum()
    strengths = np.logspace(np.log10(design.min_strength), np.log10(design.max_strength), design.n_strengths)
    accepted: list[FloatArray] = []
    have = 0
    for _ in range(8):
        m = max(n * design.oversample, 64)
        alpha = base[None, :] * rng.choice(strengths, size=m)[:, None]
        w = _dirichlet(alpha, rng)
        w = np.where(w < design.minimum_weight, 0.0, w)
        w = w / np.maximum(w.sum(axis=1, keepdims=True), 1e-300)
        w = w[constraints.contains(w)]
        accepted.append(w)
        have += len(w)
        if have >= n:
            break
    pool = np.concatenate(accepted) if accepted else np.empty((0, d))
    if len(pool) < n:
        extra = _dirichlet(base[None, :] * rng.choice(strengths, size=n - len(pool))[:, None], rng)
        pool = np.concatenate([pool, constraints.project(extra)])
    pool = pool[rng.permutation(len(pool))[:n]]
    return _deduplicate_fill(pool, constraints, rng)


def uniform_candidates(n: int, constraints: SimplexConstraints, rng: np.random.Generator) -> FloatArray:
    """``n`` feasible mixtures spread over the whole constrained simplex (for search, not design).

    Flat Dirichlet draws are mapped into the box ``lower + (1 - sum(lower)) * w`` first, which keeps the
    lower bounds exactly; the upper bounds are then enforced by projection.
    """
    d = constraints.n_domains
    w = rng.dirichlet(np.ones(d), size=n)
    free = 1.0 - constraints.lower.sum()
    w = constraints.lower[None, :] + free * w
    if not np.all(constraints.upper >= 1.0):
        w = constraints.project(w)
    return w


def prior_candidates(
    n: int, constraints: SimplexConstraints, prior: ArrayLike | None, rng: np.random.Generator
) -> FloatArray:
    """Candidates for RegMix's search step: Dirichlet(prior x strength) draws, as the paper simulates."""
    return dirichlet_design(n, constraints, prior, rng, DirichletDesign(oversample=2))


def _dirichlet(alpha: FloatArray, rng: np.random.Generator) -> FloatArray:
    """Row-wise Dirichlet via Gamma draws, robust to the tiny alphas that low strengths produce."""
    g = rng.standard_gamma(np.maximum(alpha, 1e-3))
    total = g.sum(axis=1, keepdims=True)
    degenerate = total[:, 0] <= 0
    if np.any(degenerate):
        g[degenerate] = rng.dirichlet(np.ones(alpha.shape[1]), size=int(degenerate.sum()))
        total = g.sum(axis=1, keepdims=True)
    return g / total


def _deduplicate_fill(pool: FloatArray, constraints: SimplexConstraints, rng: np.random.Generator) -> FloatArray:
    """Replace duplicate rows (equal after rounding to 1e-6) with fresh uniform draws.

    RegMix drops near-identical mixtures so no proxy run is wasted on a repeat; rounding keeps this O(n log n)
    for the 100,000-row candidate pools as well as for designs.
    """
    _, first = np.unique(np.round(pool, 6), axis=0, return_index=True)
    if len(first) == len(pool):
        return pool
    fresh = uniform_candidates(len(pool) - len(first), constraints, rng)
    return np.concatenate([pool[np.sort(first)], fresh])
