"""Suggestion latency of the ``bo`` method: (runs, domains) -> seconds, cold and warm, plus GP fit times.

Synthetic multi-fidelity data (two fidelity levels, a quarter of the runs at the target), a q=8 batch over
the continuous simplex, default :class:`~mixing.bo.engine.BOSettings`. ``cold`` = no saved hyperparameters;
``warm`` = the next call, one run later, started from the previous fit's ``bo_state`` (the steady state of
a BO loop). ``fit_full`` fits hyperparameters on all runs (``max_fit_points`` = n) instead of the default
subset, to time the exact marginal likelihood at large n (meant for the GPU).

Run: ``python bench/bo_latency.py [--device cpu|cuda] [--sizes 250x17,1000x17] [--fit-full 5000x17]``.
Writes ``bench/results/bo_latency_<device>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mixing.bo import engine  # noqa: E402
from mixing.bo.device import bo_device, cpu_threads  # noqa: E402
from mixing.compute import Compute, Device  # noqa: E402
from mixing.methods.base import SearchContext  # noqa: E402
from mixing.methods.bo import BayesOptMethod  # noqa: E402
from mixing.problem import FidelitySpace, Observations, Problem  # noqa: E402
from mixing.simplex import SimplexConstraints  # noqa: E402

OUT = Path(__file__).resolve().parent / "results"


def synthetic(n: int, d: int, seed: int = 0) -> tuple[Problem, Observations]:
    rng = np.random.default_rng(seed)
    space = FidelitySpace(("params",), np.array([1e6]), np.array([6e7]), np.array([6e7]))
    prob = Problem(
        tuple(f"d{i}" for i in range(d)),
        SimplexConstraints.unconstrained(d),
        ("loss",),
        np.array([1.0]),
        fidelity=space,
    )
    w = rng.dirichlet(np.full(d, 0.5), n)
    params = np.where(rng.random(n) < 0.25, 6e7, 1e6)[:, None]
    s = space.normalise(params)[:, 0]
    effect = rng.normal(size=d)
    loss = (
        4.0
        + 1.0 * (1 - s)
        + np.sqrt(w) @ effect * 0.3
        + 0.5 * ((w - 1 / d) ** 2).sum(1)
        + 0.01 * rng.standard_normal(n)
    )
    obs = Observations(w, params, loss[:, None], params[:, 0] / 1e6, np.zeros((0, d)), np.zeros((0, 1)))
    return prob, obs


def time_suggest(n: int, d: int, compute: Compute, q: int = 8) -> dict[str, float]:
    prob, obs = synthetic(n + 1, d)
    first = Observations(
        obs.mixtures[:n],
        obs.fidelities[:n],
        obs.metrics[:n],
        obs.costs[:n],
        obs.pending_mixtures,
        obs.pending_fidelities,
    )
    method = BayesOptMethod()
    t0 = time.perf_counter()
    props = method.suggest(SearchContext(prob, first, np.random.default_rng(1), compute=compute), q)
    cold = time.perf_counter() - t0
    state = props[0].details["bo_state"]
    t0 = time.perf_counter()
    warm_props = method.suggest(
        SearchContext(prob, obs, np.random.default_rng(2), {"bo_state": state}, compute=compute), q
    )
    warm = time.perf_counter() - t0
    return {
        "suggest_cold_s": cold,
        "suggest_warm_s": warm,
        "fit_cold_s": props[0].details["fit"]["fit_seconds"],
        "fit_warm_s": warm_props[0].details["fit"]["fit_seconds"],
        "n_fit": props[0].details["fit"]["n_fit"],
        "batch": len(props),
    }


def time_full_fit(n: int, d: int, compute: Compute) -> dict[str, float]:
    prob, obs = synthetic(n, d)
    settings = replace(
        engine.BOSettings(), fit=replace(engine.BOSettings().fit, max_fit_points=n, coarse_points=n)
    )
    t0 = time.perf_counter()
    with cpu_threads(compute.threads):
        s = engine.fit_surrogate(prob, obs, bo_device(compute.device), np.random.default_rng(0), None, settings)
    total = time.perf_counter() - t0
    return {"fit_full_s": s.gp.info["fit_seconds"], "fit_full_total_s": total, "n_fit": s.gp.info["n_fit"]}


def sizes(text: str) -> list[tuple[int, int]]:
    return [tuple(int(v) for v in item.split("x")) for item in text.split(",") if item]  # type: ignore[misc]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", type=Device, default=Device.CPU)
    ap.add_argument("--q", type=int, default=8, help="suggestion batch size")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads per BO call (0: torch's own)")
    ap.add_argument("--sizes", default="100x5,250x17,1000x5,1000x17")
    ap.add_argument("--fit-full", default="")
    ap.add_argument("--label", default="")
    args = ap.parse_args()
    compute = Compute(args.device, args.threads)
    dev = bo_device(compute.device)
    machine = torch.cuda.get_device_name(0) if dev.type == "cuda" else f"{platform.processor() or 'cpu'}"
    rows = []
    engine.fit_surrogate(
        *synthetic(20, 3), dev, np.random.default_rng(0), None, engine.BOSettings()
    )  # warm-up
    threads = compute.threads
    print(f"device={dev} ({machine}), BO threads={threads}, load average before={os.getloadavg()[0]:.1f}")
    print(f"{'runs':>6} {'domains':>7} {'cold s':>8} {'warm s':>8} {'fit cold':>9} {'fit warm':>9}")
    for n, d in sizes(args.sizes):
        r = {"runs": n, "domains": d, **time_suggest(n, d, compute, args.q)}
        rows.append(r)
        print(
            f"{n:6d} {d:7d} {r['suggest_cold_s']:8.2f} {r['suggest_warm_s']:8.2f} {r['fit_cold_s']:9.2f} "
            f"{r['fit_warm_s']:9.2f}",
            flush=True,
        )
    for n, d in sizes(args.fit_full):
        r = {"runs": n, "domains": d, **time_full_fit(n, d, compute)}
        rows.append(r)
        print(
            f"full exact fit on {n} runs x {d} domains: {r['fit_full_s']:.2f} s "
            f"(with the posterior: {r['fit_full_total_s']:.2f} s)",
            flush=True,
        )
    OUT.mkdir(exist_ok=True)
    name = f"bo_latency_{args.label or dev.type}.json"
    (OUT / name).write_text(
        json.dumps(
            {
                "device": str(dev),
                "machine": machine,
                "bo_threads": threads,
                "load_average_after": os.getloadavg()[0],
                "rows": rows,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
