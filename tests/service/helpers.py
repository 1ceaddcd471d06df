"""Request bodies and polling helpers used across API tests."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from fastapi.testclient import TestClient

from service.spec import ExperimentSpec, parse_spec
from tests.mixing.laws.synthetic import cmr_losses

DOMAINS = ["web", "code", "papers", "math"]


def spec(name: str = "exp", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": name,
        "domains": [{"name": "web", "prior": 0.5}, {"name": "code", "prior": 0.2},
                    {"name": "papers", "prior": 0.2}, {"name": "math", "prior": 0.1}],
        "objective": {"metrics": ["loss/web", "loss/code"], "aggregate": "mean", "goal": "minimize"},
        "fidelities": [{"name": "params", "min": 1e6, "max": 1e9, "target": 1e9}],
    }
    body.update(overrides)
    return body


def stored_spec(**overrides: Any) -> ExperimentSpec:
    """:func:`spec` as the store keeps it (without the name), parsed."""
    body = spec(**overrides)
    del body["name"]
    return parse_spec(body)


def create(api: TestClient, **overrides: Any) -> dict[str, Any]:
    r = api.post("/v1/experiments", json=spec(**overrides))
    assert r.status_code == 201, r.text
    return r.json()


def synthetic_losses(w: np.ndarray) -> dict[str, float]:
    """A smooth known law: the mean loss is minimised near web=0.45, code=0.35."""
    web = 3.0 + 2.0 * (w[0] - 0.45) ** 2 + 0.3 * w[3]
    code = 3.2 + 3.0 * (w[1] - 0.35) ** 2 + 0.1 * w[2]
    return {"loss/web": float(web), "loss/code": float(code)}


def seed_runs(api: TestClient, exp_id: str, n: int, params: float = 1e6, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    runs = []
    for i in range(n):
        w = rng.dirichlet(np.ones(len(DOMAINS)))
        runs.append({"mixture": dict(zip(DOMAINS, w.tolist(), strict=True)), "fidelity": {"params": params},
                     "metrics": synthetic_losses(w), "cost": params / 1e6, "client_run_id": f"seed-{seed}-{i}"})
    r = api.post(f"/v1/experiments/{exp_id}/runs:batch", json={"runs": runs})
    assert r.status_code == 200, r.text
    return r.json()["run_ids"]


def state_of(api: TestClient, exp_id: str) -> tuple[int, dict[str, int], int]:
    """(data_version, run counts, number of runs listed) — used to prove a rejected request changed nothing."""
    exp = api.get(f"/v1/experiments/{exp_id}").json()
    listed = api.get(f"/v1/experiments/{exp_id}/runs", params={"page_size": 1000}).json()["runs"]
    return exp["data_version"], exp["run_counts"], len(listed)


def wait_for_job(api: TestClient, job_id: str, polls: int = 1200) -> dict[str, Any]:
    """Poll ``GET /v1/jobs/{id}`` until the job has finished (in-process jobs: a background thread)."""
    for _ in range(polls):
        job = api.get(f"/v1/jobs/{job_id}").json()
        if job["state"] in ("succeeded", "failed"):
            return job  # type: ignore[no-any-return]
        time.sleep(0.05)
    raise TimeoutError(job)



#: The base general loss (the synthetic CMR law's general loss at r = 0 after 1e8 tokens), tolerance and target
#: tokens of :func:`continual_spec`.
CPT_BASE = float(cmr_losses(np.zeros(1), np.array([1e8]))[0, 0])
CPT_TOL, CPT_TARGET = 0.02, 4e9


def continual_spec(name: str = "cpt", **continual: Any) -> dict[str, Any]:
    """A continual-pretraining experiment: general data (web, books) replayed with finance data."""
    return {
        "name": name,
        "domains": [{"name": "web"}, {"name": "books"}, {"name": "finance"}],
        "objective": {"metrics": ["loss/general", "loss/finance"], "aggregate": "mean"},
        "fidelities": [{"name": "tokens", "min": 1e8, "max": 1e10, "target": CPT_TARGET}],
        "continual": {"domain_group": ["finance"], "general_metrics": ["loss/general"],
                      "domain_metrics": ["loss/finance"], "tokens_axis": "tokens", "base_general_loss": CPT_BASE,
                      "tolerance": CPT_TOL, **continual},
    }


def continual_runs(ratios: np.ndarray, tokens: np.ndarray, losses: np.ndarray) -> list[dict[str, Any]]:
    """Run reports of :func:`continual_spec` at these domain ratios, tokens and (general, domain) losses."""
    return [{"mixture": {"web": 0.6 * (1 - r), "books": 0.4 * (1 - r), "finance": r}, "fidelity": {"tokens": t},
             "metrics": {"loss/general": g, "loss/finance": d}, "client_run_id": f"cpt-{i}"}
            for i, (r, t, (g, d)) in enumerate(zip(ratios.tolist(), tokens.tolist(), losses.tolist(), strict=True))]
