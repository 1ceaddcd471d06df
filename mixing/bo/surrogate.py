"""Fitting the multi-fidelity GP by marginal likelihood, fast enough to run on every suggestion.

Speed comes from these choices, each cheaper than BoTorch's defaults and none changing the model:

* priors on every hyperparameter (see :mod:`mixing.bo.kernel`) so one L-BFGS run converges -- no restarts;
* a warm start from the previous call's hyperparameters (``bo_state``), with a shorter iteration budget,
  because one more run rarely moves them far;
* hyperparameters fitted on a random subset of at most ``max_fit_points`` runs when there are more: the
  marginal likelihood's O(n^3) is then paid on the subset only, while the posterior is still conditioned
  exactly on *all* runs (one Cholesky, see :class:`~mixing.bo.posterior.ExactPosterior`);
* a cold start is coarse-to-fine: the long L-BFGS run happens on at most ``coarse_points`` runs (each
  step about 8x cheaper at half the size), then a short warm run polishes on the full fit subset;
* outputs standardised before fitting, so the priors mean the same on every data set.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from botorch.models import SingleTaskGP
from botorch.models.utils.gpytorch_modules import get_gaussian_likelihood_with_lognormal_prior
from botorch.optim.fit import fit_gpytorch_mll_scipy
from gpytorch.mlls import ExactMarginalLogLikelihood

from mixing.bo.device import as_tensor
from mixing.bo.kernel import multi_fidelity_kernel
from mixing.bo.posterior import ExactPosterior
from mixing.errors import FitError, NotEnoughDataError
from mixing.simplex import FloatArray

#: A GP needs a spread of outcomes to standardise and fit; fewer runs than this cannot give one.
MIN_RUNS = 3
STATE_VERSION = 1


@dataclass(frozen=True)
class FitSettings:
    """Budgets of the hyperparameter fit (see the module docstring); iterations are L-BFGS-B's."""

    max_fit_points: int = 512
    coarse_points: int = 256
    maxiter_cold: int = 150
    maxiter_warm: int = 40


@dataclass
class FittedGP:
    """A fitted surrogate: the posterior in standardised units plus the map back to loss units."""

    posterior: ExactPosterior
    y_mean: float
    y_std: float
    state: dict[str, Any]
    info: dict[str, Any] = field(default_factory=dict)

    def loo_mse(self, rows: np.ndarray | None = None) -> float:
        """Mean squared leave-one-out error at the training runs (or the ``rows`` mask of them), in loss units."""
        residuals = self.posterior.loo_residuals().detach().cpu().numpy()
        return float(np.mean(residuals[rows] ** 2 if rows is not None else residuals**2)) * self.y_std**2

    def to_loss(self, mean: torch.Tensor, var: torch.Tensor) -> tuple[FloatArray, FloatArray]:
        """(mean, sd) of the latent objective in loss units, as numpy arrays."""
        m = mean.detach().cpu().numpy() * self.y_std + self.y_mean
        s = np.sqrt(var.detach().cpu().numpy()) * self.y_std
        return m, s


def fit_gp(
    inputs: FloatArray,
    loss: FloatArray,
    n_domains: int,
    n_axes: int,
    device: torch.device,
    rng: np.random.Generator,
    state: dict[str, Any] | None = None,
    settings: FitSettings = FitSettings(),
    signature: str = "",
    prior_mean: PriorMean | None = None,
) -> FittedGP:
    """Fit the GP of :mod:`mixing.bo.kernel` to ``loss`` (lower is better) at ``inputs``.

    ``state`` is a previous :attr:`FittedGP.state`; it is used only if it was fitted for the same input
    layout (``signature`` + dimensions), otherwise the fit starts cold. ``prior_mean`` (loss units, a
    function of the GP inputs) is the GP's mean function: the hyperparameters are fitted to what it leaves,
    and the posterior adds it back everywhere.
    """
    y = np.asarray(loss, dtype=np.float64).reshape(-1)
    offset = np.zeros_like(y) if prior_mean is None else np.asarray(prior_mean(inputs), dtype=np.float64)
    y = y - offset
    if len(y) < MIN_RUNS:
        raise NotEnoughDataError("a GP needs completed runs", MIN_RUNS, len(y))
    if not np.all(np.isfinite(y)) or not np.all(np.isfinite(inputs)):
        raise FitError("GP inputs and objectives must be finite")
    y_mean, y_std = float(y.mean()), float(y.std())
    y_std = y_std if y_std > 1e-12 else 1.0
    ys = (y - y_mean) / y_std
    levels = np.unique(np.asarray(inputs)[:, inputs.shape[1] - n_axes :], axis=0, return_inverse=True)[1]
    fit_rows = balanced_subset(levels.reshape(-1), settings.max_fit_points, rng)
    x_t, y_t = as_tensor(inputs, device), as_tensor(ys, device)
    key = f"{signature}|{n_domains}|{n_axes}|v{STATE_VERSION}"
    t0 = time.perf_counter()
    model = _model(x_t[fit_rows], y_t[fit_rows], n_domains, n_axes)
    warm = state is not None and state.get("key") == key and _load_params(model, state.get("params") or {})
    result = _optimise(model, settings.maxiter_warm) if warm else float("nan")
    if not np.isfinite(result):
        warm = False
        model, result = _fit_cold(x_t, y_t, fit_rows, levels.reshape(-1), n_domains, n_axes, settings, rng)
    if not np.isfinite(result):
        raise FitError("GP marginal likelihood is not finite after fitting")
    fit_s = time.perf_counter() - t0
    model.eval()
    posterior = ExactPosterior(
        model.covar_module,
        float(model.mean_module.constant.detach()),
        float(model.likelihood.noise.detach()),
        x_t,
        y_t + as_tensor(offset / y_std, device),
        None if prior_mean is None else StandardisedMean(prior_mean, y_std),
    )
    info = {
        "fit_seconds": fit_s,
        "n_fit": len(fit_rows),
        "warm_start": warm,
        "neg_mll": result,
        "noise": posterior.noise,
    }
    return FittedGP(posterior, y_mean, y_std, {"key": key, "params": _params(model)}, info)


