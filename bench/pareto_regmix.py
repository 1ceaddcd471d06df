"""Outcome constraints and trade-off fronts on the RegMix proxy runs (issue 18), in one command.

For each objective domain D: minimise D's validation loss subject to the mean of the other 12 domain
losses staying within 1% of the natural mixture's. Models are fitted on the 512 training runs at 1M
parameters and choose among the 256 mixtures that were also trained at 60M; the answer is checked on the
measured 60M losses.

The natural mixture (the Pile token shares) was never trained, so the baseline is the measured mixture
closest to it: the test mixture nearest in L1, whose 1M run is added to the fitted runs and named as the
baseline run (``relative_to`` a run: its measured 1M value resolves the bound for the model; its measured
60M value is the bound the answer is checked against).

For each method (RegMix's LightGBM; the data-mixing law with conformal intervals):

* constrained: the recommendation among the 256 with P(feasible) >= 0.9, its measured 60M objective and
  constraint value, and whether the constraint holds at 60M;
* unconstrained: the same method's optimum without the constraint, and whether it breaks the constraint;
* oracle: the best measured-feasible mixture at 60M (the constrained optimum in hindsight) and the rank of
  the recommendation among the measured-feasible ones;
* front: the predicted non-dominated mixtures of the 256 (objective, others' mean); the hypervolume of their
  *measured* 60M points against a random search that trains as many of the 256, picked at random (2,000
  draws), and against the measured front of all 256 (the most any selection can reach). Reference point:
  the worst measured value of each axis over the 256.

    python bench/pareto_regmix.py [--domains github pile_cc ...] [--data ../shared/data/regmix]

Writes ``bench/results/pareto_regmix.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mixing.methods.base import SearchContext
from mixing.methods.law import LawMethod
from mixing.methods.regmix import RegMixMethod
from mixing.pareto import hypervolume, non_dominated, predicted_front
from mixing.problem import Observations, OutcomeConstraint, Problem
from mixing.simplex import SimplexConstraints
from runtables.regmix import PILE_TOKEN_SHARE, load_split

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "pareto_regmix.json"
DATA = Path(os.environ.get("MIXOPT_REGMIX_DATA", ROOT.parent / "shared" / "data" / "regmix"))
SLACK = 0.01
RANDOM_DRAWS = 2000
METHODS: dict[str, Callable[[], RegMixMethod | LawMethod]] = {
    "regmix": RegMixMethod,
    "data_mixing_law": LawMethod,
}
HINTS = {"regmix": {}, "data_mixing_law": {"selected_law": "data_mixing_law"}}


def two_metrics(losses: np.ndarray, j: int) -> np.ndarray:
    """(domain j's loss, mean of the others) per row."""
    others = np.delete(losses, j, axis=1).mean(axis=1)
    return np.column_stack([losses[:, j], others])


def run_domain(domain: str, data: Path, seed: int) -> dict[str, Any]:
    train, test1, test60 = (load_split(data, s) for s in ("train_1m", "test_1m", "test_60m"))
    domains = list(train.mixtures.columns)
    loss_cols = list(train.losses.columns)
    j = loss_cols.index(f"loss/{domain}")
    x_train = train.mixtures.to_numpy(dtype=np.float64)
    x_train /= x_train.sum(axis=1, keepdims=True)
    pool = test60.mixtures.to_numpy(dtype=np.float64)
    pool /= pool.sum(axis=1, keepdims=True)
    natural = np.array([PILE_TOKEN_SHARE[d] for d in domains])
    natural /= natural.sum()
    b = int(np.argmin(np.abs(pool - natural).sum(axis=1)))
    m_train = two_metrics(train.losses.to_numpy(dtype=np.float64), j)
    m_base_1m = two_metrics(test1.losses.to_numpy(dtype=np.float64), j)[b]
    m60 = two_metrics(test60.losses.to_numpy(dtype=np.float64), j)
    bound60 = m60[b, 1] * (1 + SLACK)
    obs = Observations(np.vstack([x_train, pool[b]]), np.zeros((len(x_train) + 1, 0)), np.vstack([m_train, m_base_1m]),
                       np.ones(len(x_train) + 1), np.zeros((0, len(domains))), np.zeros((0, 0)))
    free = Problem(tuple(domains), SimplexConstraints.unconstrained(len(domains)), (f"loss/{domain}", "others_mean"),
                   np.array([1.0, 0.0]), prior=natural)
    constrained = Problem(free.domains, free.constraints, free.metric_names, free.metric_weights, prior=natural,
                          outcome_constraints=(OutcomeConstraint(metric=1, upper=True, baseline=pool[b], slack=SLACK),))
    feasible60 = m60[:, 1] <= bound60
    true_front = m60[non_dominated(m60)]
    ref = m60.max(axis=0)
    out: dict[str, Any] = {
        "domain": domain, "baseline_index": b, "baseline_l1_to_natural": float(np.abs(pool[b] - natural).sum()),
        "bound_60m": float(bound60), "n_feasible_60m": int(feasible60.sum()),
        "oracle_feasible_60m": float(m60[feasible60, 0].min()), "oracle_free_60m": float(m60[:, 0].min()),
        "hv_all_256": hypervolume(m60, ref), "true_front_size": len(true_front), "methods": {},
    }
    for name, make in METHODS.items():
        t0 = time.perf_counter()
        res: dict[str, Any] = {}
        for label, problem in (("unconstrained", free), ("constrained", constrained)):
            ctx = SearchContext(problem, obs, np.random.default_rng(seed), HINTS[name])
            try:
                rec = make().recommend(ctx, pool)
            except Exception as exc:  # noqa: BLE001 - recorded in the results, e.g. no feasible mixture
                res[label] = {"error": f"{type(exc).__name__}: {exc}"}
                continue
            i = int(np.argmin(np.abs(pool - rec.mixture).sum(axis=1)))
            entry: dict[str, Any] = {"index": i, "predicted": rec.predicted.value, "objective_60m": float(m60[i, 0]),
                     "others_60m": float(m60[i, 1]), "meets_at_60m": bool(m60[i, 1] <= bound60)}
            if rec.outcomes:
                o = rec.outcomes[0]
                entry.update(predicted_others=o.value, predicted_bound=o.bound, probability=o.probability,
                             interval=[o.lower, o.upper])
            if feasible60[i]:
                entry["rank_among_feasible_60m"] = int((m60[feasible60, 0] < m60[i, 0]).sum()) + 1
            res[label] = entry
        ctx = SearchContext(constrained, obs, np.random.default_rng(seed), HINTS[name])
        fitted = make().fit(ctx)
        front = predicted_front(ctx, fitted, pool)
        rows = np.array([int(np.argmin(np.abs(pool - w).sum(axis=1))) for w in front.mixtures])
        k = len(rows)
        hv = hypervolume(m60[rows], ref)
        rng = np.random.default_rng(seed)
        random_hv = np.array([hypervolume(m60[rng.choice(len(pool), k, replace=False)], ref)
                              for _ in range(RANDOM_DRAWS)])
        res["front"] = {"size": k, "hv_measured_60m": hv, "hv_random_mean": float(random_hv.mean()),
                        "hv_random_p90": float(np.quantile(random_hv, 0.9)),
                        "random_beaten_share": float((random_hv < hv).mean()),
                        "hv_share_of_all_256": hv / out["hv_all_256"]}
        res["seconds"] = time.perf_counter() - t0
        out["methods"][name] = res
    return out


def table(results: list[dict[str, Any]]) -> str:
    lines = ["| objective | method | unconstrained 60M: obj / others (meets?) | constrained 60M: obj / others (meets?) "
             "| P(feasible) | rank among feasible | oracle feasible obj | front HV / random mean (beats random) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        for name, m in r["methods"].items():
            def cell(e: dict[str, Any]) -> str:
                if "error" in e:
                    return e["error"][:60]
                return f"{e['objective_60m']:.4f} / {e['others_60m']:.4f} ({'yes' if e['meets_at_60m'] else 'no'})"

            c = m["constrained"]
            f = m["front"]
            lines.append(
                f"| {r['domain']} (bound {r['bound_60m']:.4f}) | {name} | {cell(m['unconstrained'])} | {cell(c)} "
                f"| {c.get('probability', float('nan')):.2f} | {c.get('rank_among_feasible_60m', '-')} / "
                f"{r['n_feasible_60m']} | {r['oracle_feasible_60m']:.4f} | {f['hv_measured_60m']:.4f} / "
                f"{f['hv_random_mean']:.4f} ({100 * f['random_beaten_share']:.0f}%, k={f['size']}) |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domains", nargs="+", default=["github", "pile_cc", "arxiv", "wikipedia_en"])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    t0 = time.perf_counter()
    results = [run_domain(d, args.data, args.seed) for d in args.domains]
    doc = {"machine": f"{platform.machine()} {os.cpu_count()} CPUs", "load_average": os.getloadavg(),
           "wall_seconds": time.perf_counter() - t0, "slack": SLACK, "results": results}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(doc, indent=1) + "\n")
    print(table(results))


if __name__ == "__main__":
    main()
