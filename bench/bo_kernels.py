"""Honest validation of the BO surrogate's design choices on the RegMix runs (held-out prediction).

Two tasks, several random splits each:

* ``single``: fit on 256 random 1M training runs, predict the 256 held-out 1M test runs.
* ``multi``: fit on every 1M run (512 train + 256 test mixtures) plus 32 random 60M runs, predict the
  other 224 60M runs -- the situation multi-fidelity BO is in after its cheap exploration.

Scores: Spearman rank correlation, held-out negative log predictive density per run (NLPD, lower is
better, the measure that rewards honest intervals), the true regret of the run the model ranks best, and
fit seconds. Candidates: the three mixture encodings of :mod:`mixing.bo.encoding` with our kernel, our
kernel with fewer fit iterations or a smaller fit subset, and two BoTorch baselines (a plain ARD
``SingleTaskGP`` on [mixture, fidelity] and ``SingleTaskMultiFidelityGP`` with its linear-truncated
kernel). Run: ``python bench/bo_kernels.py [--seeds 3] [--objective pile_cc|mean]``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from botorch.fit import fit_gpytorch_mll  # noqa: E402
from botorch.models import SingleTaskGP, SingleTaskMultiFidelityGP  # noqa: E402
from gpytorch.mlls import ExactMarginalLogLikelihood  # noqa: E402

from mixing.bo.device import bo_device, cpu_threads  # noqa: E402
from mixing.bo.encoding import encode  # noqa: E402
from mixing.bo.surrogate import FitSettings, fit_gp  # noqa: E402
from mixing.compute import Device  # noqa: E402
from runtables.regmix import load_split  # noqa: E402

DATA = Path(os.environ.get("MIXOPT_REGMIX_DATA", Path(__file__).resolve().parents[2] / "shared/data/regmix"))
OUT = Path(__file__).resolve().parent / "results" / "bo_kernels.json"
#: Torch CPU threads per fit: the service's default (``mixing.compute.Compute``).
BO_THREADS = 1


def load(objective: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    out = {}
    for split in ("train_1m", "test_1m", "test_60m"):
        s = load_split(DATA, split)
        w = s.mixtures.to_numpy(dtype=np.float64)
        y = s.losses["loss/pile_cc"] if objective == "pile_cc" else s.losses.mean(axis=1)
        out[split] = (w / w.sum(axis=1, keepdims=True), y.to_numpy(dtype=np.float64))
    return out


def task(data: dict, kind: str, rng: np.random.Generator):
    """(train mixtures, train fidelity in [0,1], train y, test mixtures, test fidelity, test y)."""
    if kind == "single":
        w, y = data["train_1m"]
        idx = rng.choice(len(y), 256, replace=False)
        wt, yt = data["test_1m"]
        return w[idx], np.zeros((256, 0)), y[idx], wt, np.zeros((len(yt), 0)), yt
    w1, y1 = data["train_1m"]
    w2, y2 = data["test_1m"]
    w6, y6 = data["test_60m"]
    pick = rng.permutation(len(y6))
    tr, te = pick[:32], pick[32:]
    x = np.concatenate([w1, w2, w6[tr]])
    s = np.concatenate([np.zeros(len(y1) + len(y2)), np.ones(len(tr))])[:, None]
    return x, s, np.concatenate([y1, y2, y6[tr]]), w6[te], np.ones((len(te), 1)), y6[te]


def ours(encoding: str, settings: FitSettings):
    def run(x, s, y, xt, st, rng):
        gp = fit_gp(
            encode(x, s, encoding), y, x.shape[1], s.shape[1], bo_device(Device.CPU), rng, None, settings, encoding
        )
        mean, var = gp.posterior.mean_var(torch.as_tensor(encode(xt, st, encoding)))
        m, sd = gp.to_loss(mean, var)
        noise_sd = np.sqrt(gp.posterior.noise) * gp.y_std
        return m, np.sqrt(sd**2 + noise_sd**2), gp.info["fit_seconds"]

    return run


def botorch_baseline(multi_fidelity: bool):
    def run(x, s, y, xt, st, rng):
        xs, xts = np.concatenate([x, s], 1), np.concatenate([xt, st], 1)
        mu, sdev = y.mean(), y.std()
        tx, ty = torch.as_tensor(xs), torch.as_tensor((y - mu) / sdev)[:, None]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if multi_fidelity and s.shape[1]:
                model = SingleTaskMultiFidelityGP(
                    tx, ty, data_fidelities=[xs.shape[1] - 1], outcome_transform=None
                )
            else:
                model = SingleTaskGP(tx, ty, outcome_transform=None)
            t0 = time.perf_counter()
            fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
            fit_s = time.perf_counter() - t0
            post = model.posterior(torch.as_tensor(xts), observation_noise=True)
        return (
            post.mean.detach().numpy()[:, 0] * sdev + mu,
            np.sqrt(post.variance.detach().numpy()[:, 0]) * sdev,
            fit_s,
        )

    return run


def scores(mean, sd, y) -> dict[str, float]:
    z = (y - mean) / sd
    nlpd = float(np.mean(0.5 * z**2 + np.log(sd) + 0.5 * np.log(2 * np.pi)))
    return {
        "spearman": float(spearmanr(mean, y).statistic),
        "nlpd": nlpd,
        "regret": float(y[np.argmin(mean)] - y.min()),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--objective", default="pile_cc", choices=["pile_cc", "mean"])
    ap.add_argument("--only", default="", help="comma-separated candidate names")
    ap.add_argument("--tasks", default="single,multi")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()
    data = load(args.objective)
    base = FitSettings()
    candidates = {
        "sqrt": ours("sqrt", base),
        "identity": ours("identity", base),
        "logit": ours("logit", base),
        "sqrt/iter40": ours("sqrt", replace(base, maxiter_cold=40)),
        "sqrt/fit256": ours("sqrt", replace(base, max_fit_points=256)),
        "botorch-ard": botorch_baseline(False),
        "botorch-mf": botorch_baseline(True),
    }
    if args.only:
        candidates = {k: v for k, v in candidates.items() if k in args.only.split(",")}
    rows = []
    tasks = args.tasks.split(",")
    for kind in tasks:
        for seed in range(args.seeds):
            split = task(data, kind, np.random.default_rng(seed))
            for name, run in candidates.items():
                with cpu_threads(BO_THREADS):
                    mean, sd, fit_s = run(*split[:5], np.random.default_rng(100 + seed))
                rows.append(
                    {"task": kind, "seed": seed, "model": name, "fit_s": fit_s, **scores(mean, sd, split[-1])}
                )
                print(json.dumps(rows[-1]), flush=True)
    summary = {}
    print(f"\n{'task':7} {'model':12} {'spearman':>9} {'nlpd':>8} {'regret':>8} {'fit s':>7}")
    for kind in tasks:
        for name in candidates:
            sel = [r for r in rows if r["task"] == kind and r["model"] == name]
            agg = {k: float(np.mean([r[k] for r in sel])) for k in ("spearman", "nlpd", "regret", "fit_s")}
            summary[f"{kind}/{name}"] = agg
            print(
                f"{kind:7} {name:12} {agg['spearman']:9.3f} {agg['nlpd']:8.3f} {agg['regret']:8.4f} "
                f"{agg['fit_s']:7.1f}"
            )
    Path(args.out).parent.mkdir(exist_ok=True)
    Path(args.out).write_text(
        json.dumps(
            {
                "objective": args.objective,
                "seeds": args.seeds,
                "bo_threads": BO_THREADS,
                "rows": rows,
                "summary": summary,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
