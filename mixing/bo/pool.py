"""Feasible candidate mixtures for the acquisition and the recommendation: global draws plus local moves.

Optimising over a large finite pool replaces gradient optimisation with an equality constraint (SLSQP
took 255 s for one q=8 batch at 250 runs): every pool member is feasible by construction, scoring is one
batched posterior evaluation, and local perturbations of the best points -- projected back onto the
constrained simplex -- refine where it matters. Derivative-free refinement also sidesteps the infinite
gradient of the ``sqrt`` encoding at zero weights.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from mixing.sampling import prior_candidates, uniform_candidates
from mixing.simplex import FloatArray, SimplexConstraints

#: L2 sizes of local moves: small steps polish, large ones escape a poor basin.
RADII = (0.02, 0.06, 0.18)


def global_pool(
    n: int, constraints: SimplexConstraints, prior: ArrayLike | None, rng: np.random.Generator
) -> FloatArray:
    """Half uniform over the constrained simplex, half RegMix-style draws around the prior.

    Uniform draws cover the interior; prior-shaped Dirichlet draws reach the sparse corners and edges
    (many zero weights) where uniform sampling in 17 dimensions almost never goes.
    """
    half = n // 2
    return np.concatenate(
        [uniform_candidates(n - half, constraints, rng), prior_candidates(half, constraints, prior, rng)]
    )


def local_pool(
    centres: FloatArray,
    n: int,
    constraints: SimplexConstraints,
    rng: np.random.Generator,
    radii: tuple[float, ...] = RADII,
) -> FloatArray:
    """About ``n`` perturbations of ``centres``, spread over the centres and the radii in :data:`RADII`.

    Gaussian steps are taken in the sum-zero plane (so only the bounds, not the sum, need projecting)
    with L2 length about the radius, then projected onto the feasible set.
    """
    centres = np.atleast_2d(np.asarray(centres, dtype=np.float64))
    if len(centres) == 0 or n <= 0:
        return np.zeros((0, constraints.n_domains))
    d = centres.shape[1]
    per = max(1, n // len(centres))
    base = np.repeat(centres, per, axis=0)
    step = rng.standard_normal(base.shape)
    step -= step.mean(axis=1, keepdims=True)
    radius = rng.choice(np.asarray(radii), size=len(base))[:, None]
    step *= radius / np.sqrt(d - 1)
    return constraints.project(base + step)
