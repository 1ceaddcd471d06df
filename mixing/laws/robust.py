"""Batched robust nonlinear least squares (Levenberg-Marquardt with Huber IRLS weights).

Parametric mixing laws are small curve fits (tens of parameters, hundreds of runs) repeated for every
metric, every start and every cross-validation fold. Solving them one at a time through a generic
optimiser spends most of its time in Python overhead; here a whole batch of independent problems
(metrics x starts) takes one vectorised Gauss-Newton step per iteration, each problem with its own damping.
The Huber loss is minimised by iteratively reweighted least squares, which is exact for it at convergence.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mixing.simplex import FloatArray

#: ``model(theta (b, p), rows (b,), with_jac)`` -> predictions ``(b, n)`` and, when asked, the Jacobian
#: ``(b, n, p)``. ``rows`` says which of the B problems the b parameter rows belong to, for models whose
#: inputs differ between problems.
BatchModel = Callable[[FloatArray, np.ndarray, bool], tuple[FloatArray, FloatArray | None]]


@dataclass(frozen=True)
class BatchFit:
    theta: FloatArray
    #: Final objective (Huber or half squared error, summed over runs) per problem.
    objective: FloatArray


def huber(residuals: FloatArray, delta: FloatArray | None) -> FloatArray:
    """Row sums of the Huber loss (``delta`` per row); half squared error when ``delta`` is None."""
    if delta is None:
        return 0.5 * np.sum(residuals**2, axis=1)
    d = delta[:, None]
    a = np.abs(residuals)
    return np.sum(np.where(a <= d, 0.5 * residuals**2, d * (a - 0.5 * d)), axis=1)


def robust_scale(residuals: FloatArray) -> FloatArray:
    """Per-row robust standard deviation (1.4826 x median absolute deviation), floored away from zero."""
    med = np.median(residuals, axis=1, keepdims=True)
    mad = 1.4826 * np.median(np.abs(residuals - med), axis=1)
    return np.maximum(mad, 1e-8 * (1.0 + np.abs(med[:, 0])))


def levenberg_marquardt(
    model: BatchModel,
    theta0: FloatArray,
    y: FloatArray,
    delta: FloatArray | None = None,
    max_iter: int = 100,
    tol: float = 1e-10,
    ridge: float = 1e-8,
) -> BatchFit:
    """Minimise ``sum_i rho(model(theta)_i - y_i)`` for each of the B problems independently.

    ``y`` is ``(B, n)``; ``delta`` ``(B,)`` switches on the Huber loss. Each problem keeps its own damping
    (raised on a rejected step, lowered on an accepted one) and stops when its relative improvement falls
    below ``tol``; the batch stops when every problem has. A tiny ridge keeps the normal equations
    solvable for laws whose parameters are only identified up to a direction (e.g. a constant shift of the
    exponent on the simplex).
    """
    with np.errstate(over="ignore", invalid="ignore"):  # wild trial steps overflow; they are rejected
        return _lm(model, np.array(theta0, dtype=np.float64, copy=True), y, delta, max_iter, tol, ridge)


def _lm(
    model: BatchModel,
    theta: FloatArray,
    y: FloatArray,
    delta: FloatArray | None,
    max_iter: int,
    tol: float,
    ridge: float,
) -> BatchFit:
    b, p = theta.shape
    pred, jac = model(theta, np.arange(b), True)
    assert jac is not None
    obj = _objective(pred, y, delta)
    lam = np.full(b, 1e-3)
    active = np.isfinite(obj)
    eye = np.eye(p)
    for _ in range(max_iter):
        if not active.any():
            break
        idx = np.flatnonzero(active)
        r = pred[idx] - y[idx]
        w = _irls_weights(r, None if delta is None else delta[idx])
        jw = jac[idx] * w[:, :, None]
        jt = jw.transpose(0, 2, 1)
        hess = jt @ jac[idx]  # batched matrix products go to BLAS (einsum would not)
        grad = (jt @ r[:, :, None])[:, :, 0]
        diag = np.einsum("bpp->bp", hess)
        damp = lam[idx, None, None] * (diag[:, :, None] * eye + ridge * eye) + ridge * eye
        step = -_solve(hess + damp, grad)
        trial = theta[idx] + step
        t_pred, _ = model(trial, idx, False)
        t_obj = _objective(t_pred, y[idx], None if delta is None else delta[idx])
        better = np.isfinite(t_obj) & (t_obj < obj[idx])
        gain = np.where(better, (obj[idx] - t_obj) / np.maximum(np.abs(obj[idx]), 1e-300), 0.0)
        acc = idx[better]
        if acc.size:
            theta[acc] = trial[better]
            new_pred, new_jac = model(theta[acc], acc, True)
            assert new_jac is not None
            pred[acc], jac[acc], obj[acc] = new_pred, new_jac, t_obj[better]
        lam[idx] = np.where(better, np.maximum(lam[idx] / 3.0, 1e-9), lam[idx] * 4.0)
        converged = (better & (gain < tol)) | (lam[idx] > 1e10)
        active[idx[converged]] = False
    return BatchFit(theta=theta, objective=obj)


def _objective(pred: FloatArray, y: FloatArray, delta: FloatArray | None) -> FloatArray:
    out = huber(pred - y, delta)
    return np.where(np.all(np.isfinite(pred), axis=1), out, np.inf)


def _irls_weights(r: FloatArray, delta: FloatArray | None) -> FloatArray:
    if delta is None:
        return np.ones_like(r)
    a = np.abs(r)
    return np.where(a <= delta[:, None], 1.0, delta[:, None] / np.maximum(a, 1e-300))


def _solve(a: FloatArray, b: FloatArray) -> FloatArray:
    try:
        return np.asarray(np.linalg.solve(a, b[:, :, None])[:, :, 0], dtype=np.float64)
    except np.linalg.LinAlgError:
        return np.stack([np.linalg.lstsq(ai, bi, rcond=None)[0] for ai, bi in zip(a, b, strict=True)])
