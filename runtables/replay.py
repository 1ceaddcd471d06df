"""Replay benchmark: a simulated orchestrator that drives the real service over HTTP from a table of runs.

Pool mode: the candidates are the table's rows (each a mixture at one fidelity), so every suggestion can
be answered with a real measured result. After each batch the orchestrator asks the service for its
recommendation among the pool's mixtures (``POST /recommendation``: the method's own choice, with its
guard, or the best observed run for model-free methods and before a model can fit), and scores it by the
table's true target value. Every request carries a seed derived from the replay's, so a replay is
repeatable. Each strategy spends the budget the way its paper does:

- ``random``: random pool mixtures, trained at the target fidelity.
- ``regmix``: the whole budget on the cheapest fidelity (design, then RegMix/laws), then extrapolate.
- ``single-fidelity-bo``: BO at the target fidelity only.
- ``bo``: multi-fidelity BO choosing both the mixture and the fidelity of every run.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from mixopt_client import MixoptClient, NotEnoughDataError

from runtables.columns import TableError, mixture_columns


@dataclass(frozen=True)
class ReplayTable:
    """The pool: ``mixtures`` (n, d), ``fidelity`` (n,), ``cost`` (n,), ``objective`` (n,)."""

    domains: list[str]
    mixtures: np.ndarray
    fidelity: np.ndarray
    cost: np.ndarray
    objective: np.ndarray
    fidelity_name: str
    objective_name: str

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, mixture_prefix: str, fidelity_column: str, cost_column: str | None,
                   objective_column: str) -> ReplayTable:
        missing = [c for c in (fidelity_column, cost_column, objective_column) if c and c not in frame.columns]
        if missing:
            raise TableError(f"no column {', '.join(map(repr, missing))}; the columns are {', '.join(frame.columns)}")
        columns = mixture_columns(frame.columns, mixture_prefix)
        mixtures = frame[list(columns)].to_numpy(dtype=np.float64)
        mixtures = mixtures / mixtures.sum(axis=1, keepdims=True)
        fid = frame[fidelity_column].to_numpy(dtype=np.float64)
        cost = frame[cost_column].to_numpy(dtype=np.float64) if cost_column else fid / fid.min()
        return cls(list(columns.values()), mixtures, fid, cost,
                   frame[objective_column].to_numpy(dtype=np.float64), fidelity_column, objective_column)

    def target_extent(self, target: float, goal: str) -> tuple[float, float]:
        """(best, range) of the true objective at the target fidelity: what regret is measured against."""
        values = np.array(list(self.target_values(target).values()))
        if not len(values):
            raise TableError(f"no rows at the target fidelity {target:g}")
        return float(values.min() if goal == "min" else values.max()), float(np.ptp(values))

    def level_costs(self) -> list[tuple[float, float]]:
        """(fidelity, median cost of a run there) per fidelity level: what a team that has timed its runs
        would declare as the experiment's ``search.level_costs``."""
        return [(float(v), float(np.median(self.cost[self.fidelity == v]))) for v in np.unique(self.fidelity)]

    def target_values(self, target: float) -> dict[bytes, float]:
        """True objective at the target fidelity, keyed by the rounded mixture."""
        rows = np.flatnonzero(np.isclose(self.fidelity, target))
        return {_key(self.mixtures[i]): float(self.objective[i]) for i in rows}


@dataclass
class Trajectory:
    method: str
    seed: int
    costs: list[float] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    #: Cost spent when the recommendation first came within the tolerance; None (null): it never did.
    cost_to_within: float | None = None
    #: Cost from which every later recommendation stayed within the tolerance, to the end of the budget;
    #: None (null): the last one was outside. First passage rewards a lucky early pick that the method
    #: then abandons; this is the cost after which a team could have stopped searching.
    cost_to_stay_within: float | None = None
    #: Regret of the last recommendation; None (null): there never was one to score.
    final_regret: float | None = None
    n_runs: int = 0
    wall_s: float = 0.0


def _key(mixture: np.ndarray) -> bytes:
    return np.round(mixture, 6).tobytes()


