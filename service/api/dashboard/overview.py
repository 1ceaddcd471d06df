"""The summary and best-so-far curves of one experiment, computed once per data version.

What the experiments table and the experiment page show beyond ``/v1``: read from storage (the completed
runs, the latest stored recommendation, the latest fits), never recomputed by a model.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime

from service.api.dashboard.progress import best_observed, progress
from service.api.dashboard.schemas import BestObserved, CurveOut, Overview, ProgressOut, Summary
from service.api.deps import AppState
from service.api.presenters import RunPresenter
from service.schemas import RecommendationOut
from service.spec import spec_of
from service.store.models import Experiment
from service.validation import problem_from_spec


@dataclass(frozen=True)
class Observed:
    """What the completed runs say at one data version: the best run and the best-so-far curves."""

    data_version: int
    best: BestObserved | None
    progress: ProgressOut


class ObservedCache:
    """Recently computed :class:`Observed`, keyed by experiment, data version and point budget.

    Loading every completed run is the only costly step of a summary (about 0.5 s at 10,000 runs), and
    the data version changes with every stored result, so an entry for the current version is exact.
    """

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self.items: OrderedDict[tuple[str, int, int], Observed] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: tuple[str, int, int]) -> Observed | None:
        with self.lock:
            hit = self.items.get(key)
            if hit is not None:
                self.items.move_to_end(key)
            return hit

    def put(self, key: tuple[str, int, int], value: Observed) -> None:
        with self.lock:
            self.items[key] = value
            self.items.move_to_end(key)
            while len(self.items) > self.size:
                self.items.popitem(last=False)


OBSERVED = ObservedCache()


def observe(st: AppState, exp: Experiment, present: RunPresenter, max_points: int) -> Observed:
    """Best run and curves at the experiment's current data version (cached per version)."""
    hit = OBSERVED.get((exp.id, exp.data_version, max_points))
    if hit is not None:
        return hit
    snap = st.store.snapshot(exp)
    problem = problem_from_spec(spec_of(exp))
    best = best_observed(problem, snap.observations)
    prog = progress(problem, snap.observations, max_points)
    out = Observed(
        data_version=snap.data_version,
        best=None if best is None else BestObserved(value=best.value, run_id=snap.completed_ids[best.index],
                                                    fidelity=present.fidelity(best.fidelity)),
        progress=ProgressOut(x_unit=prog.x_unit, total=prog.total, goal=problem.goal, curves=[
            CurveOut(fidelity=present.fidelity(c.fidelity), n_runs=c.n_runs, best=c.best, points=c.points)
            for c in prog.curves]),
    )
    OBSERVED.put((exp.id, snap.data_version, max_points), out)
    return out


def build_overview(st: AppState, exp: Experiment, max_points: int) -> Overview:
    """The summary (best observed, stored recommendation, last refit) and the best-so-far curves.

    "Last refit" is the time of the stored fits only: a recommendation computed without a refit (as the
    demo's is) picks its law by a quick selection and stores no fits, and the law card would contradict a
    list that counted it as a refit.
    """
    present = RunPresenter(spec_of(exp))
    observed = observe(st, exp, present, max_points)
    prop = st.store.latest_recommendation(exp.id)
    recommendation = None
    if prop is not None:
        p = prop.payload
        recommendation = RecommendationOut(
            mixture=present.mixture(p["mixture"]), fidelity=present.fidelity(p["fidelity"]),
            predicted=p["predicted"], method=prop.method, n_runs=prop.n_runs, data_version=prop.data_version,
            details=p.get("details", {}), constraints=p.get("outcomes", []), created_at=utc(prop.created_at))
    fitted = [utc(f.created_at) for f in st.store.latest_fits(exp.id)]
    summary = Summary(
        data_version=observed.data_version,
        best_observed=observed.best,
        recommendation=recommendation,
        stale=recommendation is not None and recommendation.data_version != observed.data_version,
        last_refit_at=max(fitted) if fitted else None,
    )
    return Overview(summary=summary, progress=observed.progress)


def utc(t: datetime) -> datetime:
    """SQLite hands back naive datetimes; every stored time is UTC, so say so on the wire."""
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)
