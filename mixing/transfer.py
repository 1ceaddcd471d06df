"""Warm start: runs of related experiments as a learned prior mean for this experiment's models.

Each *source* is a related task: the runs of one earlier experiment at one fidelity, with one objective
(this experiment's own when the run has its metrics, else the source's). A source's objective may be
shifted, rescaled, or unrelated to this one's, so its values are never used as if they were this
experiment's. Instead:

1. every source gets a smooth model of its own runs (:class:`SourceModel`, kernel ridge on the Hellinger
   embedding ``sqrt(w)``, its lengthscale and ridge chosen by exact leave-one-out error), standardised;
2. on this experiment's own runs, each output ``y_j`` (a metric, or the loss) is regressed on the source
   models: ``y_j(x) ~ a_j + sum_s b_sj g_s(x)``, a per-source affine map fitted jointly, ridge-shrunk with
   penalty ``RIDGE / weight_s`` (the request's weight: a larger one trusts the source sooner);
3. the map is used only where its exact leave-one-out error on the own runs is clearly below the
   constant's (no source), and a source whose model cannot even predict its own runs (a shuffled or
   noise objective) is left out before: an unrelated source then gets no say (:func:`fit_prior`).

Methods model what the prior leaves: a law fits ``y - prior(x)`` and adds the prior back, BO's GP has the
prior as its mean function. With one own run per source the map cannot be estimated, so a source starts to
count after :data:`MIN_OWN_RUNS` runs of this experiment.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mixing.laws.threads import single_threaded
from mixing.simplex import FloatArray

#: Own runs below which no affine map is fitted (leave-one-out needs a few, the map 2 parameters a source).
MIN_OWN_RUNS = 4
#: Ridge penalty per source coefficient, in standardised units, divided by the source's weight.
RIDGE = 1.0
#: Rows a source model is fitted on at most (kernel ridge is cubic in them); a fixed subsample beyond.
MAX_SOURCE_ROWS = 768
#: A source whose model explains less of its own runs than this (leave-one-out R^2) carries no usable
#: signal about mixtures -- a shuffled objective, pure noise -- and gets no say at all.
MIN_SOURCE_R2 = 0.1
#: The maps are used only if their leave-one-out error is below this fraction of the constant's, i.e. the
#: sources explain at least three quarters of the own runs' variance out of sample. Measured on RegMix
#: (``bench/warm_start_replay.py``): a source carrying the target metric at another scale scores 0.03-0.11
#: after 8-12 own runs; other domains' losses, the mean loss and an unrelated function 0.12-1.5, and
#: those, used as a mean, made BO slower -- their optima are elsewhere even where they agree globally.
LOO_MARGIN = 0.25
#: Candidate RBF lengthscales (on ``sqrt(w)``, whose pairwise distances lie in [0, sqrt(2)]) and ridges.
LENGTHSCALES = (0.25, 0.4, 0.6, 1.0)
SOURCE_RIDGES = (1e-3, 1e-2, 1e-1, 1.0)


@dataclass(frozen=True)
class Transfers:
    """Runs of related tasks: ``mixtures`` (t, d) in this experiment's domain order, ``losses`` (t,) of
    their own task (lower is better), ``sources`` (t,) task index in ``0..n_sources-1``, ``weights`` (t,)
    the request's weight of their source (> 0)."""

    mixtures: FloatArray
    losses: FloatArray
    sources: np.ndarray
    weights: FloatArray

    @property
    def n_sources(self) -> int:
        return int(self.sources.max()) + 1 if len(self.sources) else 0

    @property
    def n(self) -> int:
        return len(self.losses)


def _rbf(a: FloatArray, b: FloatArray, lengthscale: float) -> FloatArray:
    d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.exp(-np.maximum(d2, 0.0) / (2.0 * lengthscale**2))


@dataclass
class SourceModel:
    """Kernel ridge regression of one source's (standardised) losses on ``sqrt(mixture)``."""

    x: FloatArray
    alpha: FloatArray
    lengthscale: float
    ridge: float
    loo_r2: float

    @classmethod
    def fit(cls, mixtures: FloatArray, losses: FloatArray) -> SourceModel:
        """Lengthscale and ridge by exact leave-one-out error: one eigendecomposition per lengthscale."""
        x = np.sqrt(np.clip(mixtures, 0.0, 1.0))
        y = (losses - losses.mean()) / (losses.std() or 1.0)
        best: tuple[float, float, float] | None = None
        for ls in LENGTHSCALES:
            vals, vecs = np.linalg.eigh(_rbf(x, x, ls))
            qty = vecs.T @ y
            for lam in SOURCE_RIDGES:
                shrink = vals / (vals + lam)
                fitted = vecs @ (shrink * qty)
                h = (vecs * vecs) @ shrink
                loo = (y - fitted) / np.maximum(1.0 - h, 1e-9)
                err = float(np.mean(loo**2))
                if best is None or err < best[0]:
                    best = (err, ls, lam)
        assert best is not None
        err, ls, lam = best
        k = _rbf(x, x, ls)
        alpha = np.linalg.solve(k + lam * np.eye(len(x)), y)
        return cls(x, alpha, ls, lam, float(1.0 - err / max(float(np.mean(y**2)), 1e-12)))

    def predict(self, mixtures: FloatArray) -> FloatArray:
        x = np.sqrt(np.clip(np.atleast_2d(mixtures), 0.0, 1.0))
        return _rbf(x, self.x, self.lengthscale) @ self.alpha


#: Source models of the last few transfer sets, by content: an experiment's transfers change only when a
#: source is added, while every suggestion refits the methods.
_FITTED: OrderedDict[bytes, list[SourceModel]] = OrderedDict()
_FITTED_KEEP = 8