def run_replay(client: MixoptClient, table: ReplayTable, method: str, seed: int, target: float, budget: float,
               goal: str, batch: int, tolerance: float = 0.01,
               progress: Callable[[str], None] | None = None, declare_costs: bool = False) -> Trajectory:
    """One method's trajectory over one seed. ``declare_costs``: the experiment declares each level's median
    run cost (:meth:`ReplayTable.level_costs`), so BO need not forecast a level's cost from the fidelity axis
    before it has run there."""
    truth = table.target_values(target)
    sign = 1.0 if goal == "min" else -1.0
    best, span = table.target_extent(target, goal)
    best_true = sign * best
    pool_rows = _pool_rows(table, method, target)
    target_mixtures = [dict(zip(table.domains, table.mixtures[i].tolist(), strict=True))
                       for i in np.flatnonzero(np.isclose(table.fidelity, target))]
    exp = client.create_experiment({
        "name": f"replay-{method}-{seed}-{time.time_ns()}",
        "domains": [{"name": d} for d in table.domains],
        "objective": {"metrics": [table.objective_name], "aggregate": "single",
                      "goal": "minimize" if goal == "min" else "maximize"},
        "fidelities": [{"name": table.fidelity_name, "min": float(table.fidelity.min()),
                        "max": float(table.fidelity.max()), "target": float(target)}],
        "search": {"level_costs": [{"fidelity": {table.fidelity_name: level}, "cost": cost}
                                   for level, cost in (table.level_costs() if declare_costs else [])]},
    })
    candidates = [{"mixture": dict(zip(table.domains, table.mixtures[i].tolist(), strict=True)),
                   "fidelity": {table.fidelity_name: float(table.fidelity[i])}} for i in pool_rows]
    lookup = {(_key(table.mixtures[i]), float(table.fidelity[i])): i for i in pool_rows}
    traj = Trajectory(method=method, seed=seed)
    spent = 0.0
    t0 = time.perf_counter()
    api_method = None if method == "regmix" else method  # regmix: the service's own choice of law
    for step in itertools.count():
        if spent >= budget or len(candidates) <= traj.n_runs:
            break
        # One seed per request: a replay is repeatable, and its seeds differ from each other.
        call_seed = seed * 1_000_000 + step
        suggestions = client.suggest(exp["id"], batch, method=api_method, candidates=candidates, seed=call_seed)
        if not suggestions:
            break
        for s in suggestions:
            mix = np.array([s.mixture[d] for d in table.domains])
            row = lookup[(_key(mix), float(s.fidelity[table.fidelity_name]))]
            client.report(exp["id"], run_id=s.id, metrics={table.objective_name: float(table.objective[row])},
                          cost=float(table.cost[row]))
            spent += float(table.cost[row])
            traj.n_runs += 1
        try:
            rec = client.recommendation_among(exp["id"], target_mixtures, method=api_method, seed=call_seed)
        except NotEnoughDataError:
            continue  # nothing to recommend from yet
        value = truth[_key(np.array([rec["mixture"][d] for d in table.domains]))]
        traj.costs.append(spent)
        traj.values.append(value)
        if traj.cost_to_within is None and sign * value - best_true <= tolerance * span:
            traj.cost_to_within = spent
        if progress:
            progress(f"{method} seed {seed}: cost {spent:.0f}/{budget:.0f}, current {value:.4f}")
    traj.final_regret = (sign * traj.values[-1] - best_true) if traj.values else None
    inside = [sign * v - best_true <= tolerance * span for v in traj.values]
    start = len(inside) - next((i for i, ok in enumerate(reversed(inside)) if not ok), len(inside))
    if start < len(inside):  # the last recommendation is inside; the unbroken run of them began at start
        traj.cost_to_stay_within = traj.costs[start]
    traj.wall_s = time.perf_counter() - t0
    return traj


def _pool_rows(table: ReplayTable, method: str, target: float) -> np.ndarray:
    at_target = np.isclose(table.fidelity, target)
    if method in ("random", "single-fidelity-bo"):
        return np.flatnonzero(at_target)
    if method == "regmix":
        return np.flatnonzero(np.isclose(table.fidelity, table.fidelity.min()))
    return np.arange(len(table.fidelity))


def summarise(trajectories: list[Trajectory], budget: float) -> dict[str, Any]:
    """Medians over seeds per method; an unreached tolerance counts as an infinite cost (censored).

    The medians stay floats here (``inf``, or NaN for a regret no seed has); :func:`service.jsonable.to_jsonable`
    turns them into JSON's ``null`` when the result is written.
    """
    out: dict[str, Any] = {}
    for method in sorted({t.method for t in trajectories}):
        ts = [t for t in trajectories if t.method == method]
        reach = [t.cost_to_within if t.cost_to_within is not None else np.inf for t in ts]
        stay = [t.cost_to_stay_within if t.cost_to_stay_within is not None else np.inf for t in ts]
        regrets = [t.final_regret for t in ts if t.final_regret is not None]
        out[method] = {
            "seeds": len(ts),
            # inf (null in JSON): the median seed did not get within 1% before the budget ran out
            "median_cost_to_within_1pct": float(np.median(reach)),
            "reached": int(sum(np.isfinite(reach))),
            "median_cost_to_stay_within_1pct": float(np.median(stay)),
            "stayed": int(sum(np.isfinite(stay))),
            # NaN (null in JSON): no seed got a recommendation to score
            "median_final_regret": float(np.median(regrets)) if regrets else math.nan,
            "median_wall_s": float(np.median([t.wall_s for t in ts])),
        }
    return {"budget": budget, "methods": out, "trajectories": [asdict(t) for t in trajectories]}
