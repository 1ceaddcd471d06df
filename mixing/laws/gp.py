"""Gaussian process on the simplex, one independent GP per metric, with calibrated uncertainty.

Inputs are ``sqrt(w)`` (the Hellinger embedding of the simplex, which spreads out the small shares
where losses change fastest) scaled to [0, 1] per column, plus the normalised fidelity coordinates when
given, so one GP can learn across scales. Kernel: ARD Matern-5/2 with BoTorch's dimension-scaled
log-normal lengthscale prior (``loc = sqrt(2) + log(D) / 2``, ``scale = sqrt(3)``), on standardised outputs.

Speed: the marginal likelihood and its exact gradient are written out in NumPy (one Cholesky and one
inverse per evaluation, lengthscale gradients by two matrix products) rather than left to an autograd
framework, so that a cross-validated comparison of every law, which fits this GP once per fold and per
metric, stays interactive. Hyperparameters are learnt on at most
``max_hyper_points`` runs (a random subset), the posterior then conditions on all of them.

Calibration: leave-one-out residuals of a GP are available in closed form; their z-scores give, per
metric, the factor by which the predictive standard deviation must be widened (or narrowed) so that
``mean +- 1.645 sd`` covers 90% of left-out runs (residuals of real proxy runs are heavier-tailed than
normal, so matching the variance alone under-covers), and their correlation across metrics gives the
uncertainty of a weighted aggregate.
"""

from __future__ import annotations

from numbers import Integral
from typing import Any, ClassVar, Literal

import numpy as np
from scipy.linalg import cho_factor, cho_solve
from scipy.optimize import minimize
from sklearn.utils._param_validation import Interval, StrOptions

from mixing.errors import FitError, NotEnoughDataError
from mixing.laws.base import MixingLaw
from mixing.laws.exponential import simplex_rows
from mixing.laws.threads import single_threaded
from mixing.simplex import FloatArray

Kernel = Literal["matern52", "rbf"]
JITTER = 1e-6
#: Log-normal priors (mean, sd) on the signal variance and noise variance of standardised outputs.
LOG_SIGNAL_PRIOR = (0.0, 1.5)
LOG_NOISE_PRIOR = (-4.0, 2.0)
#: Calibration matches this central coverage: the 90% quantile of |z| must equal the normal one.
CALIBRATION_COVERAGE = 0.9
NORMAL_Q90 = 1.6448536269514722


