"""Translate stored experiments into the ``mixing`` search context (the one place that does it)."""

from __future__ import annotations

import dataclasses
import logging
import math
from typing import Any

import numpy as np

from mixing.methods.base import SearchContext
from mixing.problem import Prediction
from service.errors import Conflict
from service.schemas import MAX_COST, MAX_METRIC
from service.settings import get_settings
from service.spec import ExperimentSpec, spec_of
from service.store import Snapshot, Store
from service.store.models import Experiment
from service.validation import baseline_run_ids, problem_from_spec

log = logging.getLogger("mixopt.context")


def search_context(store: Store, exp: Experiment, seed: int | None = None) -> tuple[SearchContext, Snapshot]:
    """The method's view of the experiment: its problem, and the runs a model may fit (:func:`fittable`)."""
    snap = fittable(store.snapshot(exp), exp.id)
    spec = spec_of(exp)
    ctx = SearchContext(
        problem=problem_from_spec(spec, baseline_mixtures(store, exp, spec)),
        observations=snap.observations,
        rng=np.random.default_rng(seed),
        hints=dict(exp.hints or {}),
        compute=get_settings().compute,
        transfers=snap.transfers,
    )
    return ctx, snap


def baseline_mixtures(store: Store, exp: Experiment, spec: ExperimentSpec) -> dict[str, list[float]]:
    """The mixture of each run (by id or ``client_run_id``) an outcome constraint is relative to;
    :class:`Conflict` on the constraint's ``relative_to`` while the experiment has no such run."""
    out: dict[str, list[float]] = {}
    for i, key in baseline_run_ids(spec):
        run = store.run_by_key(exp.id, key)
        if run is None:
            raise Conflict(f"outcome constraint {i} is relative to run {key!r}, which this experiment does not have "
                           "(yet)", field=f"objective.constraints[{i}].relative_to")
        out[key] = list(run.mixture)
    return out


def fittable(snap: Snapshot, experiment_id: str) -> Snapshot:
    """``snap`` without the completed runs whose metrics lie beyond the request range (|x| > MAX_METRIC),
    and with costs beyond MAX_COST unknown.

    Requests refuse such values, but an import or an older server may have stored them; fitted as they are,
    ``±1e308`` overflows every model's squares and sums into inf and NaN. They are outliers to leave out
    of the fit, not data to lose: the runs stay stored and listed.
    """
    obs = snap.observations
    keep = np.all(np.abs(obs.metrics) <= MAX_METRIC, axis=1)
    costs = np.where(np.abs(obs.costs) <= MAX_COST, obs.costs, math.nan)
    if keep.all() and np.array_equal(costs, obs.costs, equal_nan=True):
        return snap
    log.warning("runs beyond the metric range left out of the fit",
                extra={"experiment_id": experiment_id, "n_left_out": int((~keep).sum())})
    obs = dataclasses.replace(obs, costs=costs).completed_subset(keep)
    return dataclasses.replace(snap, observations=obs,
                               completed_ids=[i for i, k in zip(snap.completed_ids, keep, strict=True) if k])


def prediction_dict(pred: Prediction | None) -> dict[str, Any] | None:
    """A prediction as stored; None for one with a non-finite value (never stored or served), and an
    interval with a non-finite bound is dropped."""
    if pred is None or not math.isfinite(pred.value):
        return None
    lower, upper = pred.lower, pred.upper
    if lower is None or upper is None or not (math.isfinite(lower) and math.isfinite(upper)):
        lower = upper = None
    return {"value": float(pred.value), "lower": lower, "upper": upper}
