"""Plot ``mixopt replay --out`` results: regret of the current recommendation against cumulative cost.

One panel per result file (objective); one line per method, the median over seeds of the step function
"true target-fidelity regret of what the method would recommend after spending this much", with the
inter-seed range shaded. Regret is in units of the pool's objective range, so the 1% line is the
tolerance ``mixopt replay`` reports the cost to reach.

Run: ``python bench/replay_plot.py bench/results/replay_http_pile_cc.json bench/results/replay_http_mean.json
--out bench/results/replay_http.png``.
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

COLORS = {"bo": "#1f77b4", "regmix": "#2ca02c", "single-fidelity-bo": "#ff7f0e", "random": "#7f7f7f"}


def regret_curves(result: dict[str, Any], grid: np.ndarray) -> dict[str, np.ndarray]:
    """Per method, an array (seeds, len(grid)) of regret / range on the cost grid (NaN before any value)."""
    span, best = result["objective_range"], result["objective_best"]
    sign = 1.0 if result.get("goal", "min") == "min" else -1.0
    out: dict[str, list[np.ndarray]] = {}
    for t in result["trajectories"]:
        costs, values = np.asarray(t["costs"]), np.asarray(t["values"])
        if len(values):
            idx = np.searchsorted(costs, grid, side="right") - 1
            curve = np.where(idx >= 0, sign * (values[np.clip(idx, 0, None)] - best) / span, np.nan)
        else:  # never a recommendation to score (its final_regret is null)
            curve = np.full(len(grid), np.nan)
        out.setdefault(t["method"], []).append(curve)
    return {m: np.vstack(c) for m, c in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    fig, axes = plt.subplots(1, len(args.results), figsize=(6.5 * len(args.results), 4.2), squeeze=False)
    for ax, path in zip(axes[0], args.results, strict=True):
        result = json.loads(path.read_text())
        grid = np.geomspace(1.0, result["budget"], 400)
        for method, curves in sorted(regret_curves(result, grid).items()):
            color = COLORS.get(method)
            with warnings.catch_warnings():  # all-NaN columns: a method with no recommendation yet
                warnings.simplefilter("ignore", RuntimeWarning)
                ax.plot(grid, np.nanmedian(curves, axis=0), label=method, color=color, lw=2)
                ax.fill_between(grid, np.nanmin(curves, axis=0), np.nanmax(curves, axis=0), color=color, alpha=0.12)
        ax.axhline(0.01, color="k", ls=":", lw=1, label="1% of range")
        ax.set_yscale("symlog", linthresh=0.01)
        ax.set_xscale("log")
        ax.set_ylim(bottom=0.0)
        ax.set_xlabel("cumulative cost (1 = one 1M-parameter run; a 60M run costs 60)")
        ax.set_ylabel("regret of the recommendation / objective range")
        ax.set_title(f"{result.get('objective', path.stem)}: median over {result['seeds']} seeds")
        ax.legend(fontsize=8)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(args.out)


if __name__ == "__main__":
    main()
