"""Data-mixture optimisation algorithms: no database, HTTP or task queue.

Subpackages, one job each: :mod:`mixing.laws` (mixing laws as scikit-learn-style estimators, and their
registry), :mod:`mixing.methods` (search methods behind one protocol, and their registry),
:mod:`mixing.bo` (multi-fidelity Bayesian optimisation) and :mod:`mixing.online` (methods that change the
mixture while one model trains). Modules: :mod:`mixing.simplex` (the feasible set),
:mod:`mixing.problem` (what a search is given and returns), :mod:`mixing.evaluation` (cross-validated
scores of laws), :mod:`mixing.selection` (choosing a law, the stacked ensemble), :mod:`mixing.errors`.

This package exports the types every caller needs; the subpackages are imported where they are used
(the BO one loads torch).
"""

from mixing.errors import (
    FitError,
    InfeasibleConstraintsError,
    InputShapeError,
    InvalidParameterError,
    MixingError,
    NotEnoughDataError,
    NotFittedError,
    UnsupportedFidelityError,
)
from mixing.problem import (
    Candidates,
    FidelitySpace,
    Observations,
    Prediction,
    Problem,
    Proposal,
    Recommendation,
)
from mixing.simplex import FloatArray, SimplexConstraints

__all__ = [
    "Candidates",
    "FidelitySpace",
    "FitError",
    "FloatArray",
    "InfeasibleConstraintsError",
    "InputShapeError",
    "InvalidParameterError",
    "MixingError",
    "NotEnoughDataError",
    "NotFittedError",
    "Observations",
    "Prediction",
    "Problem",
    "Proposal",
    "Recommendation",
    "SimplexConstraints",
    "UnsupportedFidelityError",
]
