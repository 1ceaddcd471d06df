"""Peak memory of one suggestion over a 200,000-candidate pool, with 0, 100 and 300 runs taken.

``python bench/suggest_pool_memory.py [--label NAME]`` starts ``mixopt serve`` on a scratch SQLite
database for each run count (jobs on the API's threads, ``MIXOPT_JOB_PROCESSES=false``, so the request's
and the job's memory are one process's; the embedded default runs the job in a child), seeds the runs, sends
one ``POST /suggestions`` with the pool and waits for its job. It reports the server process's peak
resident memory (``VmHWM``) before and after the request, the wall time, the method that answered and
how many bytes of job parameters the request stored. Results go to
``bench/results/suggest_pool_memory[-NAME].json`` and a table on stdout.

Experiment: 4 domains and one fidelity axis (tests/service/helpers.py), runs at one level, so ``auto``
answers with the design method below 10 runs and with the law method above. Candidates are Dirichlet
mixtures, each without a fidelity (the method chooses).
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

import httpx
import numpy as np
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.server_process import mixopt_serve, peak_rss_mib  # noqa: E402
from tests.service.helpers import DOMAINS, spec, synthetic_losses  # noqa: E402

N_CANDIDATES = 200_000
RUN_COUNTS = (0, 100, 300)
COUNT = 4
OUT = ROOT / "bench" / "results"


def candidates_body(seed: int = 0) -> bytes:
    w = np.random.default_rng(seed).dirichlet(np.ones(len(DOMAINS)), N_CANDIDATES)
    pool = [{"mixture": dict(zip(DOMAINS, row, strict=True))} for row in w.tolist()]
    return json.dumps({"count": COUNT, "candidates": pool}).encode()


def seed_runs(client: httpx.Client, exp_id: str, n: int) -> None:
    rng = np.random.default_rng(1)
    runs = []
    for i in range(n):
        w = rng.dirichlet(np.ones(len(DOMAINS)))
        runs.append({"mixture": dict(zip(DOMAINS, w.tolist(), strict=True)), "fidelity": {"params": 1e6},
                     "metrics": synthetic_losses(w), "cost": 1.0, "client_run_id": f"r{i}"})
    if runs:
        client.post(f"/v1/experiments/{exp_id}/runs:batch", json={"runs": runs}).raise_for_status()


def measure(n_runs: int, body: bytes) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        env = {"MIXOPT_DATABASE_URL": url, "MIXOPT_SEED": "7", "MIXOPT_JOB_PROCESSES": "false"}
        with mixopt_serve(env, ROOT) as (base, proc), httpx.Client(base_url=base, timeout=600) as client:
            exp = client.post("/v1/experiments", json=spec(name="pool")).json()
            seed_runs(client, exp["id"], n_runs)
            before = peak_rss_mib(proc.pid)
            t0 = time.perf_counter()
            r = client.post(f"/v1/experiments/{exp['id']}/suggestions", content=body,
                            headers={"content-type": "application/json"})
            r.raise_for_status()
            if r.status_code == 202:  # past the sync budget: follow the job to its end
                job = r.json()["job"]
                while job["state"] in ("queued", "running"):
                    time.sleep(0.5)
                    job = client.get(f"/v1/jobs/{job['id']}").json()
                assert job["state"] == "succeeded", job
                method, suggested = job["result"]["method"], len(job["result"]["run_ids"])
            else:
                runs = r.json()["runs"]
                method, suggested = runs[0]["method"], len(runs)
            seconds = time.perf_counter() - t0
            after = peak_rss_mib(proc.pid)
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            params_bytes = sum(len(str(v)) for v in conn.scalars(sa.text("SELECT params FROM jobs")))
            pool_bytes = 0
            if sa.inspect(engine).has_table("candidate_pools"):
                pool_bytes = sum(conn.scalars(sa.text("SELECT length(mixtures) + length(fidelities) + length(chosen) "
                                                      "FROM candidate_pools")))
        engine.dispose()
    return {"runs": n_runs, "peak_rss_before_mib": round(before, 1), "peak_rss_mib": round(after, 1),
            "seconds": round(seconds, 2), "method": method, "suggested": suggested,
            "job_params_bytes": params_bytes, "pool_bytes": pool_bytes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--label", default="", help="suffix of the results file (e.g. before, after)")
    parser.add_argument("--runs", type=int, nargs="*", default=list(RUN_COUNTS))
    args = parser.parse_args()
    body = candidates_body()
    rows = [measure(n, body) for n in args.runs]
    result = {"machine": f"{platform.node()} ({os.cpu_count()} CPUs, {platform.machine()})",
              "candidates": N_CANDIDATES, "body_bytes": len(body), "rows": rows}
    OUT.mkdir(exist_ok=True)
    name = "suggest_pool_memory" + (f"-{args.label}" if args.label else "") + ".json"
    (OUT / name).write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'runs':>5} {'peak MiB':>9} {'before':>7} {'s':>7} {'method':>7} {'job params B':>13} {'pool B':>10}")
    for row in rows:
        print(f"{row['runs']:>5} {row['peak_rss_mib']:>9} {row['peak_rss_before_mib']:>7} {row['seconds']:>7} "
              f"{row['method']!s:>7} {row['job_params_bytes']:>13} {row['pool_bytes']:>10}")


if __name__ == "__main__":
    main()
