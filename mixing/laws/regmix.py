"""RegMix's regressors (Liu et al. 2024): linear and LightGBM, one model per target metric.

LightGBM settings are the published ones (gbdt, 1000 rounds, learning rate 0.01); on tiny data sets the
number of leaves and the minimum leaf size shrink so the booster can still split.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np
from sklearn.linear_model import LinearRegression
from sklearn.utils._param_validation import Interval

from mixing.errors import NotEnoughDataError
from mixing.laws.base import MixingLaw
from mixing.simplex import FloatArray


class RegMixLinear(MixingLaw):
    """Ordinary least squares from mixture weights to each metric."""

    name: ClassVar[str] = "regmix_linear"
    differentiable: ClassVar[bool] = True

    def min_runs(self, n_domains: int) -> int:
        return max(5, n_domains + 1)

    def _fit(self, x: FloatArray, fidelity: FloatArray | None, y: FloatArray) -> None:
        if len(x) < 3:
            raise NotEnoughDataError("regmix_linear needs runs to fit", 3, len(x))
        self.model_ = LinearRegression().fit(x, y)

    def _predict(self, x: FloatArray, fidelity: FloatArray | None) -> FloatArray:
        return np.asarray(self.model_.predict(x), dtype=np.float64).reshape(len(x), -1)


class RegMixLightGBM(MixingLaw):
    """Gradient-boosted trees from mixture weights to each metric (RegMix's main regressor)."""

    name: ClassVar[str] = "regmix_lightgbm"
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "n_estimators": [Interval(Integral, 1, None, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "num_leaves": [Interval(Integral, 2, None, closed="left")],
        "seed": [Interval(Integral, 0, None, closed="left")],
        "n_jobs": [Integral],
    }

    def __init__(
        self,
        n_estimators: int = 1000,
        learning_rate: float = 0.01,
        num_leaves: int = 31,
        seed: int = 0,
        n_jobs: int = 1,
    ) -> None:
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.seed = seed
        self.n_jobs = n_jobs

    def min_runs(self, n_domains: int) -> int:
        return 8

    def _fit(self, x: FloatArray, fidelity: FloatArray | None, y: FloatArray) -> None:
        import lightgbm as lgb

        if len(x) < 4:
            raise NotEnoughDataError("regmix_lightgbm needs runs to fit", 4, len(x))
        min_leaf = int(np.clip(len(x) // 10, 2, 20))
        self.models_ = [
            lgb.LGBMRegressor(
                boosting_type="gbdt",
                n_estimators=self.n_estimators,
                learning_rate=self.learning_rate,
                num_leaves=self.num_leaves,
                min_child_samples=min_leaf,
                random_state=self.seed,
                n_jobs=self.n_jobs,
                verbose=-1,
            ).fit(x, y[:, j])
            for j in range(y.shape[1])
        ]

    def _predict(self, x: FloatArray, fidelity: FloatArray | None) -> FloatArray:
        return np.column_stack([m.predict(x) for m in self.models_]).astype(np.float64)
