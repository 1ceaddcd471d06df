"""Replay family on RegMix runs whose cheap level agrees with the target to a controlled degree.

Each pool is built from the 256 RegMix test mixtures:

* target level (cost ``--cost-ratio``, default 20): the real 60M-parameter Pile-CC loss, for a random quarter of
  the mixtures (64, the same quarter for every pool and seed: nested as real searches are);
* cheap level (cost 1), every mixture: ``mean + sd * z`` with ``z = cos(t) z(pile_cc 1M) + sin(t) z(github 1M)``
  standardised, ``mean, sd`` those of the real 1M Pile-CC loss. GitHub's 1M loss is the domain loss least
  rank-correlated with the target (Spearman -0.31), a structured, smooth proxy that misleads -- not noise a
  GP would average away. ``t`` is chosen so that the Spearman correlation between the cheap objective and
  the target, over the 64 target mixtures, is closest to the requested value; the measured value is printed
  and stored.

A replay is scored like ``mixopt replay``: after every batch of 4 runs each method recommends one of the
64 target mixtures (its own recommendation rule), and the cost is recorded when that recommendation's
*true* target loss first comes within 1% of the target range of the pool's best (cost to 1%) and from when
every later recommendation stays within it (stays in 1% from). A seed that never gets there has cost
``inf`` (``null`` in the JSON).

Methods (all in this process, through the same :mod:`mixing.methods` objects the service uses):

* ``bo``: 8 space-filling cheap runs (two batches), then multi-fidelity BO choosing mixture and level from the
  pool, batches of 4 (its own early target runs included: ``BayesOptMethod.target_design``). The 34-run
  design of the ``auto`` policy for 17 domains was measured too (``bench/RESULTS.md``);
* ``single-fidelity-bo``: 8 design runs at the target, then BO on target runs only;
* ``regmix``: the whole budget on cheap runs (space-filling order), recommending the target mixture that
  RegMix's LightGBM regression on the cheap runs ranks best (it never trains at the target);
* ``random``: random target runs, recommending the best measured;
* ``optuna-tpe``, ``optuna-gp``: Optuna's TPE and GP samplers as a practitioner would use them on this pool,
  and ``mf-mes`` (with ``mf-mes-best-observed`` scored from the same runs): ADMIRE-BayesOpt's multi-fidelity
  max-value entropy search; see :mod:`bench.mf_peers`. Optuna's run only if ``optuna`` is importable.

Run: ``python bench/mf_family.py --seeds 10`` (writes ``bench/results/mf_family.json`` and
``bench/results/mf_family.png``); ``--plot-only`` redraws the plot from the JSON.

A real pool replays the same way: ``--pool-csv PATH`` (with ``--pool-domains``) replaces the RegMix family by
one table of finished runs, such as ``python -m examples.tiny_lm.pool``'s real tiny-LM runs at two sizes
(:func:`load_csv_pool`); its correlation is the one measured between its levels, its cost ratio the one its
``cost`` column gives.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import mf_peers  # noqa: E402
from mixing.errors import FitError, NotEnoughDataError  # noqa: E402
from mixing.laws.regmix import RegMixLightGBM  # noqa: E402
from mixing.methods.base import SearchContext  # noqa: E402
from mixing.methods.bo import BayesOptMethod, SingleFidelityBayesOptMethod  # noqa: E402
from mixing.methods.design import DesignMethod  # noqa: E402
from mixing.problem import Candidates, FidelitySpace, Observations, Problem  # noqa: E402
from mixing.replay_pool import ReplayPool  # noqa: E402
from mixing.simplex import SimplexConstraints  # noqa: E402
from runtables.regmix import PILE_TOKEN_SHARE, load_split  # noqa: E402
from service.jsonable import to_jsonable  # noqa: E402

DATA = Path(os.environ.get("MIXOPT_REGMIX_DATA", Path(__file__).resolve().parents[2] / "shared/data/regmix"))
OUT = Path(__file__).resolve().parent / "results"
LOW, HIGH = 1e6, 6e7
BATCH = 4
BO_DESIGN, SF_DESIGN = 8, 8
TOLERANCE = 0.01
OTHER = "loss/github"
METHODS = ("bo", "single-fidelity-bo", "regmix", "random", "optuna-tpe", "optuna-gp", "mf-mes")
#: Methods scored from another method's runs (by another recommendation rule), not run by themselves.
SCORED_ALONGSIDE = ("mf-mes-best-observed",)


@dataclass(frozen=True)
class FamilyPool:
    """One pool of the family: the replay table, the problem it poses and what was measured about it.

    ``low`` and ``high`` are the cheap and the target level's fidelity values; ``requested`` is the correlation
    asked for (for a real pool, the one measured); ``theta`` is the blend angle of a RegMix pool (None for a
    real one).
    """

    problem: Problem
    pool: ReplayPool
    requested: float
    spearman: float
    theta: float | None
    low: float
    high: float
    cost_ratio: float
    source: str

    def describe(self) -> dict:
        """What the result JSON stores about the pool."""
        return {"requested": self.requested, "spearman": self.spearman, "theta": self.theta,
                "source": self.source, "cost_ratio": self.cost_ratio,
                "target_mixtures": int((self.pool.fidelities[:, 0] == self.high).sum())}


def two_level_pool(mixtures: np.ndarray, level: np.ndarray, objective: np.ndarray, cost: np.ndarray,
                   problem: Problem, requested: float | None, theta: float | None, source: str) -> FamilyPool:
    """A :class:`FamilyPool` from its rows: mixtures ``(n, d)``, fidelity ``level (n,)`` (the largest value is the
    target), objective and cost ``(n,)``; the Spearman correlation is measured on the mixtures at both levels."""
    low, high = float(level.min()), float(level.max())
    is_high = level == high
    cheap_by_mixture = {tuple(m): y for m, y, h in zip(mixtures, objective, is_high, strict=True) if not h}
    shared = [(cheap_by_mixture[tuple(m)], y) for m, y, h in zip(mixtures, objective, is_high, strict=True)
              if h and tuple(m) in cheap_by_mixture]
    measured = float(spearmanr(*zip(*shared, strict=True))[0])
    pool = ReplayPool(mixtures, level[:, None].astype(np.float64), objective, cost)
    ratio = float(np.median(cost[is_high]) / np.median(cost[~is_high]))
    return FamilyPool(problem, pool, measured if requested is None else requested, measured, theta, low, high,
                      ratio, source)


@functools.cache
def build_pool(rho: float, cost_ratio: float, pool_seed: int = 0, low_fidelity: float = LOW) -> FamilyPool:
    """The pool whose cheap level has Spearman correlation closest to ``rho`` with the target; its cheap level
    is at ``low_fidelity`` params (the target at :data:`HIGH`), which is all a cost model knows of the cost
    ratio before it has seen a target run's cost."""
    low, high = load_split(DATA, "test_1m"), load_split(DATA, "test_60m")
    domains = tuple(low.mixtures.columns)
    w = low.mixtures.to_numpy(dtype=np.float64)
    w = w / w.sum(axis=1, keepdims=True)
    target = high.losses["loss/pile_cc"].to_numpy(dtype=np.float64)
    own = low.losses["loss/pile_cc"].to_numpy(dtype=np.float64)
    other = low.losses[OTHER].to_numpy(dtype=np.float64)
    at_target = np.sort(np.random.default_rng(pool_seed).choice(len(w), len(w) // 4, replace=False))

    def standard(v: np.ndarray) -> np.ndarray:
        return (v - v.mean()) / v.std()

    def cheap(t: float) -> np.ndarray:
        return own.mean() + own.std() * standard(math.cos(t) * standard(own) + math.sin(t) * standard(other))

    thetas = np.linspace(0.0, math.pi, 1801)
    rhos = np.array([spearmanr(cheap(t)[at_target], target[at_target])[0] for t in thetas])
    theta = float(thetas[int(np.argmin(np.abs(rhos - rho)))])
    n_t = len(at_target)
    problem = _problem(domains, low_fidelity, HIGH, np.array([PILE_TOKEN_SHARE[d] for d in domains]))
    return two_level_pool(np.concatenate([w, w[at_target]]), np.concatenate([np.full(len(w), low_fidelity),
                                                                            np.full(n_t, HIGH)]),
                          np.concatenate([cheap(theta), target[at_target]]),
                          np.concatenate([np.ones(len(w)), np.full(n_t, cost_ratio)]), problem, rho, theta, "regmix")


@functools.cache
def load_csv_pool(path: Path, domains: tuple[str, ...], fidelity: str = "params") -> FamilyPool:
    """A real two-level pool from a CSV of finished runs, one row per run.

    Columns: one per domain in ``domains`` (weights, normalised here), ``fidelity`` (the level's value on the
    fidelity axis methods see; the larger of its two values is the target), ``cost`` (any unit; rescaled so the
    cheap level's median run costs 1, as in the RegMix family) and ``objective`` (lower is better).
    ``python -m examples.tiny_lm.pool`` writes one. ``fidelity="cost"`` gives the methods an axis to which cost
    is proportional, so a cost model extrapolating from the cheap level alone forecasts the target's cost right.
    """
    import pandas as pd

    table = pd.read_csv(path)
    missing = [c for c in (*domains, fidelity, "cost", "objective") if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: no column {missing[0]!r}")
    level = table[fidelity].to_numpy(dtype=np.float64)
    if len(np.unique(level)) != 2:
        raise ValueError(f"{path}: {fidelity!r} must take exactly two values (the cheap level and the target)")
    w = table[list(domains)].to_numpy(dtype=np.float64)
    w = w / w.sum(axis=1, keepdims=True)
    cost = table["cost"].to_numpy(dtype=np.float64)
    cost = cost / np.median(cost[level == level.min()])
    problem = _problem(domains, float(level.min()), float(level.max()), None)
    return two_level_pool(w, level, table["objective"].to_numpy(dtype=np.float64), cost, problem, None, None,
                          f"{path} (fidelity: {fidelity})")


def _problem(domains: tuple[str, ...], low: float, high: float, prior: np.ndarray | None) -> Problem:
    """One objective to minimise over the unconstrained simplex, one fidelity axis from ``low`` to ``high``."""
    return Problem(
        domains,
        SimplexConstraints.unconstrained(len(domains)),
        ("objective",),
        np.array([1.0]),
        prior=prior,
        fidelity=FidelitySpace(("params",), np.array([low]), np.array([high]), np.array([high])),
    )


@dataclass
class Trace:
    """One replay: the recommendation's true target loss after each batch, and the costs derived from it."""

    method: str
    rho: float
    seed: int
    costs: list[float] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    runs_low: int = 0
    runs_high: int = 0
    cost_to_within: float = math.inf
    cost_to_stay_within: float = math.inf
    final_regret: float = math.nan
    wall_s: float = 0.0
    #: ``bo`` only: the cheap level's measured trust at each suggestion (None before it is measured).
    trust: list[float | None] = field(default_factory=list)


class Replay:
    """The state of one replay: runs taken so far, and the scoring of recommendations."""

    def __init__(self, fp: FamilyPool, method: str, seed: int, budget: float) -> None:
        self.fp, self.budget = fp, budget
        pool = fp.pool
        self.is_high = pool.fidelities[:, 0] == fp.high
        self.high_rows = np.flatnonzero(self.is_high)
        self.target_mixtures = pool.mixtures[self.high_rows]
        truth = pool.objective[self.high_rows]
        self.best, self.span = float(truth.min()), float(np.ptp(truth))
        self.rows: list[int] = []
        self.rng = np.random.default_rng(seed)
        self.trace = Trace(method, fp.requested, seed)

    def observations(self) -> Observations:
        p, r = self.fp.pool, self.rows
        d = p.mixtures.shape[1]
        return Observations(
            p.mixtures[r].reshape(-1, d),
            p.fidelities[r].reshape(-1, 1),
            p.objective[r][:, None],
            p.cost[r],
            np.zeros((0, d)),
            np.zeros((0, 1)),
        )

    def context(self, hints: dict) -> SearchContext:
        return SearchContext(self.fp.problem, self.observations(), np.random.default_rng(self.rng.integers(2**31)),
                             hints)

    def spent(self) -> float:
        return float(self.fp.pool.cost[self.rows].sum())

    def free(self, rows: np.ndarray) -> np.ndarray:
        return np.setdiff1d(rows, self.rows)

    def take(self, rows: list[int]) -> None:
        self.rows.extend(rows)

    def take_proposals(self, proposals: list) -> None:
        self.rows.extend(self.fp.pool.answer(p.mixture, p.fidelity)[0] for p in proposals)

    def score(self, mixture: np.ndarray) -> None:
        """Record the true target loss of the recommended target mixture at the current spend."""
        i = int(np.argmin(np.abs(self.target_mixtures - mixture).sum(axis=1)))
        value = float(self.fp.pool.objective[self.high_rows[i]])
        t = self.trace
        t.costs.append(self.spent())
        t.values.append(value)
        if math.isinf(t.cost_to_within) and value - self.best <= TOLERANCE * self.span:
            t.cost_to_within = self.spent()

    def best_measured(self) -> np.ndarray | None:
        high = [r for r in self.rows if self.is_high[r]]
        if not high:
            return None
        return self.fp.pool.mixtures[min(high, key=lambda r: self.fp.pool.objective[r])]

    def finish(self, t0: float) -> Trace:
        t = self.trace
        inside = [v - self.best <= TOLERANCE * self.span for v in t.values]
        start = len(inside) - next((i for i, ok in enumerate(reversed(inside)) if not ok), len(inside))
        if start < len(inside):
            t.cost_to_stay_within = t.costs[start]
        t.final_regret = (t.values[-1] - self.best) / self.span if t.values else math.nan
        t.runs_high = int(self.is_high[self.rows].sum())
        t.runs_low = len(self.rows) - t.runs_high
        t.wall_s = time.perf_counter() - t0
        return t


def _candidates(r: Replay, rows: np.ndarray) -> Candidates:
    p = r.fp.pool
    return Candidates(p.mixtures[rows], p.fidelities[rows])


def run_bo(r: Replay, single: bool) -> None:
    method = SingleFidelityBayesOptMethod() if single else BayesOptMethod()
    level = r.fp.high if single else r.fp.low
    n0 = SF_DESIGN if single else BO_DESIGN
    rows = r.high_rows if single else np.arange(len(r.fp.pool.objective))
    level_rows = np.flatnonzero(r.fp.pool.fidelities[:, 0] == level)
    hints: dict = {}
    while r.spent() < r.budget:
        free = r.free(rows)
        if len(free) == 0:
            break
        ctx = r.context(hints)
        if len(r.rows) < n0:
            design_rows = r.free(level_rows)
            props = DesignMethod().suggest(ctx, min(BATCH, n0 - len(r.rows)), np.array([level]),
                                           _candidates(r, design_rows))
        else:
            props = method.suggest(ctx, BATCH, None, _candidates(r, free))
            hints = {"bo_state": props[0].details["bo_state"]} if props else hints
            trust = props[0].details.get("level_trust") if props else None
            r.trace.trust.append(round(trust[0]["spearman"], 3) if trust else None)
        if not props:
            break
        r.take_proposals(props)
        ctx = r.context(hints)
        try:
            rec = method.recommend(ctx, r.target_mixtures).mixture
        except (NotEnoughDataError, FitError):  # too few runs for a model: the best measured target run
            rec = r.best_measured()
        if rec is not None:
            r.score(rec)


def run_regmix(r: Replay) -> None:
    low_rows = np.flatnonzero(~r.is_high)
    while r.spent() < r.budget:
        free = r.free(low_rows)
        if len(free) == 0:
            break
        ctx = r.context({})
        props = DesignMethod().suggest(ctx, BATCH, np.array([r.fp.low]), _candidates(r, free))
        r.take_proposals(props)
        if len(r.rows) >= 8:
            p = r.fp.pool
            law = RegMixLightGBM(seed=int(r.rng.integers(2**31))).fit(p.mixtures[r.rows], None,
                                                                      p.objective[r.rows][:, None])
            r.score(r.target_mixtures[int(np.argmin(law.predict(r.target_mixtures)[:, 0]))])


def run_random(r: Replay) -> None:
    order = r.rng.permutation(r.high_rows)
    for start in range(0, len(order), BATCH):
        if r.spent() >= r.budget:
            break
        r.take(order[start:start + BATCH].tolist())
        r.score(r.best_measured())


def run_mfmes(r: Replay) -> list[Replay]:
    """MF-MES scored by its own rule, with a twin replay on the same runs scoring the best measured."""
    twin = Replay(r.fp, "mf-mes-best-observed", r.trace.seed, r.budget)
    twin.rows = r.rows
    mf_peers.run_mfmes(r, twin)
    return [twin]


#: Each runner spends one replay's budget; a runner that scores more than one rule on the same runs returns
#: the other rules' replays (scored under their own method names).
RUNNERS: dict[str, Callable[[Replay], list[Replay] | None]] = {
    "bo": lambda r: run_bo(r, single=False),
    "single-fidelity-bo": lambda r: run_bo(r, single=True),
    "regmix": run_regmix,
    "random": run_random,
    "optuna-tpe": lambda r: mf_peers.run_optuna(r, "tpe"),
    "optuna-gp": lambda r: mf_peers.run_optuna(r, "gp"),
    "mf-mes": run_mfmes,
}


@dataclass(frozen=True)
class PoolSpec:
    """How a worker process rebuilds a pool (cached there): a RegMix pool at ``rho`` and ``cost_ratio``, or
    the real pool in ``csv`` over ``domains`` with ``fidelity`` as its fidelity column."""

    rho: float = math.nan
    cost_ratio: float = math.nan
    csv: Path | None = None
    domains: tuple[str, ...] = ()
    fidelity: str = "params"
    low_fidelity: float = LOW
    #: Tell the methods what a run at each level costs (``Problem.declared_costs``), as a team that has timed
    #: one of each would; otherwise they learn it from the runs they make.
    declare_costs: bool = False

    def build(self) -> FamilyPool:
        if self.csv:
            fp = load_csv_pool(self.csv, self.domains, self.fidelity)
        else:
            fp = build_pool(self.rho, self.cost_ratio, low_fidelity=self.low_fidelity)
        return with_declared_costs(fp) if self.declare_costs else fp


def with_declared_costs(fp: FamilyPool) -> FamilyPool:
    """``fp`` whose problem declares each level's median run cost."""
    levels = fp.pool.fidelities[:, 0]
    declared = np.array([[v, float(np.median(fp.pool.cost[levels == v]))] for v in (fp.low, fp.high)])
    return dataclasses.replace(fp, problem=dataclasses.replace(fp.problem, declared_costs=declared))


def one(job: tuple[PoolSpec, str, int, float]) -> list[dict]:
    spec, method, seed, budget = job
    r = Replay(spec.build(), method, seed, budget)
    t0 = time.perf_counter()
    others = RUNNERS[method](r) or []
    return [asdict(x.finish(t0)) for x in (r, *others)]


def summarise(traces: list[dict], pools: dict[float, dict]) -> dict:
    out: dict = {}
    for rho in sorted(pools, reverse=True):
        out[str(rho)] = {"pool": pools[rho], "methods": {}}
        for method in (*METHODS, *SCORED_ALONGSIDE):
            ts = [t for t in traces if t["rho"] == rho and t["method"] == method]
            if not ts:
                continue
            reach = [t["cost_to_within"] for t in ts]
            stay = [t["cost_to_stay_within"] for t in ts]
            out[str(rho)]["methods"][method] = {
                "seeds": len(ts),
                "median_cost_to_within_1pct": float(np.median(reach)),
                "reached": int(np.isfinite(reach).sum()),
                "median_cost_to_stay_within_1pct": float(np.median(stay)),
                "stayed": int(np.isfinite(stay).sum()),
                "median_final_regret": float(np.nanmedian([t["final_regret"] for t in ts])),
                "median_runs_low": float(np.median([t["runs_low"] for t in ts])),
                "median_runs_high": float(np.median([t["runs_high"] for t in ts])),
                "median_wall_s": float(np.median([t["wall_s"] for t in ts])),
            }
    return out


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    budget = result["budget"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.3))
    for ax, key, title in ((axes[0], "median_cost_to_within_1pct", "cost to 1%"),
                           (axes[1], "median_cost_to_stay_within_1pct", "stays in 1% from")):
        for method in (*METHODS, *SCORED_ALONGSIDE):
            xs, ys = [], []
            for entry in result["summary"].values():
                m = entry["methods"].get(method)
                if m is not None:
                    xs.append(entry["pool"]["spearman"])
                    never = m[key] is None or not math.isfinite(m[key])
                    ys.append(budget * 1.25 if never else m[key])
            if xs:
                order = np.argsort(xs)
                ax.plot(np.array(xs)[order], np.array(ys)[order], marker="o", label=method)
        ax.axhline(budget * 1.25, color="k", ls=":", lw=1, label="never (> budget)")
        ax.set_yscale("log")
        ax.set_xlabel(f"Spearman correlation, cheap level vs target ({result.get('target_mixtures', 64)} target "
                      "mixtures)")
        ax.set_ylabel(f"median {title} (cheap run = 1, target run = {result['cost_ratio']:g})")
        ax.set_title(f"{title}: median over {result['seeds']} seeds, budget {budget:g}")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--rhos", default="0.95,0.8,0.6,0.4,0.2")
    ap.add_argument("--cost-ratio", type=float, default=20.0)
    ap.add_argument("--budget", type=float, default=600.0)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=OUT / "mf_family.json")
    ap.add_argument("--plot-only", action="store_true")
    ap.add_argument("--pool-csv", type=Path, default=None,
                    help="replay this real two-level pool (see load_csv_pool) instead of the RegMix family")
    ap.add_argument("--pool-domains", default="code,man,legal,changelog",
                    help="the mixture columns of --pool-csv")
    ap.add_argument("--pool-fidelity", default="params", help="the fidelity column of --pool-csv")
    ap.add_argument("--declare-costs", action="store_true",
                    help="declare each level's run cost to the methods instead of letting them learn it")
    ap.add_argument("--cheap-params", type=float, default=LOW,
                    help="the RegMix pools' cheap level on the params axis (the target is at 6e7); HIGH / cost ratio "
                         "makes the axis forecast the cost ratio before a target run is seen")
    ap.add_argument("--combine", type=Path, nargs="+", default=None,
                    help="summarise these result files into --out instead of running (a method in a later file "
                         "replaces it in the earlier ones)")
    args = ap.parse_args()
    png = args.out.with_suffix(".png")
    if args.plot_only:
        plot(json.loads(args.out.read_text()), png)
        print(png)
        return
    if args.combine:
        write(combine([json.loads(f.read_text()) for f in args.combine]), args.out)
        return
    methods = args.methods.split(",")
    if any(m.startswith("optuna") for m in methods) and not _has_optuna():
        ap.error("the Optuna peers need Optuna: `pip install -e .[bench]`, or leave optuna-* out of --methods")
    if args.pool_csv:
        specs = [PoolSpec(csv=args.pool_csv, domains=tuple(args.pool_domains.split(",")),
                          fidelity=args.pool_fidelity, declare_costs=args.declare_costs)]
    else:
        specs = [PoolSpec(float(x), args.cost_ratio, low_fidelity=args.cheap_params, declare_costs=args.declare_costs)
                 for x in args.rhos.split(",")]
    pools = {}
    for spec in specs:
        fp = spec.build()
        pools[fp.requested] = fp.describe()
        print(f"pool {fp.source} rho~{fp.requested:.3f}: measured Spearman {fp.spearman:.3f} over "
              f"{pools[fp.requested]['target_mixtures']} target mixtures, cost ratio {fp.cost_ratio:.2f}, "
              f"theta {fp.theta}", flush=True)
    jobs = [(spec, m, s, args.budget) for spec in specs for m in methods
            for s in range(args.first_seed, args.first_seed + args.seeds)]
    traces = []
    with ProcessPoolExecutor(args.workers) as ex:
        for t in (t for ts in ex.map(one, jobs) for t in ts):
            traces.append(t)
            print(f"rho {t['rho']} {t['method']:20} seed {t['seed']}: to 1% {t['cost_to_within']:g}, "
                  f"stays from {t['cost_to_stay_within']:g}, runs {t['runs_low']}+{t['runs_high']}, "
                  f"{t['wall_s']:.0f}s", flush=True)
    summary = summarise(traces, pools)
    first = next(iter(pools.values()))
    result = {"budget": args.budget, "cost_ratio": first["cost_ratio"], "seeds": args.seeds, "batch": BATCH,
              "target_mixtures": first["target_mixtures"], "summary": summary, "traces": traces}
    write(result, args.out)


def combine(results: list[dict]) -> dict:
    """One result from several runs of the same family (same budget and cost ratio); a method's traces on a
    pool in a later run replace its traces on that pool in the earlier ones."""
    traces: list[dict] = []
    for result in results:
        replaced = {(t["method"], t["rho"]) for t in result["traces"]}
        kept = [t for t in traces if (t["method"], t["rho"]) not in replaced]
        traces = kept + [_from_json(t) for t in result["traces"]]
    pools = {float(k): e["pool"] for result in results for k, e in result["summary"].items()}
    first = results[0]
    return {"budget": first["budget"], "cost_ratio": first["cost_ratio"], "seeds": first["seeds"], "batch": BATCH,
            "target_mixtures": first.get("target_mixtures", 64), "summary": summarise(traces, pools),
            "traces": traces}


def _from_json(trace: dict) -> dict:
    """A stored trace with JSON's nulls back as ``inf`` (never reached) and ``nan`` (no regret)."""
    nulls = {"cost_to_within": math.inf, "cost_to_stay_within": math.inf, "final_regret": math.nan}
    return {k: nulls[k] if v is None and k in nulls else v for k, v in trace.items()}


def write(result: dict, out: Path) -> None:
    """Print the summary table, write the JSON and the plot beside it."""
    summary = result["summary"]
    print(f"\n{'rho':>5} {'measured':>8} {'method':20} {'to 1%':>7} {'reached':>7} {'stays':>7} {'stayed':>6}")
    for entry in summary.values():
        for method, m in entry["methods"].items():
            print(f"{entry['pool']['requested']:5.2f} {entry['pool']['spearman']:8.3f} {method:20} "
                  f"{m['median_cost_to_within_1pct']:7g} {m['reached']:7d} "
                  f"{m['median_cost_to_stay_within_1pct']:7g} {m['stayed']:6d}")
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(to_jsonable(result), indent=1, allow_nan=False))
    png = out.with_suffix(".png")
    plot(result, png)
    print(out, png)


def _has_optuna() -> bool:
    try:
        import optuna  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    main()