class SimplexGP(MixingLaw):
    """Exact GP regression per metric; ``predict_std`` gives calibrated predictive standard deviations."""

    name: ClassVar[str] = "gp"
    differentiable: ClassVar[bool] = True
    uses_fidelity: ClassVar[bool] = True
    provides_intervals: ClassVar[bool] = True
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "kernel": [StrOptions({"matern52", "rbf"})],
        "max_hyper_points": [Interval(Integral, 1, None, closed="left")],
        "max_iter": [Interval(Integral, 0, None, closed="left")],
        "seed": [Interval(Integral, 0, None, closed="left")],
    }

    def __init__(
        self, kernel: Kernel = "matern52", max_hyper_points: int = 192, max_iter: int = 50, seed: int = 0
    ) -> None:
        self.kernel = kernel
        self.max_hyper_points = max_hyper_points
        self.max_iter = max_iter
        self.seed = seed

    def min_runs(self, n_domains: int) -> int:
        return 5

    # ------------------------------------------------------------------------------------------ fitting
    @single_threaded
    def _fit(self, x: FloatArray, fidelity: FloatArray | None, t: FloatArray) -> None:
        n = len(x)
        if n < self.min_runs(x.shape[1]):
            raise NotEnoughDataError("gp needs runs to fit", self.min_runs(x.shape[1]), n)
        raw = _raw_features(simplex_rows(x), fidelity)
        self.lo_ = raw.min(axis=0)
        self.span_ = np.where(np.ptp(raw, axis=0) > 0, np.ptp(raw, axis=0), 1.0)
        z = (raw - self.lo_) / self.span_
        self.y_mean_ = t.mean(axis=0)
        self.y_std_ = np.where(t.std(axis=0) > 0, t.std(axis=0), 1.0)
        ys = (t - self.y_mean_) / self.y_std_
        rng = np.random.default_rng(self.seed)
        sub = rng.permutation(n)[: self.max_hyper_points]
        self.theta_ = np.stack([self._fit_hyper(z[sub], ys[sub, j]) for j in range(t.shape[1])])
        self.z_ = z
        self._condition(ys)

    def _prior_mean(self, dims: int) -> float:
        return float(np.sqrt(2.0) + 0.5 * np.log(dims))

    def _fit_hyper(self, z: FloatArray, y: FloatArray) -> FloatArray:
        dims = z.shape[1]
        mu = self._prior_mean(dims)
        theta0 = np.concatenate([np.full(dims, mu - 1.0), [0.0, -3.0]])
        bounds = [(np.log(1e-2), np.log(1e3))] * dims + [(np.log(0.05), np.log(20.0)), (np.log(1e-6), 0.0)]
        res = minimize(
            _neg_log_posterior,
            theta0,
            args=(z, y, self.kernel, mu),
            jac=True,
            method="L-BFGS-B",
            bounds=bounds,
            options={"maxiter": self.max_iter},
        )
        return np.asarray(res.x)

    def _condition(self, ys: FloatArray) -> None:
        """Posterior weights on all runs, and leave-one-out calibration of the predictive spread."""
        n, k = ys.shape
        self.alpha_ = np.empty((k, n))
        self.kinv_ = np.empty((k, n, n))
        z_loo = np.empty((n, k))
        for j in range(k):
            kmat = _covariance(self.z_, self.z_, self.theta_[j], self.kernel) + self._noise(j) * np.eye(n)
            factor = cho_factor(kmat, lower=True)
            self.alpha_[j] = cho_solve(factor, ys[:, j])
            self.kinv_[j] = cho_solve(factor, np.eye(n))
            diag = np.diag(self.kinv_[j])
            z_loo[:, j] = (self.alpha_[j] / diag) * np.sqrt(diag)  # LOO residual / LOO sd
        q = np.quantile(np.abs(z_loo), CALIBRATION_COVERAGE, axis=0)
        self.calibration_ = np.maximum(q / NORMAL_Q90, 1e-3)
        self.loo_corr_ = np.corrcoef(z_loo.T).reshape(k, k) if k > 1 else np.ones((1, 1))

    def _noise(self, j: int) -> float:
        return float(np.exp(self.theta_[j, -1]) + JITTER)

    # --------------------------------------------------------------------------------------- prediction
    def _z(self, x: FloatArray, fidelity: FloatArray | None) -> FloatArray:
        """Scaled model inputs; the fidelity columns only if the GP was fitted with any (else ignored)."""
        if self.n_fidelity_ and fidelity is None:
            raise FitError("this gp was fitted with fidelity coordinates; give them to predict")
        return (_raw_features(x, fidelity if self.n_fidelity_ else None) - self.lo_) / self.span_

    @single_threaded
    def _predict(self, x: FloatArray, fidelity: FloatArray | None) -> FloatArray:
        zq = self._z(x, fidelity)
        out = np.empty((len(zq), len(self.theta_)))
        for j, theta in enumerate(self.theta_):
            out[:, j] = _covariance(zq, self.z_, theta, self.kernel) @ self.alpha_[j]
        return out * self.y_std_ + self.y_mean_

    def _predict_std(self, x: FloatArray, fidelity: FloatArray | None) -> FloatArray:
        """Calibrated predictive standard deviation of a new run's metrics ``(n, k)`` (noise included)."""
        zq = self._z(x, fidelity)
        out = np.empty((len(zq), len(self.theta_)))
        for j, theta in enumerate(self.theta_):
            ks = _covariance(zq, self.z_, theta, self.kernel)
            var = np.exp(theta[-2]) - np.einsum("mn,nk,mk->m", ks, self.kinv_[j], ks) + self._noise(j)
            out[:, j] = np.sqrt(np.maximum(var, JITTER))
        return out * self.y_std_ * self.calibration_

    def _aggregate_std(self, x: FloatArray, fidelity: FloatArray | None, weights: FloatArray) -> FloatArray:
        """Standard deviation of ``metrics @ weights``, using the metrics' leave-one-out error correlation."""
        s = self._predict_std(x, fidelity) * weights[None, :]
        return np.sqrt(np.maximum(np.einsum("nj,jk,nk->n", s, self.loo_corr_, s), 0.0))


