"""Another caller's GET latency while the embedded API refits a large experiment (issue 14, item 9).

    python -m bench.refit_victim_latency [--runs 5000] [--laws ...] [--job-processes true|false] [--out FILE]

``mixopt serve`` runs on a scratch SQLite file with no broker. One experiment gets ``--runs`` runs and a
refit; while the refit job runs, a victim reads another experiment (``GET /v1/experiments/{id}``) as fast as
it is answered, one request at a time, and the latencies are reported with the refit's duration and the
peak memory of the API process and of its largest job process. ``--job-processes false`` runs the job on
the API's own threads, as before job processes existed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench.server_process import children_peak_rss_mib, mixopt_serve, peak_rss_mib

ROOT = Path(__file__).resolve().parents[1]
DOMAINS = [f"d{i}" for i in range(8)]


def spec(name: str) -> dict[str, Any]:
    return {"name": name, "domains": [{"name": d} for d in DOMAINS],
            "objective": {"metrics": ["loss/d0", "loss/d1"], "aggregate": "mean"},
            "fidelities": [{"name": "params", "min": 1e6, "max": 1e9, "target": 1e9}]}


def runs(n: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(0)
    out = []
    for i, w in enumerate(rng.dirichlet(np.ones(len(DOMAINS)), size=n)):
        noise = rng.normal(0, 0.01, 2)
        out.append({"mixture": dict(zip(DOMAINS, w.tolist(), strict=True)), "fidelity": {"params": 1e6},
                    "metrics": {"loss/d0": 3 + (w[0] - 0.3) ** 2 + noise[0],
                                "loss/d1": 3 + (w[1] - 0.2) ** 2 + noise[1]},
                    "cost": 1.0, "client_run_id": f"r{i}"})
    return out


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5000)
    parser.add_argument("--laws", default="", help="laws the refit scores (default: the server's default)")
    parser.add_argument("--job-processes", choices=("true", "false"), default="true")
    parser.add_argument("--repo", type=Path, default=ROOT, help="the checkout to serve (for a before)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {"MIXOPT_DATABASE_URL": f"sqlite:///{tmp}/victim.db", "MIXOPT_RATE_LIMIT_PER_S": "0",
               "MIXOPT_JOB_PROCESSES": args.job_processes}
        with mixopt_serve(env, args.repo) as (url, server), httpx.Client(base_url=url, timeout=600) as api:
            big = api.post("/v1/experiments", json=spec("big")).json()["id"]
            for start in range(0, args.runs, 5000):
                api.post(f"/v1/experiments/{big}/runs:batch",
                         json={"runs": runs(args.runs)[start:start + 5000]}).raise_for_status()
            small = api.post("/v1/experiments", json=spec("victim")).json()["id"]
            alone = [timed_get(api, small) for _ in range(200)]
            body = {"laws": args.laws.split(",")} if args.laws else {}
            refit = api.post(f"/v1/experiments/{big}/refits", json=body)
            refit.raise_for_status()
            job_id = refit.json()["job"]["id"]
            t0 = time.perf_counter()
            during: list[float] = []
            state = "queued"
            while state in ("queued", "running"):
                during.extend(timed_get(api, small) for _ in range(20))
                state = api.get(f"/v1/jobs/{job_id}").json()["state"]
            refit_s = time.perf_counter() - t0
            result = {
                "runs": args.runs, "laws": args.laws or "server default", "job_processes": args.job_processes,
                "repo": str(args.repo), "refit_state": state, "refit_s": round(refit_s, 1),
                "victim_alone_ms": summary(alone), "victim_during_refit_ms": summary(during),
                "api_peak_rss_mib": round(peak_rss_mib(server.pid)),
                "job_process_peak_rss_mib": round(children_peak_rss_mib(server.pid)),
            }
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


def timed_get(api: httpx.Client, experiment_id: str) -> float:
    t0 = time.perf_counter()
    api.get(f"/v1/experiments/{experiment_id}").raise_for_status()
    return (time.perf_counter() - t0) * 1000


def summary(ms: list[float]) -> dict[str, float]:
    return {"n": len(ms), "p50": round(statistics.median(ms), 1), "p99": round(percentile(ms, 99), 1),
            "max": round(max(ms), 1)}


if __name__ == "__main__":
    main()
