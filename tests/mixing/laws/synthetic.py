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


#: A continual-pretraining setting drawn from the CMR law: per group (E, A, alpha, beta), tokens in raw units.
CMR_TRUTH = {"general": (2.0, 30.0, 0.15, 0.6), "domain": (1.5, 80.0, 0.2, 0.4)}
CMR_OFFSET = 0.05
CMR_RATIOS = (0.0, 0.1, 0.25, 0.5, 0.75)
CMR_TOKENS = (1e8, 2e8, 4e8, 8e8)


def cmr_losses(ratios: FloatArray, tokens: FloatArray) -> FloatArray:
    """(general, domain) losses ``(n, 2)`` of ``E + A T^-alpha (share + offset)^-beta`` per group."""
    out = []
    for name, share in (("general", 1.0 - ratios), ("domain", ratios)):
        e, a, alpha, beta = CMR_TRUTH[name]
        out.append(e + a * tokens ** -alpha * (share + CMR_OFFSET) ** -beta)
    return np.column_stack(out)


def cmr_runs(noise: float, seed: int, ratios: tuple[float, ...] = CMR_RATIOS,
             tokens: tuple[float, ...] = CMR_TOKENS) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Runs on the (ratio x tokens) grid: ratios ``(n,)``, tokens ``(n,)``, noisy losses ``(n, 2)``."""
    r, t = (a.ravel() for a in np.meshgrid(np.asarray(ratios), np.asarray(tokens)))
    rng = np.random.default_rng(seed)
    return r, t, cmr_losses(r, t) + rng.normal(0.0, noise, (len(r), 2))


def true_cmr(limit: float, target_tokens: float) -> float:
    """The largest ratio on a fine grid whose true general loss stays at most ``limit`` (0 if none does)."""
    grid = np.linspace(0.0, 1.0, 100_001)
    ok = cmr_losses(grid, np.full_like(grid, target_tokens))[:, 0] <= limit
    return float(grid[ok].max()) if ok.any() else 0.0
