"""Checks on the per-domain vectors a session receives, and the exponentiated-gradient step both
DoReMi and Aioli take on the simplex."""

from __future__ import annotations

from typing import Any

import numpy as np

from mixing.online.errors import (
    DomainMismatchError,
    InvalidWeightsError,
    NonFiniteValueError,
    OnlineInputError,
)
from mixing.simplex import FloatArray


def domain_vector(values: Any, n_domains: int, field: str) -> FloatArray:
    """``values`` as a finite float vector with one entry per domain, or a typed error naming ``field``."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise OnlineInputError(field, "must be a list of numbers") from exc
    if arr.ndim != 1 or arr.size != n_domains:
        raise DomainMismatchError(field, f"needs one value per domain ({n_domains}), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        bad = int(np.flatnonzero(~np.isfinite(arr))[0])
        raise NonFiniteValueError(field, f"entry {bad} is {arr[bad]!r}; every value must be finite")
    return arr


def as_mixture(values: Any, n_domains: int, field: str, allow_zeros: bool) -> FloatArray:
    """Non-negative weights rescaled to sum to one (so ``[1, 1, 2]`` is accepted as ``[.25, .25, .5]``)."""
    w = domain_vector(values, n_domains, field)
    if np.any(w < 0):
        raise InvalidWeightsError(field, "weights must be non-negative")
    if not allow_zeros and np.any(w == 0):
        raise InvalidWeightsError(
            field, "weights must be positive: a multiplicative update never moves a zero"
        )
    total = w.sum()
    if total <= 0:
        raise InvalidWeightsError(field, "weights must not all be zero")
    return w / total


def uniform(n_domains: int) -> FloatArray:
    return np.full(n_domains, 1.0 / n_domains)


def exponentiated_step(weights: FloatArray, gradient: FloatArray, eta: float) -> FloatArray:
    """``p' ∝ p · exp(eta · gradient)``, in log space so that a large ``eta · gradient`` cannot overflow.

    Should ``eta · gradient`` still overflow to infinity, the answer is the step's limit: the mass spread
    evenly over the domains whose log-weight is largest (an all-``-inf`` vector gives the uniform mixture),
    never the NaN of ``inf - inf``.
    """
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        z = np.log(weights) + eta * gradient
    z = np.where(np.isnan(z), -np.inf, z)  # 0 * inf: a zero weight stays zero
    top = z.max()
    w = np.exp(z - top) if np.isfinite(top) else (z == top).astype(np.float64)
    return w / w.sum()