def fit_sources(transfers: Transfers) -> list[SourceModel]:
    """One model per source, on at most :data:`MAX_SOURCE_ROWS` of its runs (a fixed subsample); the same
    transfers give the same models, which are kept for the next call."""
    key = hashlib.sha256(b"".join(np.ascontiguousarray(a).tobytes() for a in (
        transfers.mixtures, transfers.losses, transfers.sources.astype(np.int64)))).digest()
    if key in _FITTED:
        _FITTED.move_to_end(key)
        return _FITTED[key]
    models = _fit_sources(transfers)
    _FITTED[key] = models
    while len(_FITTED) > _FITTED_KEEP:
        _FITTED.popitem(last=False)
    return models


def _fit_sources(transfers: Transfers) -> list[SourceModel]:
    models = []
    for s in range(transfers.n_sources):
        rows = np.flatnonzero(transfers.sources == s)
        if len(rows) > MAX_SOURCE_ROWS:
            rows = np.sort(np.random.default_rng(0).choice(rows, MAX_SOURCE_ROWS, replace=False))
        models.append(SourceModel.fit(transfers.mixtures[rows], transfers.losses[rows]))
    return models


@dataclass
class TransferPrior:
    """``prior(x)[:, j] = (G(x) - g_mean) @ beta[:, j]``: the sources' predictions mapped onto output ``j``.

    Centred on the own runs' mean of ``G``, so the prior adds shape, not level: a model of the residual
    keeps this experiment's own level. Columns where no source helped are exactly zero.
    """

    sources: list[SourceModel]
    g_mean: FloatArray
    beta: FloatArray
    #: Per output: whether the sources helped (by leave-one-out), and the errors with and without them.
    used: np.ndarray
    details: dict[str, Any] = field(default_factory=dict)

    def features(self, mixtures: FloatArray) -> FloatArray:
        x = np.atleast_2d(np.asarray(mixtures, dtype=np.float64))
        return np.stack([m.predict(x) for m in self.sources], axis=1) if self.sources else np.zeros((len(x), 0))

    def predict(self, mixtures: FloatArray) -> FloatArray:
        """``(n, k)`` prior of every output at the ``(n, d)`` mixtures."""
        return (self.features(mixtures) - self.g_mean) @ self.beta

    @property
    def any_used(self) -> bool:
        return bool(self.used.any())


def _ridge_loo(g: FloatArray, y: FloatArray, penalty: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Coefficients of ``y ~ a + g @ b`` (intercept unpenalised) and the exact leave-one-out residuals."""
    n = len(y)
    x = np.concatenate([np.ones((n, 1)), g], axis=1)
    reg = np.diag(np.concatenate([[0.0], penalty]))
    inv = np.linalg.pinv(x.T @ x + reg)
    coef = inv @ x.T @ y
    h = np.einsum("ij,jk,ik->i", x, inv, x)
    return coef, (y - x @ coef) / np.maximum(1.0 - h, 1e-9)


@single_threaded
def fit_prior(transfers: Transfers | None, mixtures: FloatArray, targets: FloatArray,
              sources: list[SourceModel] | None = None) -> TransferPrior | None:
    """The per-source affine maps onto each column of ``targets`` (n, k) at the own runs' ``mixtures``.

    None without transfers or with fewer than :data:`MIN_OWN_RUNS` finite own runs. A column keeps its map
    only if the map's leave-one-out squared error is below the constant's (``used``); the others are zero.
    ``sources`` reuses models already fitted on the same transfers (cross-validation folds).
    """
    if transfers is None or transfers.n == 0:
        return None
    y = np.atleast_2d(np.asarray(targets, dtype=np.float64).T).T
    ok = np.all(np.isfinite(y), axis=1)
    if ok.sum() < MIN_OWN_RUNS:
        return None
    models = sources if sources is not None else fit_sources(transfers)
    weights = np.array([transfers.weights[transfers.sources == s].max() for s in range(transfers.n_sources)])
    prior = TransferPrior(models, np.zeros(len(models)), np.zeros((len(models), y.shape[1])),
                          np.zeros(y.shape[1], dtype=bool))
    informative = np.array([m.loo_r2 >= MIN_SOURCE_R2 for m in models])
    g = prior.features(mixtures[ok])
    prior.g_mean = g.mean(axis=0)
    gs = (g - prior.g_mean)[:, informative]
    scale = gs.std(axis=0)
    scale = np.where(scale > 1e-12, scale, 1.0)
    errors = []
    for j in range(y.shape[1]):
        yj = y[ok, j]
        ys = yj.std() or 1.0
        base = (yj - yj.mean()) / ys * len(yj) / (len(yj) - 1)
        without = float(np.mean(base**2))
        with_ = without
        if informative.any():
            coef, loo = _ridge_loo(gs / scale, (yj - yj.mean()) / ys, RIDGE / weights[informative])
            with_ = float(np.mean(loo**2))
            if with_ < LOO_MARGIN * without:
                prior.used[j] = True
                prior.beta[informative, j] = coef[1:] / scale * ys
        errors.append({"loo_mse_with": float(with_ * ys**2), "loo_mse_without": float(without * ys**2)})
    prior.details = {
        "n_sources": len(models),
        "n_transferred": transfers.n,
        "source_loo_r2": [m.loo_r2 for m in models],
        "used": prior.used.tolist(),
        "loo": errors,
    }
    return prior


def residual(prior: TransferPrior | None, mixtures: FloatArray, targets: FloatArray) -> FloatArray:
    """``targets`` less the prior (unchanged without one): what a model fits when the prior is its mean."""
    if prior is None or not prior.any_used:
        return targets
    return targets - prior.predict(mixtures).reshape(np.shape(targets))
