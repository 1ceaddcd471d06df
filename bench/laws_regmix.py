"""Law fidelity on the RegMix proxy runs: the target table of issue 3, reproducible in one command.

Every law is fitted on the 512 training runs (1M parameters) and scored by 5-fold cross-validation, on
the 256 held-out 1M runs and on the same 256 mixtures trained at 60M parameters (does the ranking carry
across scale?). Two objectives: Pile-CC validation loss (the paper's target) and the mean of the 13
domain losses; for the mean both routes are scored (per-domain fits averaged, and a direct fit of the
mean, which is what RegMix does). The wall time of ``mixopt laws evaluate`` itself (every law, 2 worker
processes, the 512 + 256 runs, CSV parsing included) is measured by running the command.

    python bench/laws_regmix.py [--jobs 2] [--data ../shared/data/regmix]

Prints a Markdown table and writes ``bench/results/laws_regmix.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mixing.evaluation import DIRECT, FROM_METRICS, evaluate_laws, score
from mixing.laws.gp import NORMAL_Q90, SimplexGP
from mixing.problem import FidelitySpace

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "laws_regmix.json"
DATA = Path(os.environ.get("MIXOPT_REGMIX_DATA", ROOT.parent / "shared" / "data" / "regmix"))
PILE_CC = "metric/the_pile_pile_cc_val_loss"


def load(data: Path, kind: str, scale: str) -> tuple[np.ndarray, pd.DataFrame]:
    mix = pd.read_csv(data / f"{kind}_mixture_{scale}.csv").set_index("index")
    loss = pd.read_csv(data / f"{kind}_pile_loss_{scale}.csv").set_index("index").loc[mix.index]
    return mix.to_numpy(dtype=np.float64), loss


def fidelity_table(data: Path, jobs: int) -> dict[str, Any]:
    x, train = load(data, "train", "1m")
    x1, test1 = load(data, "test", "1m")
    x6, test6 = load(data, "test", "60m")
    out: dict[str, Any] = {}
    for target, cols in (("pile_cc", [PILE_CC]), ("mean_13", list(train.columns))):
        t0 = time.perf_counter()
        report = evaluate_laws(
            None,
            x,
            None,
            train[cols].to_numpy(),
            None,
            folds=5,
            seed=0,
            n_jobs=jobs,
            heldout={"1m": (x1, None, test1[cols].to_numpy()), "60m": (x6, None, test6[cols].to_numpy())},
        )
        # Ceiling for the 60M column: the true 1M losses of the same mixtures used as the prediction.
        ceiling = score(test1[cols].to_numpy().mean(axis=1), test6[cols].to_numpy().mean(axis=1)).spearman
        out[target] = {
            "seconds": time.perf_counter() - t0,
            "report": report.to_dict(),
            "ceiling_60m": ceiling,
        }
        print(f"{target}: {out[target]['seconds']:.1f} s, selected {report.selected}", file=sys.stderr)
    return out


def multi_fidelity_table(data: Path, jobs: int, n_big: int = 64) -> dict[str, Any]:
    """Runs at two scales in one fit: 512 at 1M plus ``n_big`` at 60M, scored on the other 60M runs.

    Fidelity-aware laws see all runs with the parameter count as a (log-normalised) fidelity axis;
    single-fidelity laws are fitted on one scale only, either the 512 small runs or the few large ones.
    """
    x, train = load(data, "train", "1m")
    x6, test6 = load(data, "test", "60m")
    big = np.random.default_rng(0).permutation(len(x6))
    few, rest = big[:n_big], big[n_big:]
    space = FidelitySpace(("params",), np.array([1e6]), np.array([6e7]), np.array([6e7]))
    fid = space.normalise(np.r_[np.full(len(x), 1e6), np.full(n_big, 6e7)][:, None])
    target_fid = space.normalise(np.full((len(rest), 1), 6e7))
    out: dict[str, Any] = {"n_big": n_big, "n_scored": len(rest)}
    for target, cols in (("pile_cc", [PILE_CC]), ("mean_13", list(train.columns))):
        y_big = test6[cols].to_numpy()
        held = {"60m_rest": (x6[rest], target_fid, y_big[rest])}
        runs = {
            "both scales (fidelity-aware)": (
                ["gp", "scaling_additive", "scaling_joint"],
                np.vstack([x, x6[few]]),
                fid,
                np.vstack([train[cols].to_numpy(), y_big[few]]),
            ),
            "512 at 1M only": (["regmix_lightgbm", "gp"], x, None, train[cols].to_numpy()),
            f"{n_big} at 60M only": (["regmix_lightgbm", "data_mixing_law", "gp"], x6[few], None, y_big[few]),
        }
        out[target] = {}
        for label, (names, xx, ff, yy) in runs.items():
            hf = held if ff is not None else {"60m_rest": (x6[rest], None, y_big[rest])}
            rep = evaluate_laws(names, xx, ff, yy, None, n_jobs=jobs, ensemble=False, heldout=hf)
            out[target][label] = {
                e.name: {route: s.spearman for route, s in ((e.heldout or {}).get("60m_rest") or {}).items()}
                | {"seconds": e.duration_s}
                for e in rep.laws
            }
        print(f"multi-fidelity {target} done", file=sys.stderr)
    return out


def gp_coverage(data: Path) -> dict[str, Any]:
    """Empirical coverage of the GP's calibrated 90% intervals on the 256 held-out 1M runs."""
    x, train = load(data, "train", "1m")
    x1, test1 = load(data, "test", "1m")
    gp = SimplexGP().fit(x, None, train.to_numpy())
    y = test1.to_numpy()
    err = y - gp.predict(x1)
    per_metric = (np.abs(err) < NORMAL_Q90 * gp.predict_std(x1)).mean(axis=0)
    w = np.full(y.shape[1], 1.0 / y.shape[1])
    mean = (np.abs(err @ w) < NORMAL_Q90 * gp.aggregate_std(x1, None, w)).mean()
    return {"per_metric": per_metric.tolist(), "mean_of_13": float(mean)}


