"""Translate stored experiments into the ``mixing`` search context (the one place that does it)."""

from __future__ import annotations

from typing import Any

import numpy as np

from mixing.methods.base import SearchContext
from service.models import Experiment
from service.store import Snapshot, Store
from service.validation import problem_from_spec


def search_context(store: Store, exp: Experiment, seed: int | None = None) -> tuple[SearchContext, Snapshot]:
    snap = store.snapshot(exp)
    ctx = SearchContext(
        problem=problem_from_spec(exp.spec),
        observations=snap.observations,
        rng=np.random.default_rng(seed),
        hints=dict(exp.hints or {}),
    )
    return ctx, snap


def prediction_dict(pred: Any) -> dict[str, Any] | None:
    if pred is None:
        return None
    return {"value": pred.value, "lower": pred.lower, "upper": pred.upper}
