"""BO with an outcome constraint on the RegMix runs (issue 18): the task of :mod:`bench.pareto_regmix`, searched.

Task (shared with :mod:`bench.pareto_regmix`, :class:`~bench.pareto_regmix.Task`): minimise one domain's
validation loss subject to the mean of the other twelve staying within 1% of the baseline's -- the measured
mixture nearest the natural one.

Unlike the laws and RegMix there, which are fitted once on the 512 training runs, BO *chooses* its runs:
multi-fidelity ``bo`` (:class:`~mixing.methods.bo.BayesOptMethod`, as the service runs it) over a replay pool
(:class:`~mixing.replay_pool.ReplayPool`) of the 512 training mixtures at 1M parameters (cost 1) and the 256
test mixtures at 1M (cost 1) and 60M (cost 60, the target). Multi-fidelity because that is what the pool is:
the 1M runs rank the 60M ones well (Spearman over the 256: 0.993-0.997 for the four objectives, 0.966 for the
others' mean), so a search that could only buy 60M runs would spend the budget on a handful of mixtures; and
the constraint's GP, like the objective's, learns from every level. The search starts from the baseline's own
runs at 1M and 60M (what the bound is relative to, not charged: the team has them), then trains the ``auto``
policy's design of 34 space-filling 1M runs from the pool, then BO batches of 4 choosing mixture and level,
until ``--budget`` is spent (a proposal that would overrun it is dropped; the search stops when a batch has
none that fits). Then it recommends one of the 256 test mixtures (those with a measured 60M loss).

Arms, same seeds: ``constrained`` (the problem with the constraint: suggestions weighted by the probability
of feasibility, the recommendation the posterior-mean optimum among mixtures feasible with probability >=
0.9), ``unconstrained`` (the same search without the constraint) and ``front`` (without the constraint, the
others' mean a trade-off: suggestions by the expected hypervolume improvement of the target-level front,
:class:`mixing.bo.engine.FrontAcquisition`). Each recommendation is checked on its measured 60M values: does it
meet the bound, its rank among the measured-feasible mixtures, against the oracle (the best measured-feasible
mixture at 60M).

Fronts (``unconstrained`` and ``front`` arms, and random search with the same budget: the baseline's 60M run
and budget / 60 random 60M runs): the hypervolume of the measured 60M (objective, others' mean) points of
BO's predicted front over the 256 (:func:`mixing.pareto.predicted_front` with ``front_model``, fitted on the
search's runs) and of the runs the search measured at 60M, as a share of the hypervolume of all 256
(reference point: the worst measured value of each axis, as in :mod:`bench.pareto_regmix`).

    python bench/pareto_bo_regmix.py [--domains github pile_cc ...] [--arms constrained unconstrained front]
                                     [--seeds 5] [--budget 360] [--jobs 2] [--out PATH]

Writes ``bench/results/pareto_bo_regmix.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.pareto_regmix import DATA, Task, load_task  # noqa: E402
from mixing.errors import NoFeasibleMixtureError  # noqa: E402
from mixing.methods.base import SearchContext  # noqa: E402
from mixing.methods.bo import BayesOptMethod  # noqa: E402
from mixing.methods.design import DesignMethod  # noqa: E402
from mixing.pareto import hypervolume, predicted_front  # noqa: E402
from mixing.problem import Candidates, FidelitySpace, Observations, Problem, TradeOff  # noqa: E402
from mixing.replay_pool import ReplayPool  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "pareto_bo_regmix.json"
LOW, HIGH = 1e6, 6e7
SPACE = FidelitySpace(("params",), np.array([LOW]), np.array([HIGH]), np.array([HIGH]))
#: The ``auto`` policy's initial design for 17 domains (2 per domain), at 1M.
DESIGN = 34
BATCH = 4
ARMS = ("constrained", "unconstrained", "front")
#: Arms read out as a trade-off front of (objective, others' mean) as well.
FRONT_ARMS = ("unconstrained", "front")


def replay_pool(task: Task) -> tuple[ReplayPool, np.ndarray, Candidates]:
    """The pool's runs (train at 1M, test at 1M, test at 60M), their metrics ``(n, 2)``, and the candidates BO
    chooses from: the training mixtures at 1M only, the test mixtures at either level (NaN: BO chooses)."""
    n_train, n_test = len(task.x_train), len(task.pool)
    mixtures = np.vstack([task.x_train, task.pool, task.pool])
    fids = np.concatenate([np.full(n_train + n_test, LOW), np.full(n_test, HIGH)])[:, None]
    metrics = np.vstack([task.train, task.test_1m, task.test_60m])
    cands = Candidates(np.vstack([task.x_train, task.pool]),
                       np.concatenate([np.full(n_train, LOW), np.full(n_test, np.nan)])[:, None])
    return ReplayPool(mixtures, fids, metrics[:, 0], fids[:, 0] / LOW), metrics, cands


def arm_problem(task: Task, arm: str) -> Problem:
    """The problem an arm searches: with the constraint, without it, or without it and with the others'
    mean as a trade-off (``front``: BO's suggestions aim at the (objective, others' mean) front)."""
    if arm == "front":
        return dataclasses.replace(task.problem(False, SPACE), trade_offs=(TradeOff(metric=1),))
    return task.problem(arm == "constrained", SPACE)


def replay(task: Task, arm: str, seed: int, budget: float) -> dict[str, Any]:
    """One search of ``budget`` cost units and its recommendation, checked at 60M; for :data:`FRONT_ARMS`,
    the front too (:func:`front_readout`)."""
    t0 = time.perf_counter()
    problem = arm_problem(task, arm)
    pool, metrics, cands = replay_pool(task)
    base = task.pool[task.baseline]
    rows = [pool.answer(base, [LOW])[0], pool.answer(base, [HIGH])[0]]
    spent = 0.0
    rng = np.random.default_rng(seed)
    hints: dict[str, Any] = {}

    def context(prob: Problem = problem) -> SearchContext:
        d = len(task.domains)
        obs = Observations(pool.mixtures[rows], pool.fidelities[rows], metrics[rows], pool.cost[rows],
                           np.zeros((0, d)), np.zeros((0, 1)))
        return SearchContext(prob, obs, np.random.default_rng(rng.integers(2**31)), hints)

    proposals = DesignMethod().suggest(context(), DESIGN, np.array([LOW]), cands)
    while True:
        taken = 0
        for p in proposals:
            row, _ = pool.answer(p.mixture, p.fidelity)
            if spent + pool.cost[row] <= budget:
                rows.append(row)
                spent += float(pool.cost[row])
                taken += 1
        if taken == 0:
            break
        proposals = BayesOptMethod().suggest(context(), BATCH, None, cands)
        hints = {"bo_state": proposals[0].details["bo_state"]} if proposals else hints
    high = pool.fidelities[rows, 0] == HIGH
    out: dict[str, Any] = {"seed": seed, "spent": spent, "runs_1m": int((~high).sum()) - 1,
                           "runs_60m": int(high.sum()) - 1, "rows": [int(r) for r in rows]}
    try:
        rec = BayesOptMethod().recommend(context(), task.pool)
    except NoFeasibleMixtureError as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
    else:
        out.update(predicted=rec.predicted.value, **task.scored(rec.mixture))
        if rec.outcomes:
            o = rec.outcomes[0]
            out.update(predicted_others=o.value, predicted_bound=o.bound, probability=o.probability)
    if arm in FRONT_ARMS:
        ctx = context(arm_problem(task, "front"))
        front = predicted_front(ctx, BayesOptMethod().front_model(ctx), task.pool)
        picked = [int(np.argmin(np.abs(task.pool - w).sum(axis=1))) for w in front.mixtures]
        measured = [int(r) - len(task.x_train) - len(task.pool) for r in np.asarray(rows)[high]]
        out["front"] = front_readout(task, picked, measured)
    out["seconds"] = time.perf_counter() - t0
    return out


def front_readout(task: Task, predicted: list[int], measured: list[int]) -> dict[str, Any]:
    """Hypervolume of the measured 60M (objective, others' mean) points of the ``predicted`` front's pool rows
    and of the pool rows ``measured`` at 60M by the search; reference point and scale as in
    :mod:`bench.pareto_regmix` (the worst measured value of each axis over the 256; share of all 256's HV)."""
    m60 = task.test_60m
    ref = m60.max(axis=0)
    every = hypervolume(m60, ref)
    return {"size": len(predicted), "hv_predicted_front_60m": hypervolume(m60[predicted], ref) / every,
            "hv_measured_60m": hypervolume(m60[measured], ref) / every}


def random_fronts(task: Task, seeds: int, budget: float) -> list[dict[str, Any]]:
    """Random search with the same budget: the baseline's 60M run and ``budget / 60`` random 60M runs."""
    out = []
    for seed in range(seeds):
        rows = np.random.default_rng(seed).choice(len(task.pool), int(budget // (HIGH / LOW)), replace=False)
        out.append(front_readout(task, [], [task.baseline, *rows.tolist()]))
    return out


def _job(args: tuple[str, Path, str, int, float]) -> tuple[str, str, dict[str, Any]]:
    domain, data, arm, seed, budget = args
    return domain, arm, replay(load_task(domain, data), arm, seed, budget)


def table(results: list[dict[str, Any]]) -> str:
    """Per objective: each arm over the seeds, against the oracles."""
    lines = ["| objective (bound at 60M) | arm | meets the bound at 60M | objective at 60M, median (range) "
             "| rank among the measured-feasible, per seed | 60M runs bought, median | oracle feasible / free |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        for arm, runs in r["arms"].items():
            ok = [x for x in runs if "error" not in x]
            obj = np.array([x["objective_60m"] for x in ok])
            ranks = ", ".join(str(x.get("rank_among_feasible_60m", "–")) if "error" not in x else "none feasible"
                              for x in runs)
            spread = f"{np.median(obj):.4f} ({obj.min():.4f}-{obj.max():.4f})" if len(obj) else "–"
            lines.append(
                f"| {r['domain']} ({r['bound_60m']:.4f}) | {arm} | {sum(x['meets_at_60m'] for x in ok)} / {len(runs)} "
                f"| {spread} | {ranks} (of {r['n_feasible_60m']}) | {np.median([x['runs_60m'] for x in runs]):.0f} "
                f"| {r['oracle_feasible_60m']:.4f} / {r['oracle_free_60m']:.4f} |")
    return "\n".join(lines)


def front_table(results: list[dict[str, Any]]) -> str:
    """Per objective: hypervolumes as a share of all 256 mixtures' (mean over seeds, min-max)."""
    lines = ["| objective | search | HV of the predicted front, measured at 60M (front size) "
             "| HV of the runs measured at 60M |", "|---|---|---|---|"]

    def spread(values: list[float]) -> str:
        return f"{100 * np.mean(values):.1f}% ({100 * min(values):.1f}-{100 * max(values):.1f})"

    for r in results:
        rows = [(arm, [x["front"] for x in r["arms"][arm]]) for arm in FRONT_ARMS if arm in r["arms"]]
        for arm, fronts in [*rows, ("random", r["random"])]:
            predicted = (f"{spread([f['hv_predicted_front_60m'] for f in fronts])} "
                         f"({np.median([f['size'] for f in fronts]):.0f})") if arm != "random" else "–"
            lines.append(f"| {r['domain']} | {arm} | {predicted} | {spread([f['hv_measured_60m'] for f in fronts])} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domains", nargs="+", default=["github", "pile_cc", "arxiv", "wikipedia_en"])
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--budget", type=float, default=360.0)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    t0 = time.perf_counter()
    jobs = [(d, args.data, arm, s, args.budget) for d in args.domains for arm in args.arms for s in range(args.seeds)]
    with ProcessPoolExecutor(args.jobs) as ex:
        done = list(ex.map(_job, jobs))
    results = []
    for d in args.domains:
        task = load_task(d, args.data)
        arms = {arm: [r for dd, a, r in done if dd == d and a == arm] for arm in args.arms}
        results.append({**task.summary(), "arms": arms, "random": random_fronts(task, args.seeds, args.budget)})
    doc = {"machine": f"{platform.machine()} {os.cpu_count()} CPUs", "load_average": os.getloadavg(),
           "wall_seconds": time.perf_counter() - t0, "budget": args.budget, "design": DESIGN, "batch": BATCH,
           "seeds": args.seeds, "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    print(table(results))
    if any(arm in FRONT_ARMS for arm in args.arms):
        print()
        print(front_table(results))


if __name__ == "__main__":
    main()