def cli_seconds(data: Path, jobs: int, target: str) -> float:
    """Wall time of ``mixopt laws evaluate`` on 512 train + 256 test runs, every law."""
    cmd = [
        sys.executable,
        "-c",
        "from service.cli.laws import laws; laws()",
        "evaluate",
        "--train-mixtures",
        str(data / "train_mixture_1m.csv"),
        "--train-metrics",
        str(data / "train_pile_loss_1m.csv"),
        "--test-mixtures",
        str(data / "test_mixture_60m.csv"),
        "--test-metrics",
        str(data / "test_pile_loss_60m.csv"),
        "--target",
        target,
        "--jobs",
        str(jobs),
        "--json",
    ]
    t0 = time.perf_counter()
    subprocess.run(
        cmd,
        check=True,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    return time.perf_counter() - t0


def markdown(results: dict[str, Any]) -> str:
    def rho(scores: dict[str, Any] | None) -> str:
        return "-" if not scores or scores.get("spearman") is None else f"{scores['spearman']:.4f}"

    lines = []
    for target, title in (("pile_cc", "Pile-CC loss"), ("mean_13", "Mean of the 13 domain losses")):
        rep, seconds = results["fidelity"][target]["report"], results["fidelity"][target]["seconds"]
        lines += [
            f"**{title}** (selected: `{rep['selected']}`; whole report {seconds:.1f} s)",
            "",
            "| law | route | CV Spearman (512) | held-out 1M (256) | held-out 60M (256) | CV MAE | CV R² "
            "| top-10 hit CV / 1M / 60M | time (s) |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for law in rep["laws"]:
            if law["skipped"]:
                lines.append(f"| {law['name']} | skipped | {law['skipped']} | | | | | | |")
                continue
            for route in (FROM_METRICS, DIRECT):
                cv = law["cv"].get(route)
                if cv is None:
                    continue
                held = law["heldout"] or {}
                h1, h6 = held.get("1m", {}).get(route), held.get("60m", {}).get(route)
                hits = " / ".join("-" if s is None else f"{s['top_k_hit']:.0f}" for s in (cv, h1, h6))
                name = (
                    f"**{law['name']}**"
                    if law["name"] == rep["selected"] and route == FROM_METRICS
                    else law["name"]
                )
                label = (
                    "per-domain → mean"
                    if route == FROM_METRICS and target == "mean_13"
                    else ("direct" if route == DIRECT else "")
                )
                lines.append(
                    f"| {name} | {label} | {rho(cv)} | {rho(h1)} | {rho(h6)} | {cv['mae']:.4f} "
                    f"| {cv['r2']:.3f} | {hits} | {law['duration_s']:.1f} |"
                )
        lines += [
            "",
            f"Reference: the *measured* 1M losses of the 256 test mixtures, used as a predictor of their 60M "
            f"losses, reach Spearman {results['fidelity'][target]['ceiling_60m']:.4f} — the most any law "
            "fitted at 1M can be expected to reach in the 60M column.",
            "",
        ]
    mf = results["multi_fidelity"]
    lines += [
        f"**Two scales in one fit**: 512 runs at 1M + {mf['n_big']} at 60M; Spearman on the other "
        f"{mf['n_scored']} 60M runs (per-domain → objective / direct)",
        "",
        "| training runs | law | Pile-CC | mean of 13 (per-domain) | mean of 13 (direct) |",
        "|---|---|---|---|---|",
    ]
    for label, laws in mf["pile_cc"].items():
        for name, pcc in laws.items():
            mean = mf["mean_13"][label][name]
            cells = [pcc.get(FROM_METRICS), mean.get(FROM_METRICS), mean.get(DIRECT)]
            lines.append(
                f"| {label} | {name} | " + " | ".join("-" if v is None else f"{v:.4f}" for v in cells) + " |"
            )
    cov = results["gp_coverage_90"]
    lines += [
        "",
        "GP calibrated 90% intervals on the 256 held-out 1M runs: coverage "
        f"{min(cov['per_metric']):.2f}-{max(cov['per_metric']):.2f} per domain, "
        f"{cov['mean_of_13']:.2f} for the mean.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args()
    results: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} logical CPUs",
        "jobs": args.jobs,
        "fidelity": fidelity_table(args.data, args.jobs),
        "multi_fidelity": multi_fidelity_table(args.data, args.jobs),
        "gp_coverage_90": gp_coverage(args.data),
        "cli_evaluate_seconds": {t: cli_seconds(args.data, args.jobs, t) for t in (PILE_CC, "mean")},
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2))
    print(markdown(results))
    print(
        "`mixopt laws evaluate` (512 train + 256 test runs, every law, "
        f"{args.jobs} processes): "
        + ", ".join(f"{t}: {s:.1f} s" for t, s in results["cli_evaluate_seconds"].items())
    )


if __name__ == "__main__":
    main()
