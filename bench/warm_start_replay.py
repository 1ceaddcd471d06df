"""Warm start replay on RegMix: does starting from another objective's runs find the target optimum cheaper?

Target: the real 60M-parameter Pile-CC validation loss of the 256 RegMix test mixtures (one run = cost 1).
Every arm runs the same search -- batches of 4, a space-filling design, then single-fidelity BO choosing
among the pool's mixtures (the :mod:`mixing.methods` objects the service uses) -- and after each batch
recommends one pool mixture (``BayesOptMethod.recommend``); the cost is recorded when the recommendation's
*true* loss first comes within 1% of the pool's loss range of its best (as ``bench/mf_family.py`` scores).

Arms (the source runs are the 512 RegMix *training* runs at 1M parameters: other mixtures, another scale).
The source experiments' objectives differ from the target's; what a transfer carries follows the service's
rule (:mod:`service.store.transfers`): a source run that reports the target's metrics brings the target's
objective as measured at its own scale, one that does not brings its own experiment's objective as a
related task.

* ``cold``: no transfers, 8 design runs (the design ``bench/mf_family.py`` uses), then BO;
* ``warm-mean-all-metrics``: a source experiment whose objective was the mean of the 13 domain losses and
  whose runs report every domain loss, as RegMix's do: the transfers are its runs' 1M Pile-CC losses;
* ``warm-mean``: the same experiment if its runs had reported only the mean loss (a related task; its model
  ranks the pool with Spearman 0.36 against the target);
* ``warm-wikipedia``: a source whose runs report only the Wikipedia loss (another domain's loss, 0.75);
* ``warm-shuffled`` (control): the 1M Pile-CC values of the first source shuffled across its mixtures;
* ``warm-unrelated`` (control): a smooth random function of the mixture unrelated to the data (random
  Fourier features of ``sqrt(w)``, lengthscale 0.3, seeded) on the same 1M mixtures.

Every warm arm uses the same 8 design runs as ``cold`` (same seeds: a transfer that is never used gives the
cold trajectory exactly).

Pass criteria (issue 18): a warm start from another objective reaches 1% at a lower median cost than the
cold start; the controls' median cost is at most 10% above the cold start's.

Run: ``nice -n 10 python bench/warm_start_replay.py --seeds 10`` (writes
``bench/results/warm_start_replay.json``). One process; torch and BLAS single-threaded.
``--law-report regmix_linear`` instead measures the refit's with/without comparison of a law on 16, 32 and 64
random own runs for every source (``bench/results/warm_start_laws.json``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mixing.compute import Compute  # noqa: E402
from mixing.errors import FitError, NotEnoughDataError  # noqa: E402
from mixing.evaluation import compare_transfer  # noqa: E402
from mixing.laws import make_law  # noqa: E402
from mixing.methods.base import SearchContext  # noqa: E402
from mixing.methods.bo import BayesOptMethod  # noqa: E402
from mixing.methods.design import DesignMethod  # noqa: E402
from mixing.problem import Candidates, Observations, Problem  # noqa: E402
from mixing.simplex import SimplexConstraints  # noqa: E402
from mixing.transfer import Transfers  # noqa: E402
from runtables.regmix import PILE_TOKEN_SHARE, load_split  # noqa: E402
from service.jsonable import to_jsonable  # noqa: E402

DATA = Path(os.environ.get("MIXOPT_REGMIX_DATA", Path(__file__).resolve().parents[2] / "shared/data/regmix"))
OUT = Path(__file__).resolve().parent / "results"
TARGET = "loss/pile_cc"
BATCH = 4
TOLERANCE = 0.01
ARMS = ("cold", "warm-mean-all-metrics", "warm-mean", "warm-wikipedia", "warm-shuffled", "warm-unrelated")
DESIGN = 8


@dataclass
class Trace:
    arm: str
    seed: int
    costs: list[float] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    #: Whether the BO fit used the transfers at each batch (the prior's leave-one-out gate).
    transfer_used: list[bool | None] = field(default_factory=list)
    cost_to_within: float = math.inf
    final_regret: float = math.nan
    wall_s: float = 0.0


@dataclass(frozen=True)
class Pool:
    problem: Problem
    mixtures: np.ndarray
    truth: np.ndarray
    sources: dict[str, Transfers]


def build_pool() -> Pool:
    test = load_split(DATA, "test_60m")
    train = load_split(DATA, "train_1m")
    domains = list(test.mixtures.columns)
    mixtures = test.mixtures[domains].to_numpy(dtype=np.float64)
    mixtures = mixtures / mixtures.sum(axis=1, keepdims=True)
    prior = np.array([PILE_TOKEN_SHARE[d] for d in domains])
    problem = Problem(tuple(domains), SimplexConstraints.unconstrained(len(domains)), ("loss",), np.ones(1),
                      prior=prior / prior.sum())
    src_x = train.mixtures[domains].to_numpy(dtype=np.float64)
    src_x = src_x / src_x.sum(axis=1, keepdims=True)
    mean = train.losses.mean(axis=1).to_numpy(dtype=np.float64)
    wikipedia = train.losses["loss/wikipedia_en"].to_numpy(dtype=np.float64)
    same_metric = train.losses[TARGET].to_numpy(dtype=np.float64)
    rng = np.random.default_rng(12345)
    omega, phase = rng.standard_normal((len(domains), 64)) / 0.3, rng.uniform(0, 2 * np.pi, 64)

    def transfers(values: np.ndarray) -> Transfers:
        return Transfers(src_x, values, np.zeros(len(values), dtype=np.intp), np.ones(len(values)))

    sources = {
        "warm-mean-all-metrics": transfers(same_metric),
        "warm-mean": transfers(mean),
        "warm-wikipedia": transfers(wikipedia),
        "warm-shuffled": transfers(rng.permutation(same_metric)),
        "warm-unrelated": transfers(np.cos(np.sqrt(src_x) @ omega + phase).sum(axis=1)),
    }
    return Pool(problem, mixtures, test.losses[TARGET].to_numpy(dtype=np.float64), sources)


def replay(pool: Pool, arm: str, seed: int, budget: int) -> Trace:
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    transfers = pool.sources.get(arm)
    design = DESIGN
    method = BayesOptMethod()
    best, span = float(pool.truth.min()), float(np.ptp(pool.truth))
    rows: list[int] = []
    hints: dict = {}
    trace = Trace(arm, seed)
    d = pool.mixtures.shape[1]

    def context() -> SearchContext:
        obs = Observations(pool.mixtures[rows].reshape(-1, d), np.zeros((len(rows), 0)),
                           pool.truth[rows][:, None], np.ones(len(rows)), np.zeros((0, d)), np.zeros((0, 0)))
        return SearchContext(pool.problem, obs, np.random.default_rng(rng.integers(2**31)), hints,
                             Compute(threads=1), transfers)

    while len(rows) < budget:
        free = np.setdiff1d(np.arange(len(pool.truth)), rows)
        pool_free = Candidates(pool.mixtures[free], np.zeros((len(free), 0)))
        ctx = context()
        if len(rows) < design:
            props = DesignMethod().suggest(ctx, min(BATCH, design - len(rows)), None, pool_free)
        else:
            props = method.suggest(ctx, BATCH, None, pool_free)
            if props:
                hints = {"bo_state": props[0].details["bo_state"]}
                used = props[0].details.get("transfer")
                trace.transfer_used.append(None if used is None else bool(any(used["used"])))
        if not props:
            break
        for p in props:
            rows.append(int(np.argmin(np.abs(pool.mixtures - p.mixture).sum(axis=1))))
        try:
            rec = method.recommend(context(), pool.mixtures).mixture
        except (NotEnoughDataError, FitError):
            rec = pool.mixtures[min(rows, key=lambda r: pool.truth[r])]
        value = float(pool.truth[int(np.argmin(np.abs(pool.mixtures - rec).sum(axis=1)))])
        trace.costs.append(float(len(rows)))
        trace.values.append(value)
        if math.isinf(trace.cost_to_within) and value - best <= TOLERANCE * span:
            trace.cost_to_within = float(len(rows))
    trace.final_regret = (trace.values[-1] - best) / span if trace.values else math.nan
    trace.wall_s = time.perf_counter() - t0
    return trace


def summarise(traces: list[Trace]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for arm in ARMS:
        costs = [t.cost_to_within for t in traces if t.arm == arm]
        if not costs:
            continue
        out[arm] = {
            "seeds": len(costs),
            "median_cost_to_1pct": float(np.median(costs)),
            "reached": int(sum(math.isfinite(c) for c in costs)),
            "costs": [c if math.isfinite(c) else None for c in costs],
            "median_final_regret": float(np.median([t.final_regret for t in traces if t.arm == arm])),
        }
    cold = out.get("cold", {}).get("median_cost_to_1pct")
    if cold:
        for row in out.values():
            row["vs_cold"] = row["median_cost_to_1pct"] / cold
    return out


def law_report(pool: Pool, seeds: int, sizes: tuple[int, ...], law_name: str) -> list[dict[str, Any]]:
    """The refit's with/without comparison (:func:`mixing.evaluation.compare_transfer`, 5-fold) of one law on
    ``n`` random own runs of the target, for every source."""
    rows = []
    for n in sizes:
        for seed in range(seeds):
            own = np.random.default_rng(1000 + seed).choice(len(pool.truth), n, replace=False)
            for arm, transfers in pool.sources.items():
                c = compare_transfer(make_law(law_name), pool.mixtures[own], None, pool.truth[own][:, None],
                                     np.ones(1), transfers, seed=seed)
                rows.append({"n": n, "seed": seed, "arm": arm, "helps": c.helps,
                             "mse_ratio": c.mse_with / c.mse_without, "spearman_without": c.without.spearman,
                             "spearman_with": c.with_transfer.spearman})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--budget", type=int, default=48)
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    parser.add_argument("--out", type=Path, default=OUT / "warm_start_replay.json")
    parser.add_argument("--law-report", metavar="LAW", help="instead of the replay: the refit's with/without "
                        "comparison of LAW on random own runs (writes warm_start_laws.json)")
    args = parser.parse_args()
    if args.law_report:
        rows = law_report(build_pool(), args.seeds, (16, 32, 64), args.law_report)
        out = OUT / "warm_start_laws.json"
        out.write_text(json.dumps(to_jsonable({"law": args.law_report, "rows": rows}), indent=1))
        for n in (16, 32, 64):
            for arm in ARMS[1:]:
                sel = [r for r in rows if r["n"] == n and r["arm"] == arm]
                print(f"n={n:3d} {arm:22s} helps {sum(r['helps'] for r in sel)}/{len(sel)}  median mse with/without "
                      f"{np.median([r['mse_ratio'] for r in sel]):.3f}  Spearman "
                      f"{np.median([r['spearman_without'] for r in sel]):.3f} -> "
                      f"{np.median([r['spearman_with'] for r in sel]):.3f}")
        return
    import torch

    torch.set_num_threads(1)
    pool = build_pool()
    traces = []
    for seed in range(args.seeds):
        for arm in args.arms:
            t = replay(pool, arm, seed, args.budget)
            traces.append(t)
            print(f"seed {seed} {arm:15s} cost to 1%: {t.cost_to_within:5.0f}  regret {t.final_regret:.4f}  "
                  f"transfer used {t.transfer_used}  {t.wall_s:.0f} s", flush=True)
    result = {
        "target": f"{TARGET} at 60M (256 RegMix test mixtures)",
        "sources": "512 RegMix train runs at 1M (other mixtures)",
        "budget": args.budget, "batch": BATCH, "tolerance": TOLERANCE,
        "machine": "2-core Intel Xeon VM, no GPU",
        "load_average": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
        "summary": summarise(traces),
        "traces": [asdict(t) for t in traces],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(to_jsonable(result), indent=1))
    print(json.dumps(result["summary"], indent=1))


if __name__ == "__main__":
    main()
