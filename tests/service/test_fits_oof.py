"""A refit stores the selected law's out-of-fold predictions with its scores (the dashboard plots them)."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient

from mixing.evaluation import score
from tests.service.helpers import create, seed_runs, wait_for_job

FAST_LAWS = ["regmix_linear", "data_mixing_law"]


def test_the_selected_fit_keeps_its_out_of_fold_predictions(api: TestClient) -> None:
    exp = create(api)
    seed_runs(api, exp["id"], 40)
    job = api.post(f"/v1/experiments/{exp['id']}/refits", json={"laws": FAST_LAWS, "method": "regmix"}).json()
    assert wait_for_job(api, job["job"]["id"])["state"] == "succeeded"
    fits = api.get(f"/v1/experiments/{exp['id']}/fits", params={"latest": True}).json()["fits"]
    selected = [f for f in fits if f["selected"]]
    assert len(selected) == 1 and all("oof" not in f["scores"] for f in fits if not f["selected"])
    oof = selected[0]["scores"]["oof"]
    runs = api.get(f"/v1/experiments/{exp['id']}/runs", params={"page_size": 100}).json()["runs"]
    # One fidelity: every run is scored, each predicted by a fold that did not train on it.
    assert sorted(oof["observed"]) == pytest.approx(sorted(r["objective"] for r in runs), abs=1e-12)
    assert len(oof["predicted"]) == 40 and np.isfinite(oof["predicted"]).all()
    cv = selected[0]["scores"]["cv"]["from_metrics"]
    again = score(oof["predicted"], oof["observed"])
    assert (again.spearman, again.mae, again.n) == pytest.approx((cv["spearman"], cv["mae"], cv["n"]), rel=1e-9)
