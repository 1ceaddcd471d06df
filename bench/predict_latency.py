"""Server time of ``POST /predict`` for 10 mixtures on an experiment of 1,000 RegMix runs, after a refit.

Two experiments: the RegMix runs at two fidelities (768 at 1M, 232 at 60M; ``auto`` predicts with BO) and
the same 1,000 runs as one fidelity (``auto`` predicts with the selected mixing law). Each gets a refit
through the API (as a re-optimization policy or ``POST /refits`` would), then ``--calls`` predictions of
10 mixtures; then one more run arrives and the first prediction after it is timed (the stored model is
stale). Server time is the API's own ``server-timing`` header.

    python bench/predict_latency.py [--calls 5] [--laws regmix_linear,regmix_lightgbm,gp]

Prints a table and writes ``bench/results/predict_latency.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fastapi.testclient import TestClient  # noqa: E402

from runtables.regmix import domain_specs, load_split  # noqa: E402
from service.api.app import create_app  # noqa: E402
from service.settings import Settings, get_settings  # noqa: E402

N_RUNS, N_MIXTURES = 1000, 10
OBJECTIVE = "loss/pile_cc"
OUT = Path(__file__).resolve().parent / "results" / "predict_latency.json"


def regmix_reports(data_dir: Path, fidelity: bool) -> list[dict[str, Any]]:
    """The first 1,000 RegMix runs (train 1M, test 1M, test 60M) as run reports."""
    out: list[dict[str, Any]] = []
    for split in ("train_1m", "test_1m", "test_60m"):
        data = load_split(data_dir, split)
        for (index, mix), (_, loss) in zip(data.mixtures.iterrows(), data.losses.iterrows(), strict=True):
            total = float(mix.sum())
            out.append({"mixture": {k: float(v) / total for k, v in mix.items()},
                        "metrics": {OBJECTIVE: float(loss[OBJECTIVE])}, "cost": data.params * 1e-6,
                        "client_run_id": f"{split}-{index}",
                        **({"fidelity": {"params": data.params}} if fidelity else {})})
    return out[:N_RUNS + 1]


def server_ms(response: Any) -> float:
    response.raise_for_status()
    return float(response.headers["server-timing"].split("dur=")[1])


def scenario(api: TestClient, data_dir: Path, fidelity: bool, calls: int, laws: list[str] | None
             ) -> dict[str, Any]:
    reports = regmix_reports(data_dir, fidelity)
    domains = list(reports[0]["mixture"])
    spec: dict[str, Any] = {"name": f"predict-bench-{'mf' if fidelity else 'sf'}-{time.time_ns()}",
                            "domains": domain_specs(domains),
                            "objective": {"metrics": [OBJECTIVE], "aggregate": "single", "goal": "minimize"}}
    if fidelity:
        spec["fidelities"] = [{"name": "params", "min": 1e6, "max": 1e9, "target": 1e9}]
    exp = api.post("/v1/experiments", json=spec).json()
    base = f"/v1/experiments/{exp['id']}"
    api.post(f"{base}/runs:batch", json={"runs": reports[:N_RUNS]}).raise_for_status()
    t0 = time.perf_counter()
    job = api.post(f"{base}/refits", json={"laws": laws} if laws else {}).json()["job"]
    while (state := api.get(f"/v1/jobs/{job['id']}").json())["state"] not in ("succeeded", "failed"):
        time.sleep(0.2)
    refit_s = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    body = {"mixtures": [dict(zip(domains, w.tolist(), strict=True)) for w in rng.dirichlet(np.ones(len(domains)),
                                                                                          N_MIXTURES)]}
    times, method = [], None
    for _ in range(calls):
        r = api.post(f"{base}/predict", json=body)
        times.append(server_ms(r))
        method = r.json()["method"]
    api.post(f"{base}/runs:batch", json={"runs": reports[N_RUNS:]}).raise_for_status()
    stale = server_ms(api.post(f"{base}/predict", json=body))
    after_stale = server_ms(api.post(f"{base}/predict", json=body))
    return {"experiment": "two fidelities" if fidelity else "one fidelity", "method": method,
            "refit": state["state"], "refit_s": refit_s, "calls_ms": times, "median_ms": float(np.median(times)),
            "first_after_new_run_ms": stale, "second_after_new_run_ms": after_stale}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument("--laws", default="", help="laws the refit scores (default: the server's default)")
    args = parser.parse_args()
    laws = [x for x in args.laws.split(",") if x] or None
    data_dir = get_settings().regmix_data
    with tempfile.TemporaryDirectory() as tmp, TestClient(create_app(Settings(
            database_url=f"sqlite:///{tmp}/bench.db", auto_migrate=True, seed=0, log_level="WARNING",
            sync_budget_s=600.0))) as api:
        rows = [scenario(api, data_dir, fidelity, args.calls, laws) for fidelity in (True, False)]
    load = os.getloadavg()
    out = {"machine": f"{platform.machine()}, {os.cpu_count()} cores", "loadavg_1m": load[0], "n_runs": N_RUNS,
           "n_mixtures": N_MIXTURES, "results": rows}
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(out, indent=2))
    print(f"POST /predict, {N_MIXTURES} mixtures, {N_RUNS} runs; {out['machine']}, load {load[0]:.1f}")
    print("| experiment | method | refit (s) | median of calls (ms) | calls (ms) | 1st after a new run (ms) "
          "| 2nd after it (ms) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['experiment']} | {r['method']} | {r['refit_s']:.1f} | {r['median_ms']:.0f} | "
              f"{', '.join(f'{t:.0f}' for t in r['calls_ms'])} | {r['first_after_new_run_ms']:.0f} | "
              f"{r['second_after_new_run_ms']:.0f} |")


if __name__ == "__main__":
    main()
