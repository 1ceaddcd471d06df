"""Synthetic proxy-run tables drawn from laws with known parameters, shared by the law tests."""

from __future__ import annotations

import numpy as np

from mixing.simplex import FloatArray


def mixtures(n: int, d: int, seed: int, concentration: float = 1.0) -> FloatArray:
    """Dirichlet mixtures, as RegMix-style designs produce (some shares near zero)."""
    return np.random.default_rng(seed).dirichlet(np.full(d, concentration), size=n)


def exp_law(x: FloatArray, c: FloatArray, k: FloatArray, t: FloatArray) -> FloatArray:
    """``c_i + k_i exp(sum_j t_ij x_j)`` for every metric i: ``(n, len(c))``."""
    return c[None, :] + k[None, :] * np.exp(x @ t.T)


def power_law(
    x: FloatArray, domains: list[int], c: FloatArray, a: FloatArray, alpha: FloatArray, eps: float
) -> FloatArray:
    """BiMix: ``c_i + a_i (x_dom(i) + eps)^-alpha_i``."""
    return c[None, :] + a[None, :] * (x[:, domains] + eps) ** (-alpha[None, :])
