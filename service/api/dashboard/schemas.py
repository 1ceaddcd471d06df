"""Response bodies of the dashboard's presentational endpoints (``/dashboard/api``).

They only reshape stored data for drawing; nothing here is part of the ``/v1`` contract.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from service.schemas import RecommendationOut


class BestObserved(BaseModel):
    value: float
    run_id: str
    fidelity: dict[str, float]


class Summary(BaseModel):
    """What the experiments table shows beyond ``ExperimentOut``; read from storage, never recomputed."""

    data_version: int
    best_observed: BestObserved | None
    #: The latest stored recommendation, possibly computed on older data (see ``stale``).
    recommendation: RecommendationOut | None
    stale: bool
    #: When the last refit stored its fits; None before the first refit, even when a recommendation was
    #: computed (it carries its own time, and fits no law the dashboard could list).
    last_refit_at: datetime | None


class SummaryList(BaseModel):
    summaries: dict[str, Summary]


class CurveOut(BaseModel):
    fidelity: dict[str, float]
    n_runs: int
    best: float
    #: ``[cumulative x, best objective so far]`` at each improvement, thinned to ``max_points``.
    points: list[tuple[float, float]]


class ProgressOut(BaseModel):
    x_unit: str
    total: float
    goal: str
    curves: list[CurveOut]


class Overview(BaseModel):
    summary: Summary
    progress: ProgressOut
