"""Law scores on the RegMix runs with 1% of the metric cells blanked, against the complete table (issue 18).

The mean of the 13 domain losses is the target. The 512 training runs (1M) are scored by 5-fold
cross-validation and on the 256 held-out 1M and 60M runs, once on the complete tables and once per seed
with 1% of the training and held-out metric cells blanked at random (per-metric fits on the runs that
report each metric, scores on the complete runs; see ``mixing/evaluation.py``).

    python bench/laws_gaps.py [--jobs 2] [--seeds 3] [--laws regmix_linear,regmix_lightgbm,...]

Prints a Markdown table and writes ``bench/results/laws_gaps.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from typing import Any

import numpy as np

from bench.laws_regmix import DATA, ROOT, load
from mixing.evaluation import FROM_METRICS, EvaluationReport, evaluate_laws

RESULTS = ROOT / "bench" / "results" / "laws_gaps.json"


def blank(y: np.ndarray, share: float, rng: np.random.Generator) -> np.ndarray:
    """A copy of ``y`` with ``share`` of its cells set to NaN."""
    out = y.copy()
    out.flat[rng.choice(out.size, round(share * out.size), replace=False)] = np.nan
    return out


def summary(report: EvaluationReport) -> dict[str, Any]:
    """Per law: runs seen, CV and held-out Spearman of the per-domain route; and the selected law."""
    laws = {}
    for e in report.laws:
        if e.skipped is None:
            laws[e.name] = {
                "n_runs": e.n_runs,
                "n_complete_runs": e.n_complete_runs,
                "cv": e.cv[FROM_METRICS].spearman,
                **{s: routes[FROM_METRICS].spearman for s, routes in (e.heldout or {}).items()},
            }
    return {"selected": report.selected, "n_complete": report.n_complete, "laws": laws}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--share", type=float, default=0.01)
    parser.add_argument("--laws", default="regmix_linear,regmix_lightgbm,aioli_loglinear,bimix,data_mixing_law")
    args = parser.parse_args()
    laws = args.laws.split(",")
    x, train = load(DATA, "train", "1m")
    x1, test1 = load(DATA, "test", "1m")
    x6, test6 = load(DATA, "test", "60m")
    y, y1, y6 = train.to_numpy(), test1.to_numpy(), test6.to_numpy()

    def run(ty: np.ndarray, ty1: np.ndarray, ty6: np.ndarray) -> dict[str, Any]:
        t0 = time.perf_counter()
        report = evaluate_laws(laws, x, None, ty, folds=5, seed=0, n_jobs=args.jobs,
                               heldout={"1m": (x1, None, ty1), "60m": (x6, None, ty6)})
        return {**summary(report), "seconds": time.perf_counter() - t0}

    out: dict[str, Any] = {"machine": platform.processor() or platform.machine(), "share": args.share,
                           "complete": run(y, y1, y6), "blanked": []}
    for seed in range(args.seeds):
        rng = np.random.default_rng(seed)
        out["blanked"].append(run(blank(y, args.share, rng), blank(y1, args.share, rng), blank(y6, args.share, rng)))
        print(f"seed {seed}: selected {out['blanked'][-1]['selected']}", file=sys.stderr)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2))
    names = list(out["complete"]["laws"])
    print("| law | table | runs seen (complete) | CV ρ | held-out 1M ρ | 60M ρ |\n|---|---|---|---|---|---|")
    for name in names:
        for label, entries in (("complete", [out["complete"]]), (f"{args.share:.0%} blanked", out["blanked"])):
            rows = [e["laws"][name] for e in entries if name in e["laws"]]
            cell = {k: np.array([r[k] for r in rows]) for k in ("cv", "1m", "60m")}
            fmt = {k: f"{v.mean():.3f}" + (f" ± {v.std():.3f}" if len(v) > 1 else "") for k, v in cell.items()}
            seen = f"{rows[0]['n_runs']} ({rows[0]['n_complete_runs']})"
            print(f"| {name} | {label} | {seen} | {fmt['cv']} | {fmt['1m']} | {fmt['60m']} |")
    print("selected: complete " + out["complete"]["selected"] + "; blanked "
          + ", ".join(e["selected"] for e in out["blanked"]))


if __name__ == "__main__":
    main()
