"""In-process replay on the RegMix runs: cost until a run within 1% of the best target-scale result.

The pool is the 256 RegMix test mixtures trained at 1M and at 60M parameters; cost is proportional to
parameters (1 and 60). Each method proposes runs from the pool (as ``candidates``, fidelity left to the
method unless it is single-fidelity), :class:`~mixing.replay_pool.ReplayPool` answers them with the real
results, and the replay stops when a 60M run within 1% of the pool's best 60M objective has been observed.
A replay that spends ``MAX_COST`` without one has cost ``inf``, written as ``null`` in the results JSON
(and so is a median or mean cost over seeds that is infinite).
This is the pure-Python twin of the later HTTP ``mixopt replay`` benchmark, for tuning and evidence.

Methods: ``bo`` (34 design runs at 1M -- the ``auto`` policy's initial design for 17 domains -- then
batches of 4), ``single-fidelity-bo`` (8 design runs at 60M, then batches of 4 at 60M), ``regmix-N``
(N design runs at 1M, then RegMix's LightGBM regression proposes the best predicted mixture at 60M, one at
a time: RegMix's recipe of fitting proxies and training the predicted best at scale) and ``random-target``
(random 60M runs; its exact cost distribution -- a draw without replacement -- is reported too).
Run: ``python bench/bo_replay.py [--seeds 10] [--objective pile_cc|mean] [--methods bo,single-fidelity-bo]``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mixing.methods.base import SearchContext  # noqa: E402
from mixing.methods.bo import BayesOptMethod, SingleFidelityBayesOptMethod  # noqa: E402
from mixing.methods.design import DesignMethod  # noqa: E402
from mixing.methods.regmix import RegMixMethod  # noqa: E402
from mixing.problem import Candidates, FidelitySpace, Observations, Problem, Proposal  # noqa: E402
from mixing.replay_pool import ReplayPool  # noqa: E402
from mixing.simplex import SimplexConstraints  # noqa: E402
from runtables.regmix import PILE_TOKEN_SHARE, load_split  # noqa: E402
from service.jsonable import to_jsonable  # noqa: E402

DATA = Path(os.environ.get("MIXOPT_REGMIX_DATA", Path(__file__).resolve().parents[2] / "shared/data/regmix"))
OUT = Path(__file__).resolve().parent / "results"
LOW, HIGH = 1e6, 6e7
BATCH = 4
MAX_COST = 4000.0


def load_pool(objective: str) -> tuple[Problem, ReplayPool]:
    mixtures, fids, ys = [], [], []
    for split, params in (("test_1m", LOW), ("test_60m", HIGH)):
        s = load_split(DATA, split)
        w = s.mixtures.to_numpy(dtype=np.float64)
        y = s.losses["loss/pile_cc"] if objective == "pile_cc" else s.losses.mean(axis=1)
        mixtures.append(w / w.sum(axis=1, keepdims=True))
        fids.append(np.full((len(w), 1), params))
        ys.append(y.to_numpy(dtype=np.float64))
        domains = tuple(s.mixtures.columns)
    fid = np.concatenate(fids)
    pool = ReplayPool(np.concatenate(mixtures), fid, np.concatenate(ys), fid[:, 0] / LOW)
    prior = np.array([PILE_TOKEN_SHARE[d] for d in domains])
    space = FidelitySpace(("params",), np.array([LOW]), np.array([HIGH]), np.array([HIGH]))
    prob = Problem(
        domains,
        SimplexConstraints.unconstrained(len(domains)),
        ("objective",),
        np.array([1.0]),
        prior=prior,
        fidelity=space,
    )
    return prob, pool


def plan(method: str) -> tuple[float, int, Callable[[SearchContext, Candidates], list[Proposal]]]:
    """(fidelity of the initial design, its size, the step that proposes the next runs) per method."""
    if method == "bo":
        return LOW, 34, lambda ctx, cands: BayesOptMethod().suggest(ctx, BATCH, None, cands)
    if method == "single-fidelity-bo":
        return HIGH, 8, lambda ctx, cands: SingleFidelityBayesOptMethod().suggest(ctx, BATCH, None, cands)
    if method.startswith("regmix-"):  # N proxy runs at 1M, then the best predicted mixture at 60M, one by one
        n0 = int(method.removeprefix("regmix-"))
        return LOW, n0, lambda ctx, cands: RegMixMethod().suggest(ctx, 1, np.array([HIGH]), cands)
    raise ValueError(f"unknown method {method}")


def replay(method: str, prob: Problem, pool: ReplayPool, seed: int) -> dict[str, float]:
    """Run one replay; returns the cost, number of runs per fidelity and wall time until success."""
    rng = np.random.default_rng(seed)
    is_high = pool.fidelities[:, 0] == HIGH
    best = pool.objective[is_high].min()
    good = set(np.flatnonzero(is_high & (pool.objective <= best * 1.01)).tolist())
    unique_mix = pool.mixtures[~is_high]
    if method == "random-target":
        order = rng.permutation(np.flatnonzero(is_high))
        hit = next(i for i, row in enumerate(order) if row in good)
        return {
            "cost": float(pool.cost[order[: hit + 1]].sum()),
            "runs_low": 0,
            "runs_high": hit + 1,
            "seconds": 0.0,
        }
    rows: list[int] = []
    hints: dict = {}
    t0 = time.perf_counter()
    first, n0, step = plan(method)
    cands = Candidates(unique_mix, np.full((len(unique_mix), 1), np.nan))
    while True:
        obs = Observations(
            pool.mixtures[rows].reshape(-1, pool.mixtures.shape[1]),
            pool.fidelities[rows].reshape(-1, 1),
            pool.objective[rows][:, None],
            pool.cost[rows],
            np.zeros((0, pool.mixtures.shape[1])),
            np.zeros((0, 1)),
        )
        ctx = SearchContext(prob, obs, np.random.default_rng(rng.integers(2**31)), hints)
        if len(rows) < n0:
            props = DesignMethod().suggest(ctx, n0, np.array([first]), cands)
        else:
            props = step(ctx, cands)
            hints = (
                {"bo_state": props[0].details["bo_state"]}
                if props and "bo_state" in props[0].details
                else hints
            )
        if not props:
            break
        for p in props:
            row, _ = pool.answer(p.mixture, p.fidelity)
            rows.append(row)
            if row in good:
                return {
                    "cost": float(pool.cost[rows].sum()),
                    "runs_low": int((~is_high[rows]).sum()),
                    "runs_high": int(is_high[rows].sum()),
                    "seconds": time.perf_counter() - t0,
                }
        if pool.cost[rows].sum() >= MAX_COST:
            break
    return {
        "cost": float("inf"),
        "runs_low": int((~is_high[rows]).sum()),
        "runs_high": int(is_high[rows].sum()),
        "seconds": time.perf_counter() - t0,
    }


def random_target_exact(pool: ReplayPool) -> dict[str, float]:
    """Exact median and mean cost of random search at the target: the first success of draws without
    replacement, ``P(T > t) = prod_{i<t} (N - k - i) / (N - i)`` for k good runs among N."""
    is_high = pool.fidelities[:, 0] == HIGH
    y = pool.objective[is_high]
    n, k = len(y), int((y <= y.min() * 1.01).sum())
    survive = np.cumprod([(n - k - i) / (n - i) for i in range(n - k + 1)])  # P(T > t), t = 1..n-k+1
    p_t = np.concatenate([[1.0], survive[:-1]]) - survive  # P(T = t)
    t = np.arange(1, len(p_t) + 1)
    unit = float(pool.cost[is_high][0])
    median = int(t[np.searchsorted(np.cumsum(p_t), 0.5)])
    return {"median_cost": unit * median, "mean_cost": unit * float((t * p_t).sum()), "good_runs": k}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--objective", default="pile_cc", choices=["pile_cc", "mean"])
    ap.add_argument("--methods", default="random-target,bo,single-fidelity-bo")
    args = ap.parse_args()
    prob, pool = load_pool(args.objective)
    results: dict[str, list[dict[str, float]]] = {}
    for method in args.methods.split(","):
        results[method] = []
        for seed in range(args.seeds):
            r = replay(method, prob, pool, seed)
            results[method].append(r)
            print(method, seed, json.dumps(r), flush=True)
    print(f"\nobjective={args.objective}  seeds={args.seeds}")
    print(
        f"{'method':20} {'median cost':>12} {'mean cost':>10} {'median 1M runs':>15} {'median 60M runs':>16}"
    )
    summary = {}
    for method, rs in results.items():
        cost = np.array([r["cost"] for r in rs])
        summary[method] = {
            "median_cost": float(np.median(cost)),
            "mean_cost": float(np.mean(cost)),
            "median_runs_low": float(np.median([r["runs_low"] for r in rs])),
            "median_runs_high": float(np.median([r["runs_high"] for r in rs])),
        }
        s = summary[method]
        print(
            f"{method:20} {s['median_cost']:12.1f} {s['mean_cost']:10.1f} {s['median_runs_low']:15.1f} "
            f"{s['median_runs_high']:16.1f}"
        )
    exact = random_target_exact(pool)
    summary["random-target (exact)"] = exact
    print(
        f"{'random-target exact':20} {exact['median_cost']:12.1f} {exact['mean_cost']:10.1f}"
        f"   ({exact['good_runs']} runs within 1% of the best)"
    )
    OUT.mkdir(exist_ok=True)
    (OUT / f"bo_replay_{args.objective}.json").write_text(
        json.dumps(
            to_jsonable(
                {
                    "objective": args.objective,
                    "seeds": args.seeds,
                    "batch": BATCH,
                    "results": results,
                    "summary": summary,
                }
            ),
            indent=1,
            allow_nan=False,
        )
    )


if __name__ == "__main__":
    main()
