"""The estimator contract, checked for every registered law, the way scikit-learn's ``parametrize_with_checks``
checks its own estimators: a law added to the registry is checked here without a line changed.

Data: a few dozen runs over three domains at three fidelity levels, two metrics that depend on the mixture
and (the second) on the fidelity, so that every law, scale-aware or not, can be fitted quickly.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError as SklearnNotFittedError

from mixing.errors import InputShapeError, InvalidParameterError, MixingError, NotFittedError
from mixing.laws import LAWS, MixingLaw, ScalingAdditiveLaw, ScalingJointLaw, law_spec, make_law
from tests.mixing.laws.checks import assert_every_hyperparameter_validated_at_fit

#: Every registered law, and the ensemble built through the registry.
NAMES = [*LAWS, "ensemble"]
#: Cheaper hyperparameters where the defaults are slow; the contract does not depend on them.
FAST: dict[str, dict[str, Any]] = {
    "regmix_lightgbm": {"n_estimators": 50},
    "ensemble": {"members": ["regmix_linear", "data_mixing_law"], "folds": 3},
}
N, D = 48, 3


def build(name: str) -> MixingLaw:
    return make_law(name, **FAST.get(name, {}))


def data(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mixtures ``(N, D)``, one normalised fidelity axis at three levels ``(N, 1)``, two metrics ``(N, 2)``."""
    rng = np.random.default_rng(seed)
    x = rng.dirichlet(np.ones(D), N)
    s = np.repeat([0.0, 0.5, 1.0], N // 3)[:, None]
    first = 2.0 + 0.5 * np.exp(-(x @ [1.0, 2.0, 0.5]))
    second = 1.0 + 1.0 / (0.3 + x[:, 1]) ** 0.5 + 0.8 * np.exp(-2.0 * s[:, 0])
    y = np.column_stack([first, second]) + 0.01 * rng.standard_normal((N, 2))
    return x, s, y


def fitted(name: str) -> MixingLaw:
    x, s, y = data()
    return build(name).fit(x, s, y)


@pytest.mark.parametrize("name", NAMES)
def test_fit_returns_self_and_predicts_one_column_per_metric(name: str) -> None:
    x, s, y = data()
    law = build(name)
    assert law.fit(x, s, y) is law
    assert law.predict(x, s).shape == (N, 2)
    assert np.isfinite(law.predict(x, s)).all()
    assert law.predict(x[0], s[0]).shape == (1, 2)  # a single mixture is one row


@pytest.mark.parametrize("name", NAMES)
def test_clone_round_trips_the_hyperparameters_and_drops_the_fit(name: str) -> None:
    law = fitted(name)
    copy = clone(law)
    assert type(copy) is type(law) and copy.get_params() == law.get_params()
    with pytest.raises(NotFittedError):
        copy.predict(data()[0])
    spec = law_spec(law)
    assert make_law(spec["name"], **spec["params"]).get_params() == law.get_params()


@pytest.mark.parametrize("name", NAMES)
def test_predicting_before_fitting_raises_not_fitted(name: str) -> None:
    x, s, _ = data()
    with pytest.raises(NotFittedError) as err:
        build(name).predict(x, s)
    assert isinstance(err.value, SklearnNotFittedError) and isinstance(err.value, MixingError)


@pytest.mark.parametrize("name", NAMES)
def test_a_wrong_number_of_domains_or_rows_raises_one_error(name: str) -> None:
    x, s, y = data()
    law = fitted(name)
    wider = np.column_stack([x, np.zeros(N)])
    for bad in (x[:, :2], wider):
        with pytest.raises(InputShapeError, match="domains"):
            law.predict(bad, s)
    with pytest.raises(InputShapeError):
        build(name).fit(x, s, y[:-1])
    with pytest.raises(InputShapeError):
        build(name).fit(x, s[:-1], y)
    if law.uses_fidelity:
        with pytest.raises(InputShapeError, match="fidelity"):
            law.predict(x, np.column_stack([s, s]))


@pytest.mark.parametrize("name", NAMES)
def test_fits_are_deterministic_under_fixed_hyperparameters(name: str) -> None:
    x, s, _ = data()
    assert np.array_equal(fitted(name).predict(x, s), fitted(name).predict(x, s))


@pytest.mark.parametrize("name", NAMES)
def test_every_hyperparameter_is_validated_at_fit_naming_it(name: str) -> None:
    x, s, y = data()
    law = build(name)
    assert_every_hyperparameter_validated_at_fit(law, x, s, y)


def test_a_negative_number_of_trees_is_refused_at_fit() -> None:
    x, s, y = data()
    law = make_law("regmix_lightgbm", n_estimators=-5)  # building checks nothing, as in scikit-learn
    with pytest.raises(InvalidParameterError, match="'n_estimators' parameter of RegMixLightGBM"):
        law.fit(x, s, y)


@pytest.mark.parametrize("name", NAMES)
def test_declared_fidelity_use_is_honoured(name: str) -> None:
    """A law that uses fidelity predicts differently across it; one that does not ignores it."""
    x, s, _ = data()
    law = fitted(name)
    low, high = law.predict(x, np.zeros_like(s)), law.predict(x, np.ones_like(s))
    if law.uses_fidelity:
        assert np.abs(low[:, 1] - high[:, 1]).max() > 0.1
    else:
        assert np.array_equal(low, high)


@pytest.mark.parametrize("name", NAMES)
def test_declared_intervals_are_given(name: str) -> None:
    x, s, _ = data()
    law = fitted(name)
    if law.provides_intervals:
        sd = law.predict_std(x, s)
        agg = law.aggregate_std(x, s, [0.5, 0.5])
        assert sd.shape == (N, 2) and (sd > 0).all() and np.isfinite(sd).all()
        assert agg.shape == (N,) and (agg > 0).all() and np.isfinite(agg).all()
    else:
        with pytest.raises(NotImplementedError):
            law.aggregate_std(x, s, [0.5, 0.5])


@pytest.mark.parametrize("name", [n for n in NAMES if build(n).differentiable])
def test_declared_differentiability_gives_consistent_gradients(name: str) -> None:
    """Central differences at two step sizes agree along a direction within the simplex."""
    law = fitted(name)
    assert law.differentiable
    at = np.array([[0.3, 0.45, 0.25]])
    fid = np.array([[0.5]])
    direction = np.array([[1.0, -1.0, 0.0]])

    def slope(h: float) -> np.ndarray:
        up, down = law.predict(at + h * direction, fid), law.predict(at - h * direction, fid)
        return np.asarray((up - down) / (2 * h))

    coarse, fine = slope(1e-3), slope(1e-4)
    assert np.isfinite(fine).all()
    assert np.allclose(coarse, fine, rtol=1e-2, atol=1e-4)


@pytest.mark.parametrize("name", [n for n in NAMES if build(n).fits_aggregate])
def test_declared_aggregate_fits_work(name: str) -> None:
    law = build(name)
    x, s, y = data()
    assert law.fit(x, s, y @ [0.5, 0.5]).predict(x, s).shape == (N, 1)


@pytest.mark.parametrize(
    "name, variant, cls",
    [("scaling_additive", "additive", ScalingAdditiveLaw), ("scaling_joint", "joint", ScalingJointLaw),
     ("scaling_additive", "joint", ScalingJointLaw)],
)
def test_stored_scaling_specs_with_a_variant_build_that_form(name: str, variant: str, cls: type) -> None:
    """Fit records and hints store the scaling law's params with ``variant``; they rebuild the same law."""
    law = make_law(name, variant=variant, n_starts=6, max_iter=300, seed=0)
    assert type(law) is cls and law.get_params() == {"n_starts": 6, "max_iter": 300, "seed": 0}
    with pytest.raises(InvalidParameterError, match="variant"):
        make_law(name, variant="quadratic")
