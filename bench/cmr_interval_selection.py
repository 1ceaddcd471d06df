"""Which 90% interval for the critical mixture ratio covers honestly? Candidates from one residual bootstrap.

The CMR law has four parameters per group, so 8-12 runs leave 4-8 residual degrees of freedom, and the
plain percentile interval of a residual bootstrap covered 77-87% for a nominal 90% (bench/RESULTS.md).
On the designs and noise levels of ``bench/cmr_synthetic.py``, each draw's residual bootstrap
(:func:`bootstrap`: refits from the point estimate on the fitted losses plus resampled leverage-adjusted
residuals, each refit with its delta-method standard error) yields every candidate at once:

* ``percentile``: the 5th and 95th percentiles of the refits' CMRs;
* ``t-percentile``: the percentile interval's arms around the point stretched by ``t(dof) / z``, the
  ratio of the Student and normal 95% quantiles for the residual degrees of freedom;
* ``bootstrap-t``: the studentized bootstrap, ``point - q(t*) * se`` with ``t* = (refit - point) / se*``;
* ``delta-t``: ``point -/+ t(dof) * se`` from the delta method alone (no bootstrap; the one chosen, in
  :func:`mixing.continual.critical_mixture_ratio`);
* ``delta-z``: the same with the normal quantile (a reference).

Coverage is of the true CMR and of the true domain loss there. Choose on one set of seeds, report the
chosen interval on another (``bench/cmr_synthetic.py --seed-offset``).

    python bench/cmr_interval_selection.py [--draws 100] [--bootstrap 200] [--seed-offset 0]

Prints a Markdown table and writes ``bench/results/cmr_interval_selection.json``.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from bench.cmr_synthetic import BASE, DESIGNS, TARGET, TOL
from mixing.continual import answer_at, delta_se, design
from mixing.errors import MixingError
from mixing.laws.cmr import N_PARAMS, CMRLaw
from mixing.simplex import FloatArray
from tests.mixing.laws.synthetic import cmr_losses, cmr_runs, true_cmr

RESULTS = Path(__file__).resolve().parent / "results" / "cmr_interval_selection.json"
LEVEL = 0.9
METHODS = ("percentile", "t-percentile", "bootstrap-t", "delta-t", "delta-z")


@dataclass(frozen=True)
class Bootstrap:
    """The answer's three quantities (CMR, general and domain loss there) at the fit and in each refit,
    each with its delta-method standard error."""

    point: FloatArray  # (3,)
    point_se: FloatArray  # (3,)
    draws: FloatArray  # (m, 3): the refits that succeeded
    draw_se: FloatArray  # (m, 3)
    dof: int  # runs minus the four parameters of a group


def bootstrap(fitted: CMRLaw, x: FloatArray, t: FloatArray, y: FloatArray, n_bootstrap: int,
              seed: int) -> Bootstrap:
    """Residual bootstrap of the answer at the bench's limit and target around the law ``fitted`` to ``(x, t, y)``."""
    pred = fitted.predict(x, t)
    # Residuals divided by sqrt(1 - leverage), then centred (Davison & Hinkley's modified residuals).
    resid = (y - pred) / np.sqrt(np.clip(1.0 - fitted.leverage(x, t), 1e-3, None))
    resid = resid - resid.mean(axis=0)
    rng = np.random.default_rng(seed)
    start = copy.deepcopy(fitted).set_params(warm_start=True)
    draws, ses = [], []
    for _ in range(n_bootstrap):
        sample = pred + np.take_along_axis(resid, rng.integers(0, len(y), size=(len(y), 2)), axis=0)
        warm = copy.deepcopy(start)  # each refit starts from the point estimate
        try:
            warm.fit(x, t, sample)
        except MixingError:
            continue
        draws.append(answer_at(warm, BASE + TOL, TARGET))
        ses.append(delta_se(warm, x, t, sample, BASE + TOL, TARGET))
    return Bootstrap(point=answer_at(fitted, BASE + TOL, TARGET),
                     point_se=delta_se(fitted, x, t, y, BASE + TOL, TARGET),
                     draws=np.asarray(draws).reshape(-1, 3), draw_se=np.asarray(ses).reshape(-1, 3),
                     dof=len(y) - N_PARAMS)


