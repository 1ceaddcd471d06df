"""Predictions for given mixtures from the experiment's current model."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mixing.errors import FitError, NotEnoughDataError
from mixing.methods import as_predictive, resolve_recommender
from service.errors import Conflict, ErrorCode
from service.operations.context import search_context
from service.store import Store
from service.store.fitted_models import current_predictor
from service.store.models import Experiment


@dataclass(frozen=True)
class Predictions:
    """Per mixture (n rows): ``metrics`` (n, k; k = 0 for objective-only models), ``objective`` (n,) and
    the interval ``halfwidth`` (n,), all finite; the method that predicted and the runs it fitted."""

    metrics: np.ndarray
    objective: np.ndarray
    halfwidth: np.ndarray
    method: str
    n_runs: int


def predict(store: Store, exp: Experiment, method_name: str, mixtures: np.ndarray, fidelity: np.ndarray | None,
            seed: int | None) -> Predictions:
    """Predict ``mixtures`` (n, d) at ``fidelity`` (the target when None).

    Uses the method's own model where it has one, RegMix otherwise; the model is the one stored for the
    current runs when there is one, else fitted now and stored for the next call (rule:
    :mod:`service.store.fitted_models`). Raises :class:`Conflict` ``not_enough_data`` before a model can fit, and
    :class:`FitError` rather than answer a non-finite value.
    """
    ctx, snap = search_context(store, exp, seed)
    method = as_predictive(resolve_recommender(method_name, ctx))
    try:
        predictor = current_predictor(store, exp.id, method, ctx, snap.data_version, fidelity, seed)
    except NotEnoughDataError as exc:
        raise Conflict(f"cannot predict yet: {exc}", code=ErrorCode.not_enough_data) from exc
    metrics, objective, halfwidth = predictor.predict(mixtures)
    if not all(np.isfinite(a).all() for a in (metrics, objective, halfwidth)):  # never served as NaN
        raise FitError(f"the {method.name} model predicts non-finite values for these mixtures")
    return Predictions(metrics, objective, halfwidth, method.name, ctx.observations.n)
