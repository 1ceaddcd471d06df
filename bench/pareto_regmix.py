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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mixing.methods.base import SearchContext
from mixing.methods.law import LawMethod
from mixing.methods.regmix import RegMixMethod
from mixing.pareto import hypervolume, non_dominated, predicted_front
from mixing.problem import FidelitySpace, Observations, OutcomeConstraint, Problem
from mixing.simplex import FloatArray, SimplexConstraints
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


@dataclass(frozen=True)
class Task:
    """One objective domain's constrained task on the RegMix runs, as arrays.

    Metrics are two columns per run, (the domain's loss, the mean of the others): ``train`` ``(512, 2)``
    at 1M for the mixtures ``x_train`` ``(512, d)``; ``test_1m`` and ``test_60m`` ``(256, 2)`` for the
    mixtures ``pool`` ``(256, d)`` trained at both scales. ``baseline`` is the row of ``pool`` nearest the
    natural mixture.
    """

    domain: str
    domains: tuple[str, ...]
    natural: FloatArray
    x_train: FloatArray
    pool: FloatArray
    train: FloatArray
    test_1m: FloatArray
    test_60m: FloatArray
    baseline: int

    @property
    def bound_60m(self) -> float:
        """The constraint's bound checked on the measured 60M losses: the baseline's others' mean + 1%."""
        return float(self.test_60m[self.baseline, 1] * (1 + SLACK))

    @property
    def feasible_60m(self) -> np.ndarray:
        """Mask ``(256,)`` of the pool mixtures whose measured 60M values meet the bound."""
        return self.test_60m[:, 1] <= self.bound_60m

    def problem(self, constrained: bool, fidelity: FidelitySpace | None = None) -> Problem:
        """Minimise the domain's loss (metric 0); ``constrained``: others' mean (metric 1) <= the
        baseline's + 1%, the baseline named by its mixture (its runs resolve the bound)."""
        cons = (OutcomeConstraint(metric=1, upper=True, baseline=self.pool[self.baseline], slack=SLACK),)
        return Problem(self.domains, SimplexConstraints.unconstrained(len(self.domains)),
                       (f"loss/{self.domain}", "others_mean"), np.array([1.0, 0.0]), prior=self.natural,
                       fidelity=fidelity or FidelitySpace(), outcome_constraints=cons if constrained else ())

    def scored(self, mixture: FloatArray) -> dict[str, Any]:
        """A recommended mixture checked at 60M: its pool row, measured values, whether it meets the bound,
        and its rank among the measured-feasible mixtures when it is one of them."""
        i = int(np.argmin(np.abs(self.pool - mixture).sum(axis=1)))
        m60, feasible = self.test_60m, self.feasible_60m
        entry: dict[str, Any] = {"index": i, "objective_60m": float(m60[i, 0]), "others_60m": float(m60[i, 1]),
                                 "meets_at_60m": bool(feasible[i])}
        if feasible[i]:
            entry["rank_among_feasible_60m"] = int((m60[feasible, 0] < m60[i, 0]).sum()) + 1
        return entry

    def summary(self) -> dict[str, Any]:
        """The task's bound, baseline and oracles (best measured 60M objective, feasible and not)."""
        m60, feasible = self.test_60m, self.feasible_60m
        return {"domain": self.domain, "baseline_index": self.baseline,
                "baseline_l1_to_natural": float(np.abs(self.pool[self.baseline] - self.natural).sum()),
                "bound_60m": self.bound_60m, "n_feasible_60m": int(feasible.sum()),
                "oracle_feasible_60m": float(m60[feasible, 0].min()), "oracle_free_60m": float(m60[:, 0].min())}


def load_task(domain: str, data: Path) -> Task:
    """The task for objective ``domain`` from the RegMix tables in ``data``."""
    train, test1, test60 = (load_split(data, s) for s in ("train_1m", "test_1m", "test_60m"))
    domains = tuple(train.mixtures.columns)
    j = list(train.losses.columns).index(f"loss/{domain}")
    x_train = train.mixtures.to_numpy(dtype=np.float64)
    pool = test60.mixtures.to_numpy(dtype=np.float64)
    natural = np.array([PILE_TOKEN_SHARE[d] for d in domains])
    natural /= natural.sum()
    pool /= pool.sum(axis=1, keepdims=True)
    m_train, m_test1, m_test60 = (two_metrics(s.losses.to_numpy(dtype=np.float64), j) for s in (train, test1, test60))
    return Task(domain, domains, natural, x_train / x_train.sum(axis=1, keepdims=True), pool, m_train, m_test1,
                m_test60, baseline=int(np.argmin(np.abs(pool - natural).sum(axis=1))))


def run_domain(domain: str, data: Path, seed: int) -> dict[str, Any]:
    task = load_task(domain, data)
    pool, b, m60 = task.pool, task.baseline, task.test_60m
    obs = Observations(np.vstack([task.x_train, pool[b]]), np.zeros((len(task.x_train) + 1, 0)),
                       np.vstack([task.train, task.test_1m[b]]), np.ones(len(task.x_train) + 1),
                       np.zeros((0, len(task.domains))), np.zeros((0, 0)))
    free, constrained = task.problem(False), task.problem(True)
    true_front = m60[non_dominated(m60)]
    ref = m60.max(axis=0)
    out: dict[str, Any] = {**task.summary(), "hv_all_256": hypervolume(m60, ref),
                           "true_front_size": len(true_front), "methods": {}}
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
            entry = {"predicted": rec.predicted.value, **task.scored(rec.mixture)}
            if rec.outcomes:
                o = rec.outcomes[0]
                entry.update(predicted_others=o.value, predicted_bound=o.bound, probability=o.probability,
                             interval=[o.lower, o.upper])
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
