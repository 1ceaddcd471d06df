"""How well the CMR law finds the critical mixture ratio on synthetic continual-pretraining runs (issue 18).

Runs are drawn from the law with known parameters (``tests/mixing/laws/synthetic.py``: general losses
3.3-5.9, domain losses 3.0-8.2) plus Gaussian noise, on designs of 8 to 24 runs at several (domain ratio,
tokens); the CMR is asked at 4e9 tokens (5 to 10 times the largest training count) with an absolute
tolerance of 0.02 on the general loss. Per design and noise level, over ``--draws`` seeds:

* the CMR's absolute error against the true CMR (median, 90th percentile, share within 0.05);
* the coverage of the 90% interval (delta method, Student's t), and its median width;
* how far the true general loss at the predicted CMR lies above the tolerance (what a wrong CMR costs);
* the held-out error of the law on the runs at the largest training token count (fitted on the smaller).

    python bench/cmr_synthetic.py [--draws 100] [--seed-offset 0]

Seeds ``seed-offset`` to ``seed-offset + draws - 1``; the interval was chosen on seeds 0-99
(``bench/cmr_interval_selection.py``), so its coverage is measured on others.

Prints a Markdown table and writes ``bench/results/cmr_synthetic.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from mixing.continual import critical_mixture_ratio, validate_cmr_law
from mixing.errors import MixingError
from tests.mixing.laws.synthetic import cmr_losses, cmr_runs, true_cmr

RESULTS = Path(__file__).resolve().parent / "results" / "cmr_synthetic.json"
TARGET, TOL = 4e9, 0.02
BASE = float(cmr_losses(np.zeros(1), np.array([1e8]))[0, 0])
#: name -> (domain ratios, token counts); the runs are their grid.
DESIGNS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "8 runs (4 r x 2 T)": ((0.0, 0.25, 0.5, 0.75), (1e8, 4e8)),
    "12 runs (4 r x 3 T)": ((0.0, 0.2, 0.4, 0.6), (1e8, 2e8, 4e8)),
    "20 runs (5 r x 4 T)": ((0.0, 0.1, 0.25, 0.5, 0.75), (1e8, 2e8, 4e8, 8e8)),
    "24 runs (6 r x 4 T)": ((0.0, 0.1, 0.2, 0.35, 0.5, 0.75), (1e8, 2e8, 4e8, 8e8)),
}


def one_design(ratios: tuple[float, ...], tokens: tuple[float, ...], noise: float, seeds: range) -> dict[str, Any]:
    truth = true_cmr(BASE + TOL, TARGET)
    truth_domain = float(cmr_losses(np.array([truth]), np.array([TARGET]))[0, 1])
    covered_domain: list[bool] = []
    errors, covered, widths, excess, heldout, failed = [], [], [], [], [], 0
    t0 = time.perf_counter()
    for seed in seeds:
        r, t, y = cmr_runs(noise, seed, ratios=ratios, tokens=tokens)
        try:
            answer = critical_mixture_ratio(r, t, y, base_general_loss=BASE, tolerance=TOL, target_tokens=TARGET)
        except MixingError:
            failed += 1
            continue
        got, lo, hi = answer.point.ratio, answer.ratio_interval.lower, answer.ratio_interval.upper
        errors.append(abs(got - truth))
        covered.append(lo <= truth <= hi)
        covered_domain.append(answer.domain_interval.lower <= truth_domain <= answer.domain_interval.upper)
        widths.append(hi - lo)
        true_general = float(cmr_losses(np.array([got]), np.array([TARGET]))[0, 0])
        excess.append(max(0.0, true_general - (BASE + TOL)))
        report = validate_cmr_law(r, t, y, seed=seed)
        if report.heldout is not None:
            heldout.append((report.heldout.general, report.heldout.domain))
    err = np.asarray(errors)
    held = np.asarray(heldout).reshape(-1, 2)
    return {
        "n_runs": len(ratios) * len(tokens), "max_train_tokens": max(tokens), "noise": noise,
        "true_cmr": truth, "draws": len(seeds), "failed": failed,
        "abs_error_median": float(np.median(err)), "abs_error_p90": float(np.percentile(err, 90)),
        "within_0.05": float(np.mean(err <= 0.05)),
        "coverage_90": float(np.mean(covered)), "coverage_90_domain_loss": float(np.mean(covered_domain)),
        "interval_width_median": float(np.median(widths)),
        "general_excess_median": float(np.median(excess)), "general_excess_p90": float(np.percentile(excess, 90)),
        "heldout_mae_general_median": float(np.median(held[:, 0])) if len(held) else None,
        "heldout_mae_domain_median": float(np.median(held[:, 1])) if len(held) else None,
        "seconds": time.perf_counter() - t0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=100)
    parser.add_argument("--seed-offset", type=int, default=0)
    parser.add_argument("--noise", default="0.005,0.02,0.05")
    args = parser.parse_args()
    load_start = os.getloadavg()
    seeds = range(args.seed_offset, args.seed_offset + args.draws)
    rows = []
    for noise in (float(n) for n in args.noise.split(",")):
        for name, (ratios, tokens) in DESIGNS.items():
            rows.append({"design": name, **one_design(ratios, tokens, noise, seeds)})
    out = {"machine": platform.processor() or platform.machine(), "load_average_start": load_start,
           "load_average_end": os.getloadavg(),
           "target_tokens": TARGET, "tolerance": TOL, "base_general_loss": BASE, "seeds": [seeds.start, seeds.stop],
           "rows": rows}
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2))
    print(f"true CMR at {TARGET:g} tokens: {rows[0]['true_cmr']:.3f}")
    print("| design | noise | |error| median / p90 | within 0.05 | 90% interval coverage | width (median) "
          "| domain loss at the CMR: coverage "
          "| true general loss over the tolerance (median / p90) | held-out MAE general / domain | s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['design']} | {r['noise']:g} | {r['abs_error_median']:.3f} / {r['abs_error_p90']:.3f} "
              f"| {r['within_0.05']:.0%} | {r['coverage_90']:.0%} | {r['interval_width_median']:.3f} "
              f"| {r['coverage_90_domain_loss']:.0%} "
              f"| {r['general_excess_median']:.4f} / {r['general_excess_p90']:.4f} "
              f"| {_mae(r['heldout_mae_general_median'])} / {_mae(r['heldout_mae_domain_median'])} "
              f"| {r['seconds']:.0f} |")


def _mae(value: float | None) -> str:
    """A held-out error, or a dash for a design whose smaller token counts alone cannot be fitted."""
    return "–" if value is None else f"{value:.4f}"


if __name__ == "__main__":
    main()
