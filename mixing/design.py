"""Space-filling initial designs: RegMix's Dirichlet draws, thinned greedily for coverage.

Pure Dirichlet designs can cluster; picking, from a pool of RegMix-style draws, the point farthest from
everything already tried or pending (greedy maximin) keeps the prior-shaped diversity while spreading the
few early runs, and never repeats a pending point.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from mixing.sampling import dirichlet_design
from mixing.simplex import FloatArray, SimplexConstraints


def space_filling_design(
    n: int,
    constraints: SimplexConstraints,
    prior: ArrayLike | None,
    rng: np.random.Generator,
    existing: FloatArray | None = None,
    pool_factor: int = 30,
) -> FloatArray:
    """``n`` feasible mixtures chosen by greedy maximin (L1 distance) from a RegMix Dirichlet pool."""
    pool = dirichlet_design(max(n * pool_factor, 256), constraints, prior, rng)
    d = constraints.n_domains
    chosen: list[int] = []
    ref = np.zeros((0, d)) if existing is None else np.asarray(existing, dtype=np.float64).reshape(-1, d)
    if len(ref):
        min_dist = np.abs(pool[:, None, :] - ref[None, :, :]).sum(axis=2).min(axis=1) if len(ref) < 2000 else \
            _min_dist_chunked(pool, ref)
    else:
        min_dist = np.full(len(pool), np.inf)
    for _ in range(min(n, len(pool))):
        i = int(np.argmax(min_dist)) if np.isfinite(min_dist).any() else int(rng.integers(len(pool)))
        chosen.append(i)
        min_dist = np.minimum(min_dist, np.abs(pool - pool[i]).sum(axis=1))
        min_dist[i] = -np.inf
    return pool[chosen]


def _min_dist_chunked(pool: FloatArray, ref: FloatArray, chunk: int = 512) -> FloatArray:
    out = np.full(len(pool), np.inf)
    for i in range(0, len(ref), chunk):
        block = ref[i : i + chunk]
        out = np.minimum(out, np.abs(pool[:, None, :] - block[None, :, :]).sum(axis=2).min(axis=1))
    return out
