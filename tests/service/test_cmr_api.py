"""``GET /v1/experiments/{id}/cmr`` and the ``continual`` block of the experiment spec, on SQLite and PostgreSQL.

Runs are drawn from the CMR law with known parameters (tests/mixing/laws/synthetic.py): general data
(``web``, ``books``) replayed with domain data (``finance``) at five ratios and four token counts.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from tests.mixing.laws.synthetic import cmr_runs, true_cmr
from tests.service.helpers import CPT_BASE, CPT_TARGET, CPT_TOL, continual_runs, continual_spec

BASE, TOL, TARGET = CPT_BASE, CPT_TOL, CPT_TARGET


def report_runs(api: TestClient, exp_id: str, ratios: np.ndarray, tokens: np.ndarray, losses: np.ndarray) -> None:
    r = api.post(f"/v1/experiments/{exp_id}/runs:batch", json={"runs": continual_runs(ratios, tokens, losses)})
    assert r.status_code == 200, r.text


def create(api: TestClient, body: dict[str, Any]) -> str:
    r = api.post("/v1/experiments", json=body)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def finite_numbers(value: Any) -> bool:
    if isinstance(value, dict):
        return all(finite_numbers(v) for v in value.values())
    if isinstance(value, list):
        return all(finite_numbers(v) for v in value)
    return not isinstance(value, float) or math.isfinite(value)


def test_the_cmr_of_a_continual_experiment_is_found_with_its_interval(api: TestClient) -> None:
    exp_id = create(api, continual_spec())
    assert api.get(f"/v1/experiments/{exp_id}").json()["continual"]["domain_group"] == ["finance"]
    report_runs(api, exp_id, *cmr_runs(0.005, 1))
    r = api.get(f"/v1/experiments/{exp_id}/cmr")
    assert r.status_code == 200, r.text
    body = r.json()
    assert finite_numbers(body)
    truth = true_cmr(BASE + TOL, TARGET)
    assert body["feasible"] and body["cmr"] == pytest.approx(truth, abs=0.05)
    assert body["interval"]["lower"] <= truth <= body["interval"]["upper"] and body["level"] == 0.9
    assert body["general_loss"]["value"] == pytest.approx(BASE + TOL, abs=1e-6)
    assert body["domain_loss"]["lower"] <= body["domain_loss"]["value"] <= body["domain_loss"]["upper"]
    assert body["target_tokens"] == TARGET and body["tolerance_kind"] == "absolute"
    assert set(body["params"]) == {"general", "domain"}
    assert body["params"]["general"]["beta"] == pytest.approx(0.6, rel=0.15)
    assert body["n_runs"] == 20 and body["residual_dof"] == 16
    v = body["validation"]
    assert v["heldout_tokens"] == 8e8 and v["n_heldout"] == 5 and v["heldout_mae"]["general"] < 0.02
    assert v["cv_mae"]["domain"] < 0.02
    assert api.get(f"/v1/experiments/{exp_id}/cmr").json() == body  # the same runs give the same answer


def test_target_tokens_and_a_relative_tolerance_are_honoured(api: TestClient) -> None:
    exp_id = create(api, continual_spec(tolerance=TOL / BASE, tolerance_kind="relative", target_tokens=1.6e10))
    report_runs(api, exp_id, *cmr_runs(0.0, 2))
    body = api.get(f"/v1/experiments/{exp_id}/cmr").json()
    assert body["target_tokens"] == 1.6e10 and body["tolerance_kind"] == "relative"
    assert body["cmr"] == pytest.approx(true_cmr(BASE + TOL, 1.6e10), abs=0.01)


def test_an_experiment_not_declared_continual_answers_409(api: TestClient) -> None:
    body = continual_spec("plain")
    del body["continual"]
    exp_id = create(api, body)
    assert api.get(f"/v1/experiments/{exp_id}").json()["continual"] is None
    r = api.get(f"/v1/experiments/{exp_id}/cmr")
    assert r.status_code == 409 and r.json()["error"]["code"] == "not_continual", r.text
    assert r.json()["error"]["field"] == "continual"


@pytest.mark.parametrize("ratios, tokens", [((0.0, 0.5), (1e8, 2e8)),                  # 4 distinct runs
                                            ((0.0, 0.2, 0.4, 0.6, 0.8), (1e8,))])    # one token count
def test_too_few_distinct_runs_answer_409_not_enough_data(api: TestClient, ratios: tuple[float, ...],
                                                          tokens: tuple[float, ...]) -> None:
    exp_id = create(api, continual_spec())
    r = api.get(f"/v1/experiments/{exp_id}/cmr")
    assert r.status_code == 409 and r.json()["error"]["code"] == "not_enough_data", r.text
    report_runs(api, exp_id, *cmr_runs(0.005, 3, ratios=ratios, tokens=tokens))
    r = api.get(f"/v1/experiments/{exp_id}/cmr")
    assert r.status_code == 409 and r.json()["error"]["code"] == "not_enough_data", r.text


@pytest.mark.parametrize("change, field", [
    ({"domain_group": ["legal"]}, "continual.domain_group[0]"),
    ({"domain_group": ["web", "books", "finance"]}, "continual.domain_group"),
    ({"domain_group": ["finance", "finance"]}, "continual.domain_group"),
    ({"general_metrics": ["loss/web"]}, "continual.general_metrics[0]"),
    ({"domain_metrics": ["loss/finance", "perplexity"]}, "continual.domain_metrics[1]"),
    ({"tokens_axis": "params"}, "continual.tokens_axis"),
    ({"tolerance": -0.1}, "continual.tolerance"),
    ({"tolerance": "0.1"}, "continual.tolerance"),
    ({"tolerance_kind": "percent"}, "continual.tolerance_kind"),
    ({"target_tokens": 0}, "continual.target_tokens"),
    ({"base_general_loss": 1e13}, "continual.base_general_loss"),
    ({"domain_group": []}, "continual.domain_group"),
])
def test_a_bad_continual_block_is_a_422_naming_the_field_and_stores_nothing(
        api: TestClient, change: dict[str, Any], field: str) -> None:
    before = api.get("/v1/experiments").json()["experiments"]
    r = api.post("/v1/experiments", json=continual_spec(**change))
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == field
    assert api.get("/v1/experiments").json()["experiments"] == before


def test_a_tokens_axis_that_does_not_count_tokens_is_refused(api: TestClient) -> None:
    body = continual_spec()
    body["fidelities"] = [{"name": "tokens", "min": 0, "max": 1e10, "target": TARGET}]
    r = api.post("/v1/experiments", json=body)
    assert r.status_code == 422 and r.json()["error"]["field"] == "continual.tokens_axis", r.text
