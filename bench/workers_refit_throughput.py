"""Refit jobs per minute that one ``mixopt worker`` sustains on 1,000-run, 17-domain experiments.

A real stack on this machine: a scratch PostgreSQL database, a Redis database (default 13), the API on a
loopback port with the Celery dispatcher, and one ``mixopt worker`` process. Each experiment holds 1,000
real RegMix runs (512 + 256 at 1M parameters, 232 at 60M; 17 domains; objective = mean of the 13 Pile
validation losses). One refit job per experiment is queued at once (at most one refit per experiment can
be active); throughput = jobs / (last finish - first start). A job is the whole task: fidelity report of
the chosen laws (5-fold CV), Fit records, then the refreshed recommendation (auto method, selected law).

    python bench/workers_refit_throughput.py [--laws all|name,name] [--experiments 3] [--concurrency 1]

Prints a table and merges its row into ``bench/results/workers_refit_throughput.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import redis
import sqlalchemy as sa

from migrations import upgrade
from runtables.regmix import domain_specs, load_split
from service.api.embedded import embedded_server
from service.settings import Settings

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "workers_refit_throughput.json"
PG_ADMIN = os.environ.get("MIXOPT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("MIXOPT_TEST_REDIS_URL", "redis://127.0.0.1:6379").rstrip("/")


def regmix_runs(data_dir: Path, n: int = 1000) -> tuple[list[str], list[str], list[dict[str, Any]]]:
    parts = [load_split(data_dir, s) for s in ("train_1m", "test_1m", "test_60m")]
    mixtures = pd.concat([p.mixtures for p in parts])
    losses = pd.concat([p.losses for p in parts])
    params = np.concatenate([np.full(len(p.mixtures), p.params) for p in parts])
    domains, metrics = list(mixtures.columns), list(losses.columns)
    runs = []
    for i in range(n):
        w = mixtures.iloc[i].to_numpy(dtype=float)
        runs.append({"mixture": dict(zip(domains, (w / w.sum()).tolist(), strict=True)),
                     "fidelity": {"params": float(params[i])}, "client_run_id": f"regmix-{i}",
                     "metrics": {m: float(v) for m, v in losses.iloc[i].items()}})
    return domains, metrics, runs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--laws", default="all", help="'all' or comma-separated law names (MIXOPT_REFIT_LAWS)")
    ap.add_argument("--experiments", type=int, default=3,
                    help="refit jobs queued at once (one per experiment)")
    ap.add_argument("--concurrency", type=int, default=1, help="worker processes of the one worker")
    ap.add_argument("--redis-db", type=int, default=13)
    ap.add_argument("--data", type=Path, default=Settings().regmix_data)
    args = ap.parse_args()
    laws = "" if args.laws == "all" else args.laws

    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    db = f"mixopt_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{db}"'))
    database_url = PG_ADMIN.rsplit("/", 1)[0] + f"/{db}"
    broker_url = f"{REDIS}/{args.redis_db}"
    redis.Redis.from_url(broker_url).flushdb()
    upgrade(database_url)
    settings = Settings(database_url=database_url, broker_url=broker_url, refit_laws=laws,
                        task_time_limit_s=7200.0)
    env = {**os.environ, "MIXOPT_DATABASE_URL": database_url, "MIXOPT_BROKER_URL": broker_url,
           "MIXOPT_REFIT_LAWS": laws, "MIXOPT_TASK_TIME_LIMIT_S": "7200", "MIXOPT_LOG_JSON": "false",
           "PYTHONPATH": str(REPO)}
    log = Path(tempfile.mkstemp(prefix="bench-worker-", suffix=".log")[1])
    worker = subprocess.Popen([sys.executable, "-c", "from service.cli import main; main()", "worker",
                               "--concurrency", str(args.concurrency)], cwd=REPO, env=env,
                              stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        while " ready." not in log.read_text(errors="replace"):
            if worker.poll() is not None:
                raise RuntimeError(log.read_text())
            time.sleep(0.2)
        domains, metrics, runs = regmix_runs(args.data)
        spec = {"domains": domain_specs(domains), "objective": {"metrics": metrics, "aggregate": "mean"},
                "fidelities": [{"name": "params", "min": 1e6, "max": 6e7, "target": 6e7}]}
        with embedded_server(settings) as url, httpx.Client(base_url=url, timeout=120) as client:
            exp_ids = []
            for i in range(args.experiments):
                exp = client.post("/v1/experiments", json={"name": f"regmix-1000-{i}", **spec}).json()
                r = client.post(f"/v1/experiments/{exp['id']}/runs:batch", json={"runs": runs})
                r.raise_for_status()
                exp_ids.append(exp["id"])
            jobs = [client.post(f"/v1/experiments/{e}/refits", json={}).json()["job"]["id"] for e in exp_ids]
            done = [_wait(client, j) for j in jobs]
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(60)
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))

    failed = [j for j in done if j["state"] != "succeeded"]
    if failed:
        raise SystemExit(f"jobs failed: {[j['error'] for j in failed]}")
    starts = [pd.Timestamp(j["started_at"]) for j in done]
    ends = [pd.Timestamp(j["finished_at"]) for j in done]
    wall = (max(ends) - min(starts)).total_seconds()
    fit_s = [j["result"]["refit"]["fit_s"] for j in done]
    row = {
        "laws": args.laws, "experiments": args.experiments, "concurrency": args.concurrency,
        "runs": len(runs), "domains": len(domains), "metrics": len(metrics),
        "refits_per_minute": round(60.0 * len(done) / wall, 3), "wall_s": round(wall, 1),
        "job_s_mean": round(float(np.mean([j["result"]["duration_s"] for j in done])), 1),
        "fidelity_report_s_mean": round(float(np.mean(fit_s)), 1),
        "selected_law": sorted({j["result"]["refit"]["selected_law"] for j in done}),
        "recommendation_method": sorted({(j["result"]["recommendation"] or {}).get("method", "-")
                                         for j in done}),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, no GPU",
    }
    print(f"{'laws':<40} {'conc':>4} {'jobs':>4} {'refits/min':>10} {'job s':>7} {'report s':>8}  selected")
    print(f"{row['laws'][:40]:<40} {row['concurrency']:>4} {row['experiments']:>4} "
          f"{row['refits_per_minute']:>10} {row['job_s_mean']:>7} {row['fidelity_report_s_mean']:>8}  "
          f"{','.join(row['selected_law'])}")
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results[f"{args.laws}|c{args.concurrency}"] = row
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")


def _wait(client: httpx.Client, job_id: str) -> dict[str, Any]:
    while True:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["state"] in ("succeeded", "failed"):
            return job  # type: ignore[no-any-return]
        time.sleep(1.0)


if __name__ == "__main__":
    main()
