"""The feasible set of mixtures: the probability simplex cut by per-domain bounds.

Every algorithm in ``mixing`` works on the same object, so that a bound the user declared (a minimum
share, a maximum share, or a cap from tokens available x epochs / target tokens) is enforced once, in
one place, and can be tested once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from mixing.errors import InfeasibleConstraintsError

FloatArray = NDArray[np.float64]

#: Absolute tolerance used when checking that a mixture sums to one and respects its bounds.
SUM_TOLERANCE = 1e-6


@dataclass(frozen=True)
class SimplexConstraints:
    """Per-domain bounds on a mixture: ``lower <= w <= upper`` and ``sum(w) == 1``."""

    lower: FloatArray
    upper: FloatArray

    def __post_init__(self) -> None:
        lower = np.asarray(self.lower, dtype=np.float64)
        upper = np.asarray(self.upper, dtype=np.float64)
        object.__setattr__(self, "lower", lower)
        object.__setattr__(self, "upper", upper)
        if lower.ndim != 1 or lower.shape != upper.shape or lower.size < 2:
            raise InfeasibleConstraintsError("bounds must be two equal-length vectors of at least 2 domains")
        if np.any(lower < 0) or np.any(upper > 1) or np.any(lower > upper):
            raise InfeasibleConstraintsError("bounds must satisfy 0 <= lower <= upper <= 1 per domain")
        if lower.sum() > 1 + SUM_TOLERANCE:
            raise InfeasibleConstraintsError(f"minimum weights sum to {lower.sum():.6g} > 1")
        if upper.sum() < 1 - SUM_TOLERANCE:
            raise InfeasibleConstraintsError(f"maximum weights sum to {upper.sum():.6g} < 1")

    @classmethod
    def unconstrained(cls, n_domains: int) -> SimplexConstraints:
        return cls(np.zeros(n_domains), np.ones(n_domains))

    @classmethod
    def from_spec(
        cls,
        n_domains: int,
        min_weight: ArrayLike | None = None,
        max_weight: ArrayLike | None = None,
        tokens_available: ArrayLike | None = None,
        max_epochs: float | None = None,
        target_tokens: float | None = None,
    ) -> SimplexConstraints:
        """Combine declared bounds with the epoch cap ``tokens_available * max_epochs / target_tokens``.

        ``tokens_available`` may hold NaN for domains whose supply is unknown (no cap).
        """
        lower = np.zeros(n_domains) if min_weight is None else np.asarray(min_weight, dtype=np.float64)
        upper = np.ones(n_domains) if max_weight is None else np.asarray(max_weight, dtype=np.float64)
        if tokens_available is not None and max_epochs is not None and target_tokens:
            supply = np.asarray(tokens_available, dtype=np.float64)
            cap = np.where(np.isnan(supply), 1.0, supply * max_epochs / target_tokens)
            upper = np.minimum(upper, np.clip(cap, 0.0, 1.0))
        return cls(lower, upper)

    @property
    def n_domains(self) -> int:
        return int(self.lower.size)

    def violations(self, mixtures: ArrayLike, tol: float = SUM_TOLERANCE) -> NDArray[np.bool_]:
        """Boolean mask ``(n,)``: which rows break the sum, the sign or a bound."""
        w = np.atleast_2d(np.asarray(mixtures, dtype=np.float64))
        bad_sum = np.abs(w.sum(axis=1) - 1.0) > tol
        bad_bounds = np.any(w < self.lower - tol, axis=1) | np.any(w > self.upper + tol, axis=1)
        return bad_sum | bad_bounds

    def contains(self, mixtures: ArrayLike, tol: float = SUM_TOLERANCE) -> NDArray[np.bool_]:
        return ~self.violations(mixtures, tol)

    def project(self, points: ArrayLike) -> FloatArray:
        """Euclidean projection of each row onto the feasible set.

        The projection of v is ``clip(v - tau, lower, upper)`` for the scalar tau that makes it sum to 1;
        the sum is monotone in tau, so tau is found by bisection, vectorised over rows.
        """
        v = np.atleast_2d(np.asarray(points, dtype=np.float64))
        lo_tau = (v - self.upper).min(axis=1) - 1.0
        hi_tau = (v - self.lower).max(axis=1) + 1.0
        for _ in range(100):
            mid = 0.5 * (lo_tau + hi_tau)
            total = np.clip(v - mid[:, None], self.lower, self.upper).sum(axis=1)
            too_big = total > 1.0
            lo_tau = np.where(too_big, mid, lo_tau)
            hi_tau = np.where(too_big, hi_tau, mid)
        w = np.clip(v - (0.5 * (lo_tau + hi_tau))[:, None], self.lower, self.upper)
        return self._renormalise(w)

    def _renormalise(self, w: FloatArray) -> FloatArray:
        """Remove the bisection's last rounding error by moving it onto coordinates with slack."""
        residual = 1.0 - w.sum(axis=1)
        slack = np.where(residual[:, None] > 0, self.upper - w, w - self.lower)
        share = slack / np.maximum(slack.sum(axis=1, keepdims=True), 1e-300)
        return w + residual[:, None] * share

    def chebyshev_center(self) -> FloatArray:
        """A well-interior feasible point: the projection of the uniform mixture."""
        return self.project(np.full(self.n_domains, 1.0 / self.n_domains))[0]