def intervals(boot: Bootstrap) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each candidate's (lower, upper) ``(3,)`` for the three quantities of ``boot``."""
    z = stats.norm.ppf(0.5 + LEVEL / 2)
    t = stats.t.ppf(0.5 + LEVEL / 2, boot.dof)
    tail = 50.0 * (1.0 - LEVEL)
    lo, hi = np.percentile(boot.draws, [tail, 100.0 - tail], axis=0)
    p, se = boot.point, boot.point_se
    with np.errstate(divide="ignore", invalid="ignore"):
        studentized = (boot.draws - p) / boot.draw_se
    t_lo = np.array([np.percentile(c[np.isfinite(c)], tail) if np.isfinite(c).any() else 0.0
                     for c in studentized.T])
    t_hi = np.array([np.percentile(c[np.isfinite(c)], 100.0 - tail) if np.isfinite(c).any() else 0.0
                     for c in studentized.T])
    return {
        "percentile": (lo, hi),
        "t-percentile": (p - (p - lo) * t / z, p + (hi - p) * t / z),
        "bootstrap-t": (p - t_hi * se, p - t_lo * se),
        "delta-t": (p - t * se, p + t * se),
        "delta-z": (p - z * se, p + z * se),
    }


def one_design(ratios: tuple[float, ...], tokens: tuple[float, ...], noise: float, seeds: range,
               n_bootstrap: int) -> dict[str, Any]:
    truth_r = true_cmr(BASE + TOL, TARGET)
    truth_d = float(cmr_losses(np.array([truth_r]), np.array([TARGET]))[0, 1])
    hits: dict[str, list[bool]] = {m: [] for m in METHODS}
    hits_domain: dict[str, list[bool]] = {m: [] for m in METHODS}
    widths: dict[str, list[float]] = {m: [] for m in METHODS}
    t0 = time.perf_counter()
    for seed in seeds:
        x, t, y = design(*cmr_runs(noise, seed, ratios=ratios, tokens=tokens))
        try:
            law = CMRLaw().fit(x, t, y)
        except MixingError:
            continue
        for m, (lo, hi) in intervals(bootstrap(law, x, t, y, n_bootstrap, seed)).items():
            r_lo, r_hi = np.clip(lo[0], 0.0, 1.0), np.clip(hi[0], 0.0, 1.0)
            hits[m].append(r_lo <= truth_r <= r_hi)
            widths[m].append(r_hi - r_lo)
            hits_domain[m].append(lo[2] <= truth_d <= hi[2])
    return {
        "n_runs": len(ratios) * len(tokens), "noise": noise, "draws": len(hits["percentile"]),
        "coverage": {m: float(np.mean(v)) for m, v in hits.items()},
        "coverage_domain": {m: float(np.mean(v)) for m, v in hits_domain.items()},
        "width_median": {m: float(np.median(v)) for m, v in widths.items()},
        "seconds": time.perf_counter() - t0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=100)
    parser.add_argument("--bootstrap", type=int, default=200)
    parser.add_argument("--seed-offset", type=int, default=0)
    parser.add_argument("--noise", default="0.005,0.02,0.05")
    args = parser.parse_args()
    seeds = range(args.seed_offset, args.seed_offset + args.draws)
    load_start = os.getloadavg()
    rows = []
    for noise in (float(n) for n in args.noise.split(",")):
        for name, (ratios, tokens) in DESIGNS.items():
            rows.append({"design": name, **one_design(ratios, tokens, noise, seeds, args.bootstrap)})
            print(f"{name} noise {noise:g}: " + ", ".join(
                f"{m} {rows[-1]['coverage'][m]:.0%}" for m in METHODS), flush=True)
    out = {"machine": platform.processor() or platform.machine(), "load_average_start": load_start,
           "load_average_end": os.getloadavg(), "seeds": [seeds.start, seeds.stop], "bootstrap": args.bootstrap,
           "level": LEVEL, "rows": rows}
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2))
    print("| design | noise | " + " | ".join(f"{m} coverage (domain) / width" for m in METHODS) + " |")
    print("|---|---|" + "---|" * len(METHODS))
    for r in rows:
        cells = [f"{r['coverage'][m]:.0%} ({r['coverage_domain'][m]:.0%}) / {r['width_median'][m]:.3f}"
                 for m in METHODS]
        print(f"| {r['design']} | {r['noise']:g} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