class PriorMean(Protocol):
    """A prior mean of the loss at GP inputs ``(n, p) -> (n,)``; picklable (fitted models are stored)."""

    def __call__(self, inputs: FloatArray) -> FloatArray: ...


@dataclass
class StandardisedMean:
    """A :class:`PriorMean` as the posterior needs it: on tensors, in standardised units."""

    prior: PriorMean
    y_std: float

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        values = self.prior(z.detach().cpu().numpy()) / self.y_std
        return torch.as_tensor(values, dtype=z.dtype, device=z.device)


def balanced_subset(groups: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of at most ``k`` rows, shared as equally as possible among ``groups``.

    The hyperparameters that link fidelities are learned from the few runs at the rare (expensive)
    levels; a uniform subsample would drop them in proportion, an equal share per level keeps them all
    until the plentiful cheap levels have been thinned.
    """
    if len(groups) <= k:
        return np.arange(len(groups))
    ids, counts = np.unique(groups, return_counts=True)
    quota = np.zeros(len(ids), dtype=int)
    left = k
    order = np.argsort(counts)
    for j, i in enumerate(order):  # water-filling: smallest levels first, each at most an equal share
        quota[i] = min(counts[i], left // (len(order) - j))
        left -= quota[i]
    picks = [
        rng.choice(np.flatnonzero(groups == g), q, replace=False) for g, q in zip(ids, quota, strict=True)
    ]
    return np.sort(np.concatenate(picks))


def _fit_cold(
    x: torch.Tensor,
    y: torch.Tensor,
    rows: np.ndarray,
    levels: np.ndarray,
    n_domains: int,
    n_axes: int,
    settings: FitSettings,
    rng: np.random.Generator,
) -> tuple[SingleTaskGP, float]:
    """Long run on a coarse subset, then a short polish on all ``rows`` (see module docstring)."""
    if len(rows) <= settings.coarse_points:
        model = _model(x[rows], y[rows], n_domains, n_axes)
        return model, _optimise(model, settings.maxiter_cold)
    coarse = rows[balanced_subset(levels[rows], settings.coarse_points, rng)]
    small = _model(x[coarse], y[coarse], n_domains, n_axes)
    _optimise(small, settings.maxiter_cold)
    model = _model(x[rows], y[rows], n_domains, n_axes)
    _load_params(model, _params(small))
    return model, _optimise(model, settings.maxiter_warm)


def _params(model: SingleTaskGP) -> dict[str, list[float]]:
    return {name: p.detach().cpu().reshape(-1).tolist() for name, p in model.named_parameters()}


def botorch_model(
    x: torch.Tensor, y: torch.Tensor, n_domains: int, n_axes: int, params: dict[str, Any] | None = None
) -> SingleTaskGP:
    """The BoTorch model behind a fit, rebuilt from ``FittedGP.state["params"]``, in eval mode.

    For callers that want BoTorch's own acquisition functions or posterior (the tests cross-check the
    closed-form acquisition and :class:`ExactPosterior` against them).
    """
    model = _model(x, y, n_domains, n_axes)
    if params is not None and not _load_params(model, params):
        raise FitError("saved GP hyperparameters do not match this input layout")
    model.eval()
    return model


def _model(x: torch.Tensor, y: torch.Tensor, n_domains: int, n_axes: int) -> SingleTaskGP:
    kernel = multi_fidelity_kernel(n_domains, n_axes).to(device=x.device, dtype=x.dtype)
    likelihood = get_gaussian_likelihood_with_lognormal_prior().to(device=x.device, dtype=x.dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # input-range warnings: fidelity axes may sit at the cube's edge
        return SingleTaskGP(
            x, y.unsqueeze(-1), likelihood=likelihood, covar_module=kernel, outcome_transform=None
        )


def _load_params(model: SingleTaskGP, saved: dict[str, Any]) -> bool:
    """Copy saved raw hyperparameters into ``model``; False (nothing copied) if they do not fit it."""
    params = dict(model.named_parameters())
    if set(saved) != set(params):
        return False
    values = {}
    for name, p in params.items():
        v = torch.as_tensor(saved[name], dtype=p.dtype, device=p.device)
        if v.numel() != p.numel() or not torch.all(torch.isfinite(v)):
            return False
        values[name] = v.reshape(p.shape)
    with torch.no_grad():
        for name, p in params.items():
            p.copy_(values[name])
    return True


def _optimise(model: SingleTaskGP, maxiter: int) -> float:
    """One L-BFGS-B run on the negative marginal log-likelihood; returns its final value (NaN on failure)."""
    mll = ExactMarginalLogLikelihood(model.likelihood, model)
    mll.train()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # iteration-limit notices: the budget is deliberate
            result = fit_gpytorch_mll_scipy(mll, options={"maxiter": maxiter})
    except (RuntimeError, ValueError):
        return float("nan")
    return float(result.fval) if result.fval is not None else float("nan")
