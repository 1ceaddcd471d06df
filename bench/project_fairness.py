"""A victim's suggestion latency while another project floods the embedded API's job runner with refits.

    python bench/project_fairness.py [--flood 12] [--runs 200] [--victims 5] [--out FILE]

One API (SQLite, in-process jobs, tokens required) serves two projects. The flooder creates ``--flood``
experiments with ``--runs`` runs each and asks a refit of every one; while those refits run, the victim asks
``--victims`` design-phase suggestions (cheap: a few ms of work) one after another and times each. Run it
from another checkout (``cd OLD && PYTHONPATH=$PWD python NEW/bench/project_fairness.py``) for a before.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.settings import Settings
from service.store.tokens import Tokens

DOMAINS = ["web", "code", "papers", "math"]


def spec(name: str) -> dict[str, object]:
    return {"name": name, "domains": [{"name": d} for d in DOMAINS],
            "objective": {"metrics": ["loss/web", "loss/code"], "aggregate": "mean"},
            "fidelities": [{"name": "params", "min": 1e6, "max": 1e9, "target": 1e9}]}


def runs(n: int, seed: int) -> list[dict[str, object]]:
    rng = np.random.default_rng(seed)
    out = []
    for i, w in enumerate(rng.dirichlet(np.ones(len(DOMAINS)), size=n)):
        out.append({"mixture": dict(zip(DOMAINS, w.tolist(), strict=True)), "fidelity": {"params": 1e6},
                    "metrics": {"loss/web": 3 + (w[0] - 0.4) ** 2, "loss/code": 3 + (w[1] - 0.3) ** 2},
                    "cost": 1.0, "client_run_id": f"r{i}"})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flood", type=int, default=12)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--victims", type=int, default=5)
    parser.add_argument("--laws", default="regmix_lightgbm")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(database_url=f"sqlite:///{tmp}/fair.db", auth="required", rate_limit_per_s=0,
                            refit_laws=args.laws, sync_budget_s=600.0)
        app = create_app(settings)
        tokens = Tokens(app.state.mixopt.store.factory)
        flooder = {"authorization": f"Bearer {tokens.create('flooder', ['write']).token}"}
        victim = {"authorization": f"Bearer {tokens.create('victim', ['write']).token}"}
        with TestClient(app) as api:
            exp_ids = []
            for i in range(args.flood):
                exp = api.post("/v1/experiments", json=spec(f"flood-{i}"), headers=flooder).json()
                api.post(f"/v1/experiments/{exp['id']}/runs:batch", json={"runs": runs(args.runs, i)},
                         headers=flooder)
                exp_ids.append(exp["id"])
            target = api.post("/v1/experiments", json=spec("victim"), headers=victim).json()["id"]
            alone = []
            for _ in range(args.victims):
                t0 = time.perf_counter()
                api.post(f"/v1/experiments/{target}/suggestions", json={"count": 1}, headers=victim)
                alone.append(time.perf_counter() - t0)
            jobs = []
            for e in exp_ids:
                r = api.post(f"/v1/experiments/{e}/refits", json={}, headers=flooder)
                assert r.status_code == 202, r.text
                jobs.append(r.json()["job"]["id"])
            flooded = []
            for _ in range(args.victims):
                t0 = time.perf_counter()
                r = api.post(f"/v1/experiments/{target}/suggestions", json={"count": 1}, headers=victim)
                assert r.status_code == 201, r.text
                flooded.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            while any(api.get(f"/v1/jobs/{j}", headers=flooder).json()["state"] not in ("succeeded", "failed")
                      for j in jobs):
                time.sleep(0.2)
            drain_s = time.perf_counter() - t0
    result = {"flood_refits": args.flood, "runs_each": args.runs, "laws": args.laws,
              "victim_alone_s": [round(x, 3) for x in alone], "victim_flooded_s": [round(x, 3) for x in flooded],
              "victim_flooded_median_s": round(statistics.median(flooded), 3),
              "victim_flooded_max_s": round(max(flooded), 3), "flood_drain_after_victims_s": round(drain_s, 1)}
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
