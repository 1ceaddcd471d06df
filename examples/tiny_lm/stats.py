"""The statistics of the CPU study: seed noise, rank agreement between sizes, and comparisons of mixtures.

Pure functions over lists of floats, so the report and the tests use the same arithmetic as the driver.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


def mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs)


def sample_sd(xs: Sequence[float]) -> float:
    """Standard deviation with ``n - 1`` in the denominator (0 for a single value)."""
    if len(xs) < 2:
        return 0.0
    m = mean(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def standard_error(xs: Sequence[float]) -> float:
    """Standard error of the mean: ``sd / sqrt(n)``."""
    return sample_sd(xs) / math.sqrt(len(xs))


def pooled_sd(groups: Sequence[Sequence[float]]) -> float:
    """The seed-to-seed standard deviation pooled over groups (each group: one mixture's seeds).

    ``sqrt(sum_g sum_i (x_gi - mean_g)^2 / sum_g (n_g - 1))``; groups of one value carry no information.
    """
    num = sum(sum((x - mean(g)) ** 2 for x in g) for g in groups if len(g) > 1)
    dof = sum(len(g) - 1 for g in groups if len(g) > 1)
    if dof == 0:
        raise ValueError("pooled_sd needs at least one group with two or more values")
    return math.sqrt(num / dof)


def _ranks(xs: Sequence[float]) -> list[float]:
    """Ranks from 1, ties sharing their average rank."""
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    ranks = [0.0] * len(xs)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and xs[order[j + 1]] == xs[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rank correlation of two equally long sequences (Pearson's on the tie-averaged ranks)."""
    if len(a) != len(b) or len(a) < 2:
        raise ValueError("spearman needs two sequences of the same length >= 2")
    ra, rb = _ranks(a), _ranks(b)
    ma, mb = mean(ra), mean(rb)
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb, strict=True))
    var = math.sqrt(sum((x - ma) ** 2 for x in ra) * sum((y - mb) ** 2 for y in rb))
    return cov / var if var > 0 else 0.0


@dataclass(frozen=True)
class Comparison:
    """``a`` against ``b`` (lower is better): the difference of means, its standard error (Welch), and
    whether ``a`` is better by more than twice that standard error."""

    diff: float  # mean(a) - mean(b); negative: a is better
    se: float  # sqrt(se_a^2 + se_b^2)

    @property
    def z(self) -> float:
        return self.diff / self.se if self.se > 0 else -math.inf if self.diff < 0 else math.inf

    @property
    def better(self) -> bool:
        """``a`` beats ``b`` by more than two standard errors of the difference."""
        return self.diff < -2 * self.se


def compare(a: Sequence[float], b: Sequence[float]) -> Comparison:
    """Compare two mixtures' objective over their seeds (independent samples, unequal variances)."""
    return Comparison(mean(a) - mean(b), math.hypot(standard_error(a), standard_error(b)))
