"""A law fitted on a metric table with gaps: each metric on the runs that report it.

A gap is a non-finite cell of ``y`` (a run that did not report that metric). Metrics observed on the same
runs are fitted together by one clone of the law; with no gaps that is a single fit on every run, exactly
``clone(law).fit(x, f, y)``. A metric observed on no run is an error naming its column.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from sklearn.base import clone

from mixing.errors import NotEnoughDataError
from mixing.laws.base import MixingLaw, as_mixtures, as_targets
from mixing.simplex import FloatArray


class EmptyMetricError(NotEnoughDataError):
    """A metric column has no observed value, so nothing can be learnt about it."""

    def __init__(self, columns: list[int]) -> None:
        super().__init__(f"metric column(s) {columns} have no finite value", 1, 0)
        self.columns = columns


def empty_columns(y: ArrayLike) -> list[int]:
    """Indices of the columns of ``y`` ``(n, k)`` with no finite value."""
    return np.flatnonzero(~np.isfinite(as_targets(y)).any(axis=0)).tolist()


@dataclass(frozen=True)
class ObservedFit:
    """Fitted clones of one law, each predicting the metric columns ``columns[i]`` of a ``(m, k)`` answer."""

    columns: tuple[np.ndarray, ...]
    laws: tuple[MixingLaw, ...]
    k: int

    def predict(self, mixtures: ArrayLike, fidelity: ArrayLike | None = None) -> FloatArray:
        """Predicted metrics ``(m, k)``."""
        x = as_mixtures(mixtures)
        out = np.empty((len(x), self.k))
        for cols, law in zip(self.columns, self.laws, strict=True):
            out[:, cols] = np.asarray(law.predict(x, fidelity), dtype=np.float64).reshape(len(x), len(cols))
        return out


def fit_observed(law: MixingLaw, mixtures: ArrayLike, fidelity: ArrayLike | None, y: ArrayLike) -> ObservedFit:
    """Clones of ``law`` fitted on ``y`` ``(n, k)``, each group of metrics on the runs observing it."""
    x, t = as_mixtures(mixtures), as_targets(y)
    f = None if fidelity is None else np.asarray(fidelity, dtype=np.float64).reshape(len(x), -1)
    seen = np.isfinite(t)
    empty = empty_columns(t)
    if empty:
        raise EmptyMetricError(empty)
    groups: dict[bytes, list[int]] = {}
    for j in range(t.shape[1]):
        groups.setdefault(seen[:, j].tobytes(), []).append(j)
    columns, laws = [], []
    for cols in groups.values():
        rows = seen[:, cols[0]]
        columns.append(np.asarray(cols))
        laws.append(clone(law).fit(x[rows], None if f is None else f[rows], t[np.ix_(rows, np.asarray(cols))]))
    return ObservedFit(tuple(columns), tuple(laws), t.shape[1])
