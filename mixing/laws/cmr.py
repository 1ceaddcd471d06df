"""The CMR law (after Gu et al. 2024, "CMR Scaling Law", arXiv 2407.17467): continual pretraining of a base
model on general data replayed with domain data, at domain ratio ``r`` for ``T`` tokens.

Two groups of domains, general and domain, and one loss per group. The paper finds each loss a power law in
the mixture ratio and the training tokens; this law writes it, for group ``g`` with share ``q_g`` of the
mixture (``q_general = 1 - r``, ``q_domain = r``), as::

    L_g(r, T) = E_g + A_g * T ** (-alpha_g) * (q_g + offset) ** (-beta_g),   A_g, alpha_g, beta_g > 0

so a group's loss falls as it gets more of the mixture and as training goes on, towards ``E_g``. ``offset``
(a hyperparameter, not fitted: it trades off against ``beta`` and would leave both poorly identified) keeps
the loss finite at a share of zero, where a continually pretrained model still has the base model's loss.
The paper fits its power laws on runs at several ratios and token counts; we could not retrieve its exact
parameterisation, so this is the product-of-power-laws form, stated here so that what is fitted is clear.
Its consequence is the paper's CMR scaling law: the largest ratio whose general loss stays below a limit
``L*`` is, solving the general law for ``r``,

    r_CMR(T) = 1 + offset - (A_G / (L* - E_G)) ** (1 / beta_G) * T ** (-alpha_G / beta_G),

of the paper's form ``beta_0 + beta_1 * T ** s`` (its Eq. for R_CMR), growing with the token budget.

**Critical mixture ratio** (:meth:`CMRLaw.critical_ratio`): the largest ``r`` in ``[0, 1]`` whose predicted
general loss at the target tokens exceeds the base model's general loss by at most the tolerance
(absolute: ``L_G - L0 <= tol``; relative: ``L_G - L0 <= tol * L0``), while the predicted domain loss still
falls with ``r``. With ``beta_D > 0`` the domain loss falls with ``r`` everywhere, so the second condition
always holds and the ratio is the general-loss bound above, clipped to ``[0, 1]``. When even ``r = 0``
breaks the tolerance, no ratio is feasible: the answer is ``r = 0`` with ``feasible = False``.

Fit, per group: a profile over ``E`` (a grid below the smallest loss; for each, ``log(L - E)`` is linear in
``log T`` and ``log(q + offset)``, solved by least squares), then the best starts polished by nonlinear least
squares on the losses themselves (positive parameters in log space). Deterministic: no random starts.

Inputs follow :class:`~mixing.laws.base.MixingLaw`: ``mixtures (n, 2)`` are the (general, domain) shares of
each run, ``fidelity (n, 1)`` its tokens ``T > 0`` (raw, not normalised: the law is a power law in ``T``),
``y (n, 2)`` its (general, domain) losses.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np
from scipy.optimize import least_squares
from sklearn.utils._param_validation import Interval

from mixing.errors import FitError, InputShapeError, NotEnoughDataError
from mixing.laws.base import MixingLaw
from mixing.laws.exponential import simplex_rows
from mixing.laws.threads import single_threaded
from mixing.simplex import FloatArray

#: Column of each group in ``mixtures`` and ``y``.
GENERAL, DOMAIN = 0, 1
GROUPS = ("general", "domain")
#: Parameters per group: ``E``, ``log A`` (at the reference tokens), ``log alpha``, ``log beta``.
N_PARAMS = 4
MAX_EXP = 700.0


class ToleranceKind(StrEnum):
    """How the general-loss tolerance is read: in loss units, or as a fraction of the base general loss."""

    absolute = "absolute"
    relative = "relative"


@dataclass(frozen=True)
class GroupParams:
    """One group's law ``E + A * T**-alpha * (q + offset)**-beta`` (``A`` for ``T`` in raw tokens)."""

    E: float
    A: float
    alpha: float
    beta: float

    def as_dict(self) -> dict[str, float]:
        return {"E": self.E, "A": self.A, "alpha": self.alpha, "beta": self.beta}


