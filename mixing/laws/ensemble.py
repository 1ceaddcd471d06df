"""The stacked ensemble: a convex combination of single laws, usable as a law of its own.

Convex weights (non-negative, summing to one) keep the ensemble on the metrics' own scale, so it can be
refitted per metric and still be combined with the objective weights, and make the weights readable as
shares of trust. They are fitted by least squares on out-of-fold predictions (:func:`stack_weights`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from numbers import Integral
from typing import Any, ClassVar

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import nnls
from sklearn.base import clone
from sklearn.model_selection import KFold
from sklearn.utils._param_validation import Interval

from mixing.errors import FitError, MixingError
from mixing.laws.base import MixingLaw
from mixing.laws.registry import DEFAULT_LAWS, make_single_law
from mixing.simplex import FloatArray

Member = str | Mapping[str, Any] | MixingLaw
ENSEMBLE = "ensemble"


def build_member(member: Member) -> MixingLaw:
    """An unfitted law from a name, a ``{"name", "params"}`` spec or a law (cloned)."""
    if isinstance(member, MixingLaw):
        return clone(member)
    if isinstance(member, str):
        return make_single_law(member)
    return make_single_law(str(member["name"]), **dict(member.get("params") or {}))


def stack_weights(preds: ArrayLike, target: ArrayLike) -> FloatArray:
    """Convex weights ``(M,)`` minimising the squared error of ``sum_m w_m preds[m]`` against ``target``.

    ``preds`` is ``(M, n)`` or ``(M, n, k)`` and ``target`` ``(n,)`` or ``(n, k)``; every column is centred
    and scaled by the target's spread so that metrics on different scales weigh the same. Solved as
    non-negative least squares with the sum-to-one condition appended as a heavily weighted row.
    """
    p = np.asarray(preds, dtype=np.float64)
    t = np.asarray(target, dtype=np.float64)
    p = p.reshape(p.shape[0], p.shape[1], -1)
    t = t.reshape(t.shape[0], -1)
    ok = plausible_members(p, t)
    if not ok.all():  # a member that extrapolates wildly gets no weight, however small NNLS would make it
        w = np.zeros(p.shape[0])
        if ok.any():
            w[ok] = stack_weights(p[ok], t)
        else:
            w[int(np.argmin(np.nanmean((p - t) ** 2, axis=(1, 2))))] = 1.0
        return w
    mean, sd = t.mean(axis=0), np.where(t.std(axis=0) > 0, t.std(axis=0), 1.0)
    a = ((p - mean) / sd).reshape(p.shape[0], -1).T  # (n * k, M)
    b = ((t - mean) / sd).reshape(-1)
    penalty = 1e3 * np.sqrt(len(b))
    a = np.vstack([a, np.full((1, a.shape[1]), penalty)])
    b = np.append(b, penalty)
    w, _ = nnls(a, b, maxiter=50 * a.shape[1])
    if w.sum() <= 0:
        return np.full(p.shape[0], 1.0 / p.shape[0])
    return w / w.sum()


#: How far outside the observed targets' range (in multiples of that range) a member's out-of-fold
#: predictions may reach and still be stacked. Losses do not leave their range by orders of magnitude;
#: a law that does (a diverged fit on one fold) would dominate any fold it gets even a tiny weight in.
PLAUSIBLE_SPAN = 10.0


def plausible_members(preds: FloatArray, target: FloatArray) -> np.ndarray:
    """Mask ``(M,)`` of members whose predictions ``(M, n, k)`` are finite and near the targets' range."""
    lo, hi = target.min(axis=0), target.max(axis=0)
    span = np.where(hi > lo, hi - lo, np.maximum(np.abs(hi), 1.0))
    inside = (preds >= lo - PLAUSIBLE_SPAN * span) & (preds <= hi + PLAUSIBLE_SPAN * span)
    return inside.reshape(preds.shape[0], -1).all(axis=1)


class StackedEnsemble(MixingLaw):
    """A convex combination of member laws, refitted per metric like any law.

    With ``weights`` given (e.g. from a fidelity report) the members are simply refitted and combined;
    without, the weights are learnt here by ``folds``-fold cross-validated stacking. Members that cannot
    fit the data are dropped (``dropped_`` says why).
    """

    name: ClassVar[str] = ENSEMBLE
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "members": [list, tuple, None],
        "weights": ["array-like", None],
        "folds": [Interval(Integral, 2, None, closed="left")],
        "seed": [Interval(Integral, 0, None, closed="left")],
    }

    def __init__(
        self,
        members: Sequence[Member] | None = None,
        weights: Sequence[float] | None = None,
        folds: int = 5,
        seed: int = 0,
    ) -> None:
        self.members = members
        self.weights = weights
        self.folds = folds
        self.seed = seed

    def _member_laws(self) -> list[MixingLaw]:
        return [build_member(m) for m in (self.members if self.members is not None else DEFAULT_LAWS)]

    def _members(self) -> list[MixingLaw]:
        """The members that were fitted, once fitted; before, those the parameters name."""
        return self.members_ if self.__sklearn_is_fitted__() else self._member_laws()

    @property
    def differentiable(self) -> bool:  # type: ignore[override]
        return all(m.differentiable for m in self._members())

    @property
    def uses_fidelity(self) -> bool:  # type: ignore[override]
        return any(m.uses_fidelity for m in self._members())

    def min_runs(self, n_domains: int) -> int:
        return max(m.min_runs(n_domains) for m in self._member_laws())

    def _fit(self, x: FloatArray, f: FloatArray | None, t: FloatArray) -> None:
        laws = self._member_laws()
        if self.weights is not None and len(self.weights) != len(laws):
            raise FitError("ensemble: one weight per member is required")
        fitted: list[MixingLaw] = []
        keep: list[int] = []
        self.dropped_: dict[str, str] = {}
        for i, law in enumerate(laws):
            if self.weights is not None and self.weights[i] <= 0:
                continue
            try:
                fitted.append(law.fit(x, f, t))
                keep.append(i)
            except MixingError as exc:
                self.dropped_[law.name] = str(exc)
        if not fitted:
            raise FitError(f"ensemble: no member could be fitted ({self.dropped_})")
        if self.weights is not None:
            w = np.asarray(self.weights, dtype=np.float64)[keep]
        else:
            w = self._learn_weights([laws[i] for i in keep], x, f, t)
        self.members_ = fitted
        self.weights_ = w / w.sum()

    def _learn_weights(
        self, laws: list[MixingLaw], x: FloatArray, f: FloatArray | None, t: FloatArray
    ) -> FloatArray:
        if len(laws) == 1:
            return np.ones(1)
        oof = np.full((len(laws), *t.shape), np.nan)
        splits = KFold(min(self.folds, len(x)), shuffle=True, random_state=self.seed).split(x)
        for train, test in splits:
            for m, law in enumerate(laws):
                ft = None if f is None else f[train]
                fs = None if f is None else f[test]
                try:
                    oof[m, test] = clone(law).fit(x[train], ft, t[train]).predict(x[test], fs)
                except MixingError:
                    continue
        usable = np.all(np.isfinite(oof.reshape(len(laws), -1)), axis=1)
        if not usable.any():
            return np.full(len(laws), 1.0 / len(laws))
        w = np.zeros(len(laws))
        w[usable] = stack_weights(oof[usable], t)
        return w

    def _predict(self, x: FloatArray, fidelity: FloatArray | None) -> FloatArray:
        preds = [w * m.predict(x, fidelity) for w, m in zip(self.weights_, self.members_, strict=True)]
        return np.sum(preds, axis=0)
