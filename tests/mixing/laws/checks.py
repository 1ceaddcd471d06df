"""Checks that every law's tests share, so a law outside the registry (the CMR law) is held to the same
contract as the registered ones."""

from __future__ import annotations

from typing import Any

import pytest
from sklearn.base import BaseEstimator, clone
from sklearn.utils._param_validation import generate_invalid_param_val, make_constraint

from mixing.errors import InvalidParameterError


def assert_every_hyperparameter_validated_at_fit(law: BaseEstimator, *fit_args: Any) -> None:
    """Each hyperparameter declares its constraints, and a value breaking them fails ``fit(*fit_args)``
    with :class:`InvalidParameterError` naming the parameter and the law."""
    assert set(law.get_params(deep=False)) == set(law._parameter_constraints), \
        "every hyperparameter declares its constraints"
    for param, declared in law._parameter_constraints.items():
        constraints = [make_constraint(c) for c in declared]
        bad_values: list[Any] = [object()]
        for constraint in constraints:
            try:
                bad_values.append(generate_invalid_param_val(constraint))
            except NotImplementedError:
                continue
        for bad in bad_values:
            if any(c.is_satisfied_by(bad) for c in constraints):
                continue
            with pytest.raises(InvalidParameterError, match=f"'{param}' parameter of {type(law).__name__}"):
                clone(law).set_params(**{param: bad}).fit(*fit_args)
