"""RegMix's search step: simulate many candidate mixtures, predict, average the best k.

Averaging the top-k rather than taking the arg-min protects against a regressor's single over-optimistic
prediction: the mean of many near-best mixtures is a smoother, better-supported choice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mixing.simplex import FloatArray, SimplexConstraints


@dataclass(frozen=True)
class TopKResult:
    mixture: FloatArray
    #: The k best candidates and their predicted losses, best first.
    top_mixtures: FloatArray
    top_losses: FloatArray


def average_top_k(
    loss_fn: Callable[[FloatArray], FloatArray],
    candidates: FloatArray,
    constraints: SimplexConstraints,
    k: int = 128,
    batch: int = 20_000,
) -> TopKResult:
    """Predict ``loss_fn`` (lower is better) on every candidate and average the ``k`` best mixtures.

    The feasible set is convex, so the average of feasible candidates is feasible; it is projected anyway
    to remove rounding drift.
    """
    losses = np.concatenate([np.asarray(loss_fn(candidates[i : i + batch])).reshape(-1)
                             for i in range(0, len(candidates), batch)])
    k = int(min(max(k, 1), len(candidates)))
    best = np.argpartition(losses, k - 1)[:k]
    best = best[np.argsort(losses[best])]
    mixture = constraints.project(candidates[best].mean(axis=0))[0]
    return TopKResult(mixture=mixture, top_mixtures=candidates[best], top_losses=losses[best])