@dataclass(frozen=True)
class CriticalRatio:
    """The critical mixture ratio at the target tokens and the losses predicted there."""

    ratio: float
    #: Whether some ratio keeps the general loss within the tolerance (else ``ratio`` is 0).
    feasible: bool
    general_loss: float
    domain_loss: float


class CMRLaw(MixingLaw):
    """General and domain loss of continual pretraining as power laws in the domain ratio and tokens."""

    name: ClassVar[str] = "cmr"
    #: Per group ``(2, 4)``: ``E``, ``log A`` at the reference tokens, ``log alpha``, ``log beta``.
    theta_: FloatArray
    #: The reference ``log T`` (mean of the fitted runs') the amplitudes are given at.
    log_t_ref_: float
    differentiable: ClassVar[bool] = True
    uses_fidelity: ClassVar[bool] = True
    fits_aggregate: ClassVar[bool] = False
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "offset": [Interval(Real, 0, None, closed="neither")],
        "n_grid": [Interval(Integral, 2, None, closed="left")],
        "n_polish": [Interval(Integral, 1, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "warm_start": ["boolean"],
    }

    def __init__(self, offset: float = 0.05, n_grid: int = 24, n_polish: int = 3, max_iter: int = 200,
                 warm_start: bool = False) -> None:
        self.offset = offset
        self.n_grid = n_grid
        self.n_polish = n_polish
        self.max_iter = max_iter
        self.warm_start = warm_start

    def min_runs(self, n_domains: int) -> int:
        """Runs at distinct (ratio, tokens): four parameters per group and two degrees of freedom left."""
        return N_PARAMS + 2

    @single_threaded
    def _fit(self, x: FloatArray, fidelity: FloatArray | None, y: FloatArray) -> None:
        q, log_t = self._inputs(x, fidelity)
        if y.shape[1] != 2:
            raise InputShapeError(f"CMRLaw needs two loss columns (general, domain), got {y.shape[1]}")
        distinct = np.unique(np.column_stack([q[:, DOMAIN], log_t]), axis=0)
        if len(distinct) < self.min_runs(2):
            raise NotEnoughDataError("the CMR law needs runs at distinct (ratio, tokens)", self.min_runs(2),
                                     len(distinct))
        for what, values in (("token counts", log_t), ("ratios", q[:, DOMAIN])):
            if len(np.unique(values)) < 2:
                raise NotEnoughDataError(f"the CMR law needs runs at more than one of its {what}", 2, 1)
        previous = getattr(self, "theta_", None) if self.warm_start else None
        log_t_ref = float(np.mean(log_t)) if previous is None else self.log_t_ref_
        u = log_t - log_t_ref
        theta = np.empty((2, N_PARAMS))
        for g in (GENERAL, DOMAIN):
            z = np.log(q[:, g] + self.offset)
            starts = [previous[g]] if previous is not None else self._grid_starts(y[:, g], u, z)
            theta[g] = self._polish(y[:, g], u, z, starts)
        if not np.all(np.isfinite(theta)):
            raise FitError("the CMR law's fit did not converge to finite parameters")
        self.theta_ = theta
        self.log_t_ref_ = log_t_ref

    def _inputs(self, x: FloatArray, fidelity: FloatArray | None) -> tuple[FloatArray, FloatArray]:
        """Group shares ``(n, 2)`` summing to one and ``log T`` ``(n,)``, after checking both."""
        if x.shape[1] != 2:
            raise InputShapeError(f"CMRLaw takes two domains (general, domain shares), got {x.shape[1]} domains")
        if fidelity is None or fidelity.shape[1] != 1:
            got = None if fidelity is None else fidelity.shape[1]
            raise InputShapeError(f"CMRLaw takes one fidelity axis (training tokens), got {got}")
        tokens = fidelity[:, 0]
        if not np.all(np.isfinite(tokens) & (tokens > 0)):
            raise FitError("CMRLaw needs positive, finite token counts")
        if np.any(x < 0) or not np.all(np.isfinite(x)):
            raise FitError("CMRLaw needs non-negative, finite group shares")
        return simplex_rows(x), np.log(tokens)

    def _grid_starts(self, y: FloatArray, u: FloatArray, z: FloatArray) -> list[FloatArray]:
        """The ``n_polish`` best points of the profile over ``E`` (log-linear least squares at each)."""
        span = max(float(np.ptp(y)), 1e-6 * (1.0 + abs(float(np.min(y)))))
        design = np.column_stack([np.ones_like(u), -u, -z])
        found = []
        for gap in np.geomspace(1e-3, 1e2, self.n_grid):
            e = float(np.min(y)) - span * gap
            coef, *_ = np.linalg.lstsq(design, np.log(y - e), rcond=None)
            theta = np.array([e, coef[0], np.log(max(coef[1], 1e-4)), np.log(max(coef[2], 1e-4))])
            sse = float(np.sum(_residual(theta, y, u, z) ** 2))
            if np.isfinite(sse):
                found.append((sse, theta))
        found.sort(key=lambda pair: pair[0])
        return [theta for _, theta in found[: self.n_polish]]

    def _polish(self, y: FloatArray, u: FloatArray, z: FloatArray, starts: list[FloatArray]) -> FloatArray:
        """Least squares on the losses from each start; the best solution."""
        best, best_cost = None, np.inf
        for start in starts:
            with np.errstate(over="ignore", invalid="ignore"):
                sol = least_squares(_residual, start, jac=_jacobian, args=(y, u, z), method="lm",
                                    max_nfev=self.max_iter * (N_PARAMS + 1))
            if np.all(np.isfinite(sol.x)) and sol.cost < best_cost:
                best, best_cost = sol.x, float(sol.cost)
        if best is None:
            raise FitError("the CMR law's fit found no finite solution")
        return np.asarray(best, dtype=np.float64)

    def _predict(self, x: FloatArray, fidelity: FloatArray | None) -> FloatArray:
        q, log_t = self._inputs(x, fidelity)
        u = log_t - self.log_t_ref_
        return np.column_stack([
            _law(self.theta_[g], u, np.log(q[:, g] + self.offset)) for g in (GENERAL, DOMAIN)
        ])

    def leverage(self, mixtures: FloatArray, fidelity: FloatArray) -> FloatArray:
        """Hat-matrix diagonal ``(n, 2)`` of each group's fit at these runs (the runs it was fitted on): how
        much each run's loss pulls its own fitted value, from the Jacobian at the solution."""
        x, f = self._check_predict_inputs(mixtures, fidelity)
        q, log_t = self._inputs(x, f)
        u = log_t - self.log_t_ref_
        out = np.empty((len(x), 2))
        for g in (GENERAL, DOMAIN):
            jac = _jacobian(self.theta_[g], np.empty(0), u, np.log(q[:, g] + self.offset))
            out[:, g] = np.sum(jac * np.linalg.lstsq(jac.T @ jac, jac.T, rcond=None)[0].T, axis=1)
        return out

    def params(self) -> dict[str, GroupParams]:
        """Each group's fitted law, ``A`` rescaled to raw token counts."""
        return {name: GroupParams(E=float(th[0]), A=float(np.exp(th[1] + np.exp(th[2]) * self.log_t_ref_)),
                                  alpha=float(np.exp(th[2])), beta=float(np.exp(th[3])))
                for name, th in zip(GROUPS, self.theta_, strict=True)}

    def critical_ratio(self, base_general_loss: float, tolerance: float, target_tokens: float,
                       kind: ToleranceKind = ToleranceKind.absolute) -> CriticalRatio:
        """The critical mixture ratio at ``target_tokens`` (see the module docstring), with its losses."""
        self._check_predict_inputs([[1.0, 0.0]], [[target_tokens]])
        limit = general_limit(base_general_loss, tolerance, kind)
        ratio, feasible, general, domain = at_critical_ratio(self.theta_, self.offset,
                                                             np.log(target_tokens) - self.log_t_ref_, limit)
        return CriticalRatio(ratio=ratio, feasible=feasible, general_loss=general, domain_loss=domain)

    def covariance(self, mixtures: FloatArray, fidelity: FloatArray, y: FloatArray) -> FloatArray:
        """Each group's parameter covariance ``(2, 4, 4)`` (of ``theta_``'s rows) from the runs it was fitted
        on: ``s^2 (J'J)^-1`` with the Jacobian at the solution and ``s^2`` the residual sum of squares over
        the ``n - 4`` residual degrees of freedom (the linearised least-squares covariance)."""
        x, f = self._check_predict_inputs(mixtures, fidelity)
        losses = np.asarray(y, dtype=np.float64)
        q, log_t = self._inputs(x, f)
        u = log_t - self.log_t_ref_
        out = np.empty((2, N_PARAMS, N_PARAMS))
        for g in (GENERAL, DOMAIN):
            z = np.log(q[:, g] + self.offset)
            s2 = float(np.sum(_residual(self.theta_[g], losses[:, g], u, z) ** 2)) / max(len(x) - N_PARAMS, 1)
            jac = _jacobian(self.theta_[g], np.empty(0), u, z)
            out[g] = s2 * np.linalg.pinv(jac.T @ jac)
        return out


def general_limit(base_general_loss: float, tolerance: float, kind: ToleranceKind) -> float:
    """The general loss the CMR keeps to: the base model's plus the tolerance (in loss units or relative)."""
    return base_general_loss + (tolerance * abs(base_general_loss) if kind == ToleranceKind.relative else tolerance)


def at_critical_ratio(theta: FloatArray, offset: float, u: float, limit: float) -> tuple[float, bool, float, float]:
    """(ratio, feasible, general loss, domain loss) at the critical ratio of the law with parameters ``theta``
    ``(2, 4)`` at centred log tokens ``u`` (``log T`` minus the law's reference): :meth:`CMRLaw.critical_ratio`
    as a function of the parameters, so that intervals can differentiate it."""
    e, log_a, log_alpha, log_beta = theta[GENERAL]
    headroom = limit - e
    if headroom <= 0:
        bound = -np.inf
    else:
        # (q_G + offset) ** -beta <= headroom / (A T**-alpha), solved for the general share q_G = 1 - r.
        log_scale = (log_a - np.exp(log_alpha) * u - np.log(headroom)) / np.exp(log_beta)
        bound = 1.0 + offset - float(np.exp(min(log_scale, MAX_EXP)))
    ratio = float(np.clip(bound, 0.0, 1.0))
    at = np.array([u])
    general = float(_law(theta[GENERAL], at, np.log(np.array([1.0 - ratio + offset])))[0])
    domain = float(_law(theta[DOMAIN], at, np.log(np.array([ratio + offset])))[0])
    return ratio, bool(bound >= 0.0), general, domain


def _law(theta: FloatArray, u: FloatArray, z: FloatArray) -> FloatArray:
    """``E + exp(log A - alpha * u - beta * z)``: ``u`` centred log tokens, ``z = log(q + offset)``."""
    return theta[0] + _power(theta, u, z)


def _power(theta: FloatArray, u: FloatArray, z: FloatArray) -> FloatArray:
    return np.exp(np.clip(theta[1] - np.exp(theta[2]) * u - np.exp(theta[3]) * z, -MAX_EXP, MAX_EXP))


def _residual(theta: FloatArray, y: FloatArray, u: FloatArray, z: FloatArray) -> FloatArray:
    return _law(theta, u, z) - y


def _jacobian(theta: FloatArray, y: FloatArray, u: FloatArray, z: FloatArray) -> FloatArray:
    p = _power(theta, u, z)
    return np.column_stack([np.ones_like(p), p, -p * np.exp(theta[2]) * u, -p * np.exp(theta[3]) * z])