def _raw_features(x: FloatArray, fidelity: FloatArray | None) -> FloatArray:
    """``sqrt(w)`` of the simplex rows, then the fidelity columns when given."""
    root = np.sqrt(simplex_rows(x))
    return root if fidelity is None else np.column_stack([root, fidelity])


def _covariance(a: FloatArray, b: FloatArray, theta: FloatArray, kernel: Kernel) -> FloatArray:
    k = _kernel_values(_sqdist(a / np.exp(theta[:-2]), b / np.exp(theta[:-2])), kernel)
    k *= np.exp(theta[-2])
    return k


def _sqdist(u: FloatArray, v: FloatArray) -> FloatArray:
    sq = u @ v.T
    sq *= -2.0
    sq += (u**2).sum(axis=1)[:, None]
    sq += (v**2).sum(axis=1)[None, :]
    return np.maximum(sq, 0.0, out=sq)


def _kernel(sq: FloatArray, kernel: Kernel) -> tuple[FloatArray, FloatArray]:
    """Unit-variance kernel values and their derivative with respect to the squared scaled distance.

    Computed in place where possible: prediction on large candidate pools is dominated by this function.
    """
    if kernel == "rbf":
        k0 = np.exp(np.multiply(sq, -0.5))
        return k0, -0.5 * k0
    r = np.sqrt(np.multiply(sq, 5.0))
    e = np.exp(np.negative(r))
    poly = np.add(r, 1.0)
    dk = np.multiply(poly, e)
    dk *= -5.0 / 6.0
    poly += np.multiply(sq, 5.0 / 3.0, out=r)
    return np.multiply(poly, e, out=poly), dk


def _kernel_values(sq: FloatArray, kernel: Kernel) -> FloatArray:
    """Kernel values only (no derivative), overwriting ``sq``: the prediction path."""
    if kernel == "rbf":
        return np.exp(np.multiply(sq, -0.5, out=sq), out=sq)
    r = np.sqrt(np.multiply(sq, 5.0), out=np.empty_like(sq))
    sq *= 5.0 / 3.0
    sq += r
    sq += 1.0
    np.exp(np.negative(r, out=r), out=r)
    return np.multiply(sq, r, out=sq)


def _neg_log_posterior(
    theta: FloatArray, z: FloatArray, y: FloatArray, kernel: Kernel, prior_mu: float
) -> tuple[float, FloatArray]:
    """Negative log marginal likelihood plus log-normal priors, and its exact gradient."""
    n, dims = z.shape
    log_l, log_s, log_n = theta[:dims], theta[dims], theta[dims + 1]
    u = z / np.exp(log_l)
    k0, dk = _kernel(_sqdist(u, u), kernel)
    s, noise = np.exp(log_s), np.exp(log_n)
    kmat = s * k0 + (noise + JITTER) * np.eye(n)
    try:
        factor = cho_factor(kmat, lower=True)
    except np.linalg.LinAlgError:
        return 1e10, np.zeros_like(theta)
    alpha = cho_solve(factor, y)
    kinv = cho_solve(factor, np.eye(n))
    w = np.outer(alpha, alpha) - kinv
    val = 0.5 * y @ alpha + np.log(np.diag(factor[0])).sum() + 0.5 * n * np.log(2 * np.pi)
    m = w * (s * dk)
    rows = m.sum(axis=1)
    pair = 2.0 * (u**2 * rows[:, None]).sum(axis=0) - 2.0 * np.einsum("aj,aj->j", u, m @ u)
    grad = np.empty_like(theta)
    grad[:dims] = pair
    grad[dims] = -0.5 * np.sum(w * (s * k0))
    grad[dims + 1] = -0.5 * noise * np.trace(w)
    # Priors: BoTorch's dimension-scaled lengthscale prior, weak priors on signal and noise.
    l_sd2 = 3.0
    val += 0.5 * np.sum((log_l - prior_mu) ** 2) / l_sd2
    grad[:dims] += (log_l - prior_mu) / l_sd2
    for i, (mean, sd) in ((dims, LOG_SIGNAL_PRIOR), (dims + 1, LOG_NOISE_PRIOR)):
        val += 0.5 * (theta[i] - mean) ** 2 / sd**2
        grad[i] += (theta[i] - mean) / sd**2
    return float(val), grad
