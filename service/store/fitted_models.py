"""Fitted models kept in the database, so that ``POST /predict`` loads a model instead of fitting one.

The rule: a stored model answers a prediction only when it is exactly the model a fit would produce now,
that is when it was fitted

- by the same method, at the same fidelity, with the same seed and the same values of the hints the
  method's fit reads (``model_hints``: the law a refit selected, BO's warm-start state) -- all digested
  into ``key`` -- and
- on the experiment's current data version.

When new runs arrive the data version moves on and the stored model is stale: it is never served. The
next prediction fits on the current runs, stores that model in place of the stale one and answers from
it, so one caller pays for the fit and the ones after it load. A refit stores the default model (method
``auto``) for its data right after refreshing the recommendation, so after a refit nobody pays.

Models are pickled. The database is the service's own, as trusted as its code; a model that no longer
unpickles (written by another version of the code) counts as nothing stored and is fitted again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import pickle
from typing import Any

from sqlalchemy import delete, select

from mixing.methods.base import PredictiveMethod, Predictor, SearchContext
from mixing.simplex import FloatArray
from service.store import Store
from service.store.models import Experiment, FittedModel
from service.store.session import transaction

log = logging.getLogger("mixopt.models")

#: Part of every key: bump it when a predictor's pickled form changes incompatibly.
MODEL_FORMAT = 1
_UNREADABLE = (pickle.UnpicklingError, AttributeError, ImportError, TypeError, EOFError, ValueError,
               RuntimeError)


def model_key(method: PredictiveMethod, ctx: SearchContext, fidelity: FloatArray | None, seed: int | None) -> str:
    """Digest of everything besides the runs that the fit depends on (hex SHA-256)."""
    hints = {k: ctx.hints.get(k) for k in method.model_hints}
    parts: dict[str, Any] = {"format": MODEL_FORMAT, "method": method.name, "seed": seed, "hints": hints,
                             "fidelity": None if fidelity is None else [float(x) for x in fidelity]}
    blob = json.dumps(parts, sort_keys=True, default=str, allow_nan=True).encode()
    return hashlib.sha256(blob).hexdigest()


def current_predictor(store: Store, experiment_id: str, method: PredictiveMethod, ctx: SearchContext,
                      data_version: int, fidelity: FloatArray | None, seed: int | None) -> Predictor:
    """The stored model when it is current (see the module docstring), else one fitted now and stored.

    ``ctx`` holds the runs of ``data_version``; ``seed`` is the one ``ctx.rng`` was made from.
    Raises what the method's fit raises (``NotEnoughDataError``) when there is nothing to fit yet.
    """
    key = model_key(method, ctx, fidelity, seed)
    with store.factory() as s:
        row = s.scalar(select(FittedModel).where(FittedModel.experiment_id == experiment_id,
                                                 FittedModel.key == key,
                                                 FittedModel.data_version == data_version))
    if row is not None:
        try:
            predictor: Predictor = pickle.loads(row.model)
            return predictor
        except _UNREADABLE as exc:
            log.warning("stored model unreadable; fitting again",
                        extra={"experiment_id": experiment_id, "error": f"{type(exc).__name__}: {exc}"})
    predictor = method.predictor(ctx, fidelity)
    save(store, experiment_id, key, method.name, data_version, ctx.observations.n, predictor)
    return predictor


def save(store: Store, experiment_id: str, key: str, method: str, data_version: int, n_runs: int,
         predictor: Predictor) -> bool:
    """Store ``predictor`` under ``key`` unless a model of newer data is stored there (or it does not
    pickle); whether it was.

    Models of older data versions (any key) go in the same transaction: they can never be served again.
    The experiment row is locked, so concurrent savers of one experiment take turns.
    """
    try:
        blob = pickle.dumps(predictor, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, AttributeError, TypeError) as exc:
        log.warning("model not picklable; not stored", extra={"experiment_id": experiment_id, "method": method,
                                                               "error": f"{type(exc).__name__}: {exc}"})
        return False
    with transaction(store.factory) as s:
        if s.scalar(select(Experiment.id).where(Experiment.id == experiment_id).with_for_update()) is None:
            return False
        newer = s.scalar(select(FittedModel.pk).where(FittedModel.experiment_id == experiment_id,
                                                      FittedModel.key == key,
                                                      FittedModel.data_version > data_version))
        if newer is not None:
            return False
        s.execute(delete(FittedModel).where(FittedModel.experiment_id == experiment_id,
                                            (FittedModel.key == key) | (FittedModel.data_version < data_version)))
        s.add(FittedModel(experiment_id=experiment_id, key=key, method=method, data_version=data_version,
                          n_runs=n_runs, model=blob))
    return True
