"""Every validation rule of the foundation, on every endpoint that takes mixtures, fidelities or metrics.

Each rejected request must answer 422 with the error code and the ``field`` path of the culprit, and leave
everything stored as it was. tests/service covers single run reports; this module runs the same rules
through batch imports, suggestion candidates, predictions, experiment updates and online observations, and
adds malformed and mistyped bodies, unicode domain names, 256-domain experiments and oversized payloads.
"""

from __future__ import annotations

import json
import math
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.settings import Settings
from tests.service.helpers import spec, state_of

NAN, INF = math.nan, math.inf
GOOD_MIX = {"web": 0.4, "code": 0.3, "papers": 0.2, "math": 0.1}
GOOD_METRICS = {"loss/web": 3.1, "loss/code": 3.3}
#: web >= 0.1, code <= 0.5, 0.05 <= papers <= 1e9 tokens x 2 epochs / 1e10 target tokens = 0.2.
BOUNDED_DOMAINS = [
    {"name": "web", "prior": 0.5, "min_weight": 0.1},
    {"name": "code", "max_weight": 0.5},
    {"name": "papers", "tokens_available": 1e9, "min_weight": 0.05},
    {"name": "math"},
]
BUDGET = {"target_tokens": 1e10, "max_epochs": 2}


def _with(base: dict[str, Any], **change: Any) -> dict[str, Any]:
    """``base`` with keys replaced; a value of ``None`` removes the key."""
    out = {**base, **change}
    return {k: v for k, v in out.items() if v is not None}


#: (mixture, path below the mixture's own field ("" = the mixture itself), error code)
MIXTURE_RULES = [
    pytest.param(_with(GOOD_MIX, web=0.5), "", "invalid_mixture", id="sum-above-1"),
    pytest.param(_with(GOOD_MIX, math=0.1 - 2e-6), "", "invalid_mixture", id="sum-off-by-2e-6"),
    pytest.param(_with(GOOD_MIX, code=-0.1, web=0.8), ".code", "invalid_mixture", id="negative"),
    pytest.param(_with(GOOD_MIX, math=None, tea=0.1), ".tea", "invalid_mixture", id="unknown-domain"),
    pytest.param(_with(GOOD_MIX, math=None), ".math", "invalid_mixture", id="missing-domain"),
    pytest.param(_with(GOOD_MIX, web=NAN), ".web", "invalid_input", id="nan"),
    pytest.param(_with(GOOD_MIX, web=INF), ".web", "invalid_input", id="infinite"),
    pytest.param(_with(GOOD_MIX, web="0.4"), ".web", "invalid_input", id="numeric-string-weight"),
    pytest.param(
        _with(GOOD_MIX, web=True, code=0, papers=0, math=0), ".web", "invalid_input", id="bool-weight"
    ),
    pytest.param([0.4, 0.3, 0.2, 0.1], "", "invalid_input", id="list-not-object"),
]

#: (fidelity, path below the fidelity's field, error code)
FIDELITY_RULES = [
    pytest.param({"params": 1e12}, ".params", "invalid_fidelity", id="above-range"),
    pytest.param({"params": 1.0}, ".params", "invalid_fidelity", id="below-range"),
    pytest.param({"params": 1e6, "tokens": 1}, ".tokens", "invalid_fidelity", id="unknown-axis"),
    pytest.param({"params": NAN}, ".params", "invalid_input", id="nan"),
    pytest.param({"params": "big"}, ".params", "invalid_input", id="string"),
    pytest.param({"params": 1e300}, ".params", "invalid_input", id="beyond-1e24"),
]

#: (metrics, path below "metrics", error code) for completed runs
METRIC_RULES = [
    pytest.param(_with(GOOD_METRICS, **{"loss/code": NAN}), ".loss/code", "invalid_input", id="nan"),
    pytest.param(_with(GOOD_METRICS, **{"loss/code": -INF}), ".loss/code", "invalid_input", id="infinite"),
    pytest.param(_with(GOOD_METRICS, **{"loss/code": None}), ".loss/code", "missing_metric", id="missing"),
    pytest.param(_with(GOOD_METRICS, **{"loss/code": [1]}), ".loss/code", "invalid_input", id="list"),
    pytest.param(_with(GOOD_METRICS, **{"loss/code": 1e308}), ".loss/code", "invalid_input", id="1e308"),
    pytest.param(_with(GOOD_METRICS, **{"loss/code": -2e12}), ".loss/code", "invalid_input", id="below-minus-1e12"),
]


def _run(client_run_id: str, params: float = 1e6) -> dict[str, Any]:
    return {
        "mixture": GOOD_MIX,
        "fidelity": {"params": params},
        "metrics": GOOD_METRICS,
        "client_run_id": client_run_id,
    }


def _post(api: TestClient, url: str, body: Any) -> Any:
    """POST ``body`` as JSON, NaN and Infinity included (they are what a careless client sends)."""
    return api.post(url, content=json.dumps(body), headers={"content-type": "application/json"})


def _rejected(r: Any, field: str, code: str) -> None:
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert (err["field"], err["code"]) == (field, code), err
    assert err["message"]


@pytest.fixture
def exp(shared_api: TestClient) -> dict[str, Any]:
    """A fresh bounded experiment with two completed runs, so 'unchanged' compares against real data."""
    body = spec(name=f"m-{uuid.uuid4().hex[:10]}", domains=BOUNDED_DOMAINS, budget=BUDGET)
    r = shared_api.post("/v1/experiments", json=body)
    assert r.status_code == 201, r.text
    runs = [_run(f"s{i}") for i in range(2)]
    runs[1]["mixture"] = {"web": 0.25, "code": 0.25, "papers": 0.2, "math": 0.3}
    imported = shared_api.post(f"/v1/experiments/{r.json()['id']}/runs:batch", json={"runs": runs})
    assert imported.status_code == 200, imported.text
    return r.json()


def _batch_with(bad: dict[str, Any]) -> dict[str, Any]:
    """Three good new runs and ``bad`` at index 2 (so the path must name the right item)."""
    runs = [_run(f"b{i}", 1e7) for i in range(4)]
    runs[2] = {**runs[2], **bad}
    return {"runs": runs}


# ---------------------------------------------------------------------------------- mixtures, per endpoint
@pytest.mark.parametrize(("mixture", "sub", "code"), MIXTURE_RULES)
def test_mixture_rules_in_batch_imports(
    shared_api: TestClient, exp: dict, mixture: Any, sub: str, code: str
) -> None:
    before = state_of(shared_api, exp["id"])
    r = _post(shared_api, f"/v1/experiments/{exp['id']}/runs:batch", _batch_with({"mixture": mixture}))
    _rejected(r, f"runs[2].mixture{sub}", code)
    assert state_of(shared_api, exp["id"]) == before


@pytest.mark.parametrize(("mixture", "sub", "code"), MIXTURE_RULES)
def test_mixture_rules_in_suggestion_candidates(
    shared_api: TestClient, exp: dict, mixture: Any, sub: str, code: str
) -> None:
    before = state_of(shared_api, exp["id"])
    r = _post(
        shared_api,
        f"/v1/experiments/{exp['id']}/suggestions",
        {"count": 1, "candidates": [{"mixture": GOOD_MIX}, {"mixture": mixture}]},
    )
    _rejected(r, f"candidates[1].mixture{sub}", code)
    assert state_of(shared_api, exp["id"]) == before


@pytest.mark.parametrize(("mixture", "sub", "code"), MIXTURE_RULES)
def test_mixture_rules_in_predictions(
    shared_api: TestClient, exp: dict, mixture: Any, sub: str, code: str
) -> None:
    before = state_of(shared_api, exp["id"])
    r = _post(shared_api, f"/v1/experiments/{exp['id']}/predict", {"mixtures": [GOOD_MIX, mixture]})
    _rejected(r, f"mixtures[1]{sub}", code)
    assert state_of(shared_api, exp["id"]) == before


@pytest.mark.parametrize("endpoint", ["runs", "runs:batch"])
def test_the_sum_tolerance_is_1e6_and_mixtures_are_stored_rescaled(
    shared_api: TestClient, exp: dict, endpoint: str
) -> None:
    within = _with(GOOD_MIX, math=0.1 + 5e-7)
    body = {"mixture": within, "fidelity": {"params": 1e6}, "metrics": GOOD_METRICS, "client_run_id": "tol"}
    r = _post(
        shared_api,
        f"/v1/experiments/{exp['id']}/{endpoint}",
        body if endpoint == "runs" else {"runs": [body]},
    )
    assert r.status_code in (200, 201), r.text
    run = shared_api.get(f"/v1/experiments/{exp['id']}/runs", params={"page_size": 10}).json()["runs"][-1]
    assert run["client_run_id"] == "tol" and math.fsum(run["mixture"].values()) == pytest.approx(1, abs=1e-15)


# ------------------------------------------------------------------------- bounds on suggested points
@pytest.mark.parametrize(
    ("mixture", "domain"),
    [
        pytest.param({"web": 0.05, "code": 0.45, "papers": 0.2, "math": 0.3}, "web", id="below-min-weight"),
        pytest.param({"web": 0.2, "code": 0.6, "papers": 0.1, "math": 0.1}, "code", id="above-max-weight"),
        pytest.param({"web": 0.3, "code": 0.2, "papers": 0.3, "math": 0.2}, "papers", id="above-epoch-cap"),
    ],
)
def test_candidates_breaking_a_bound_are_rejected(
    shared_api: TestClient, exp: dict, mixture: dict, domain: str
) -> None:
    before = state_of(shared_api, exp["id"])
    r = shared_api.post(
        f"/v1/experiments/{exp['id']}/suggestions",
        json={"count": 1, "candidates": [{"mixture": GOOD_MIX}, {"mixture": mixture}]},
    )
    _rejected(r, f"candidates[1].mixture.{domain}", "constraint_violation")
    assert state_of(shared_api, exp["id"]) == before


# --------------------------------------------------------------------------------- fidelity, per endpoint
@pytest.mark.parametrize(("fidelity", "sub", "code"), FIDELITY_RULES)
@pytest.mark.parametrize(
    ("endpoint", "body", "field"),
    [
        ("runs:batch", lambda f: _batch_with({"fidelity": f}), "runs[2].fidelity"),
        ("suggestions", lambda f: {"count": 1, "fidelity": f}, "fidelity"),
        (
            "suggestions",
            lambda f: {"count": 1, "candidates": [{"mixture": GOOD_MIX, "fidelity": f}]},
            "candidates[0].fidelity",
        ),
        ("predict", lambda f: {"mixtures": [GOOD_MIX], "fidelity": f}, "fidelity"),
    ],
    ids=["batch", "suggestions", "candidates", "predict"],
)
def test_fidelity_rules(
    shared_api: TestClient,
    exp: dict,
    fidelity: dict,
    sub: str,
    code: str,
    endpoint: str,
    body: Any,
    field: str,
) -> None:
    before = state_of(shared_api, exp["id"])
    _rejected(
        _post(shared_api, f"/v1/experiments/{exp['id']}/{endpoint}", body(fidelity)), f"{field}{sub}", code
    )
    assert state_of(shared_api, exp["id"]) == before


def test_a_batch_run_without_a_fidelity_needs_every_axis(shared_api: TestClient, exp: dict) -> None:
    r = _post(shared_api, f"/v1/experiments/{exp['id']}/runs:batch", _batch_with({"fidelity": {}}))
    _rejected(r, "runs[2].fidelity.params", "invalid_fidelity")


# ---------------------------------------------------------------------------------------------- metrics
@pytest.mark.parametrize(("metrics", "sub", "code"), METRIC_RULES)
@pytest.mark.parametrize("endpoint", ["runs", "runs:batch"])
def test_metric_rules(
    shared_api: TestClient, exp: dict, metrics: dict, sub: str, code: str, endpoint: str
) -> None:
    before = state_of(shared_api, exp["id"])
    if endpoint == "runs":
        body: dict[str, Any] = {"mixture": GOOD_MIX, "fidelity": {"params": 1e6}, "metrics": metrics}
        field = f"metrics{sub}"
    else:
        body, field = _batch_with({"metrics": metrics}), f"runs[2].metrics{sub}"
    _rejected(_post(shared_api, f"/v1/experiments/{exp['id']}/{endpoint}", body), field, code)
    assert state_of(shared_api, exp["id"]) == before


@pytest.mark.parametrize(
    ("change", "field"),
    [
        pytest.param({"cost": NAN}, "cost", id="nan-cost"),
        pytest.param({"cost": "cheap"}, "cost", id="string-cost"),
        pytest.param({"cost": 1e300}, "cost", id="cost-beyond-1e30"),
        pytest.param({"state": "suggested"}, "state", id="state-suggested"),
        pytest.param({"client_run_id": ""}, "client_run_id", id="empty-client-run-id"),
        pytest.param({"client_run_id": "x" * 201}, "client_run_id", id="long-client-run-id"),
        pytest.param({"error": "e" * 10_001}, "error", id="long-error"),
        pytest.param({"metrics": [3.1, 3.3]}, "metrics", id="metrics-list"),
        pytest.param({"surprise": 1}, "surprise", id="unknown-field"),
    ],
)
def test_other_fields_of_batch_runs(shared_api: TestClient, exp: dict, change: dict, field: str) -> None:
    before = state_of(shared_api, exp["id"])
    _rejected(
        _post(shared_api, f"/v1/experiments/{exp['id']}/runs:batch", _batch_with(change)),
        f"runs[2].{field}",
        "invalid_input",
    )
    assert state_of(shared_api, exp["id"]) == before


def test_one_client_run_id_is_one_run_across_single_and_batch_reports(
    shared_api: TestClient, exp: dict
) -> None:
    body = {
        "mixture": GOOD_MIX,
        "fidelity": {"params": 1e8},
        "metrics": GOOD_METRICS,
        "client_run_id": "once",
    }
    first = shared_api.post(f"/v1/experiments/{exp['id']}/runs", json=body)
    assert first.status_code == 201
    again = shared_api.post(
        f"/v1/experiments/{exp['id']}/runs:batch",
        json={"runs": [body, {**body, "client_run_id": "s0", "fidelity": {"params": 1e6}}]},
    )
    assert again.json() == {
        "created": 0,
        "existing": 2,
        "updated": 0,
        "run_ids": [first.json()["id"], again.json()["run_ids"][1]],
    }
    assert state_of(shared_api, exp["id"])[1]["completed"] == 3


@pytest.mark.parametrize("endpoint", ["runs", "runs:batch"])
def test_a_completion_retried_after_progress_reports_is_a_no_op(
    shared_api: TestClient, exp: dict, endpoint: str
) -> None:
    """Regression: the stored metrics (progress merged with the losses) differed from the retried report's
    own, so a client retrying its completion after a lost response got 409 ``run_final``."""
    url = f"/v1/experiments/{exp['id']}/runs"
    progress = {**_run("p1"), "state": "running", "metrics": {"progress/tokens": 1e9}}
    assert shared_api.post(url, json=progress).status_code == 201
    done = _run("p1")
    assert shared_api.post(url, json=done).json()["state"] == "completed"
    before = state_of(shared_api, exp["id"])
    retry = shared_api.post(f"{url}:batch" if endpoint == "runs:batch" else url,
                            json={"runs": [done]} if endpoint == "runs:batch" else done)
    assert retry.status_code == 200, retry.text
    assert state_of(shared_api, exp["id"]) == before
    stored = [r for r in shared_api.get(url).json()["runs"] if r["client_run_id"] == "p1"]
    assert [r["metrics"] for r in stored] == [{"progress/tokens": 1e9, **GOOD_METRICS}]


# -------------------------------------------------------------------------------- experiment create/patch
def _experiment_count(api: TestClient) -> int:
    return len(api.get("/v1/experiments", params={"page_size": 1000}).json()["experiments"])


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        pytest.param({"name": "n" * 201}, "name", id="long-name"),
        pytest.param({"name": "tab\there"}, "name", id="control-char-name"),
        pytest.param({"domains": [{"name": f"d{i}"} for i in range(1025)]}, "domains", id="1025-domains"),
        pytest.param({"domains": [{"name": "数学"}, {"name": "数学"}]}, "domains", id="duplicate-unicode"),
        pytest.param(
            {"domains": [{"name": "a\nb"}, {"name": "c"}]}, "domains[0].name", id="newline-in-domain"
        ),
        pytest.param(
            {"domains": [{"name": "a", "tokens_available": 0}, {"name": "b"}]},
            "domains[0].tokens_available",
            id="zero-tokens",
        ),
        pytest.param(
            {"domains": [{"name": "a", "max_weight": 1.5}, {"name": "b"}]},
            "domains[0].max_weight",
            id="max-weight-above-1",
        ),
        pytest.param(
            {"fidelities": [{"name": "p", "min": 1, "max": 10, "target": 5, "default": 11}]},
            "fidelities[0]",
            id="default-outside-range",
        ),
        pytest.param(
            {"fidelities": [{"name": "p", "min": 1, "max": 2, "target": 1}] * 2},
            "fidelities",
            id="duplicate-axis",
        ),
        pytest.param({"budget": {"target_tokens": -1}}, "budget.target_tokens", id="negative-budget"),
        pytest.param(
            {"objective": {"metrics": ["x", "y"], "aggregate": "weighted_mean", "weights": [0, 0]}},
            "objective",
            id="zero-weights",
        ),
        pytest.param({"objective": {"metrics": ["x", "x"]}}, "objective", id="duplicate-metrics"),
        pytest.param({"metadata": {"k": 1}}, "metadata.k", id="non-string-metadata"),
        pytest.param({"domains": "web,code"}, "domains", id="domains-string"),
        # Magnitudes (README): beyond them the objective, the prior or the fidelity scale degenerate.
        pytest.param(
            {"objective": {"metrics": ["x", "y"], "aggregate": "weighted_mean", "weights": [1e308, 1e308]}},
            "objective.weights[0]",
            id="weights-that-overflow-their-sum",
        ),
        pytest.param(
            {"domains": [{"name": "a", "prior": 1e308}, {"name": "b", "prior": 1e308}]},
            "domains[0].prior",
            id="prior-1e308",
        ),
        pytest.param(
            {"domains": [{"name": "a", "tokens_available": 5e-324}, {"name": "b"}]},
            "domains[0].tokens_available",
            id="denormal-token-cap",
        ),
        pytest.param({"budget": {"target_tokens": 1e30}}, "budget.target_tokens", id="target-tokens-1e30"),
        pytest.param({"budget": {"max_epochs": 1e-300}}, "budget.max_epochs", id="tiny-max-epochs"),
        pytest.param(
            {"fidelities": [{"name": "p", "min": 1, "max": 1e300, "target": 1e300}]},
            "fidelities[0].max",
            id="axis-beyond-1e24",
        ),
        pytest.param({"search": {"default_method": "nope"}}, "search.default_method", id="unknown-default-method"),
    ],
)
def test_invalid_experiment_specs(shared_api: TestClient, overrides: dict, field: str) -> None:
    before = _experiment_count(shared_api)
    r = shared_api.post("/v1/experiments", json=spec(**{"name": f"bad-{uuid.uuid4().hex[:8]}", **overrides}))
    assert r.status_code == 422 and r.json()["error"]["field"] == field, r.text
    assert _experiment_count(shared_api) == before


@pytest.mark.parametrize(
    ("patch", "field", "code"),
    [
        pytest.param(
            {"budget": {"target_tokens": 1e13, "max_epochs": 1}},
            "domains",
            "infeasible_constraints",
            id="epoch-cap-leaves-no-mixture",
        ),
        pytest.param({"state": "deleted"}, "state", "invalid_input", id="unknown-state"),
        pytest.param({"name": ""}, "name", "invalid_input", id="empty-name"),
        pytest.param({"domains": [{"name": "x"}]}, "domains", "invalid_input", id="domains-are-immutable"),
        pytest.param(
            {"search": {"initial_runs": 0}}, "search.initial_runs", "invalid_input", id="zero-initial-runs"
        ),
        pytest.param({"budget": {"max_epochs": NAN}}, "budget.max_epochs", "invalid_input", id="nan-epochs"),
        pytest.param(
            {"search": {"default_method": "nope"}},
            "search.default_method",
            "invalid_input",
            id="unknown-default-method",
        ),
        pytest.param(
            {"budget": {"target_tokens": 5e-324, "max_epochs": 1}},
            "budget.target_tokens",
            "invalid_input",
            id="denormal-target-tokens",
        ),
    ],
)
def test_invalid_patches_change_nothing(
    shared_api: TestClient, exp: dict, patch: dict, field: str, code: str
) -> None:
    url = f"/v1/experiments/{exp['id']}"
    before = shared_api.get(url).json()
    r = shared_api.patch(url, content=json.dumps(patch), headers={"content-type": "application/json"})
    _rejected(r, field, code)
    assert shared_api.get(url).json() == before


# ------------------------------------------------------------------------------------- online sessions
@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param(
            {"step": 10, "losses": {"web": NAN, "code": 1, "papers": 1, "math": 1}}, "losses.web", id="nan"
        ),
        pytest.param(
            {"step": 10, "losses": {"web": INF, "code": 1, "papers": 1, "math": 1}}, "losses.web", id="inf"
        ),
        pytest.param(
            {"step": "ten", "losses": {"web": 1, "code": 1, "papers": 1, "math": 1}}, "step", id="step-str"
        ),
        pytest.param({"step": 10, "losses": [1, 1, 1, 1]}, "losses", id="losses-list"),
        pytest.param(
            {"step": 10, "losses": {"web": -1e308, "code": 1, "papers": 1, "math": 1}}, "losses.web", id="1e308"
        ),
        pytest.param(
            {"step": 10.0, "losses": {"web": 1, "code": 1, "papers": 1, "math": 1}}, "step", id="step-float"
        ),
        pytest.param(
            {"step": 10, "losses": {"web": 1, "code": 1, "papers": 1, "math": 1}, "split": "test"},
            "split",
            id="unknown-split",
        ),
    ],
)
def test_invalid_observations_change_nothing(
    shared_api: TestClient, exp: dict, body: dict, field: str
) -> None:
    base = f"/v1/experiments/{exp['id']}/online-sessions"
    ses = shared_api.post(base, json={"method": "stratified"}).json()
    before = shared_api.get(f"{base}/{ses['id']}").json()
    _rejected(_post(shared_api, f"{base}/{ses['id']}/observations", body), field, "invalid_input")
    assert shared_api.get(f"{base}/{ses['id']}").json() == before


@pytest.mark.parametrize(
    ("weights", "field"),
    [
        pytest.param(
            {"web": 0.5, "code": 0.5, "papers": 0, "tea": 0}, "initial_weights.tea", id="unknown-domain"
        ),
        pytest.param({"web": NAN, "code": 0.5, "papers": 0.5, "math": 0}, "initial_weights.web", id="nan"),
        pytest.param(
            {"web": 1e308, "code": 1e308, "papers": 1, "math": 1}, "initial_weights.web", id="1e308"
        ),
    ],
)
def test_invalid_initial_weights_create_no_session(
    shared_api: TestClient, exp: dict, weights: dict, field: str
) -> None:
    base = f"/v1/experiments/{exp['id']}/online-sessions"
    r = _post(shared_api, base, {"method": "static", "initial_weights": weights})
    assert r.status_code == 422 and r.json()["error"]["field"] == field, r.text
    assert shared_api.get(base).json()["sessions"] == []


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        pytest.param({"method": "doremi", "hyperparameters": {"eta": 1e308}, "reference_losses": dict.fromkeys(
            GOOD_MIX, 0.0)}, "eta", "invalid_hyperparameter", id="doremi-eta-1e308"),
        pytest.param({"method": "doremi", "reference_losses": {**dict.fromkeys(GOOD_MIX, 0.0), "web": -1e308}},
                     "reference_losses.web", "invalid_input", id="reference-loss-1e308"),
        pytest.param({"method": "aioli", "hyperparameters": {"probe_steps": 1e300}}, "probe_steps",
                     "invalid_hyperparameter", id="aioli-probe-steps-1e300"),
    ],
)
def test_online_sessions_that_would_compute_nan_are_refused(
    shared_api: TestClient, exp: dict, body: dict, field: str, code: str
) -> None:
    """Regression: DoReMi's step ``eta · excess`` overflowed, SQLite stored NaN weights and served null,
    PostgreSQL refused the NaN with a 422 naming no field."""
    base = f"/v1/experiments/{exp['id']}/online-sessions"
    _rejected(_post(shared_api, base, body), field, code)
    assert shared_api.get(base).json()["sessions"] == []


# ------------------------------------------------------------------------------- strict JSON number types
#: What lax parsing used to take for each kind of field: numeric strings, booleans as numbers, integral
#: floats as integers, numbers as booleans and text.
WRONG_TYPES: dict[str, list[Any]] = {"int": ["2", True, 2.0], "float": ["0.4", True, False],
                                     "bool": [1, "true"], "str": [1, True]}
_RUN = {"mixture": GOOD_MIX, "fidelity": {"params": 1e6}, "metrics": GOOD_METRICS, "cost": 1.0}
_SPEC = spec(domains=BOUNDED_DOMAINS, budget=BUDGET, search={"initial_runs": 5},
             objective={"metrics": ["loss/web", "loss/code"], "aggregate": "weighted_mean", "weights": [1, 2]})
#: (method, endpoint below the experiment ("" = the experiment, "/" = create one), a valid body, the path
#: of one typed field in it, its kind). Every int, float and bool field of every request schema.
TYPED_FIELDS = [
    ("POST", "/", _SPEC, ["domains", 0, "prior"], "float"),
    ("POST", "/", _SPEC, ["domains", 0, "min_weight"], "float"),
    ("POST", "/", _SPEC, ["domains", 1, "max_weight"], "float"),
    ("POST", "/", _SPEC, ["domains", 2, "tokens_available"], "float"),
    ("POST", "/", _SPEC, ["objective", "weights", 1], "float"),
    ("POST", "/", _SPEC, ["fidelities", 0, "min"], "float"),
    ("POST", "/", _SPEC, ["fidelities", 0, "target"], "float"),
    ("POST", "/", _SPEC, ["budget", "target_tokens"], "float"),
    ("POST", "/", _SPEC, ["budget", "max_epochs"], "float"),
    ("POST", "/", _SPEC, ["search", "initial_runs"], "int"),
    ("POST", "/", _SPEC, ["search", "default_method"], "str"),
    ("POST", "/", _SPEC, ["name"], "str"),
    ("PATCH", "", {"search": {"initial_runs": 3}}, ["search", "initial_runs"], "int"),
    ("PATCH", "", {"budget": BUDGET}, ["budget", "max_epochs"], "float"),
    ("POST", "/runs", _RUN, ["mixture", "web"], "float"),
    ("POST", "/runs", _RUN, ["fidelity", "params"], "float"),
    ("POST", "/runs", _RUN, ["metrics", "loss/web"], "float"),
    ("POST", "/runs", _RUN, ["cost"], "float"),
    ("POST", "/runs:batch", {"runs": [_RUN]}, ["runs", 0, "cost"], "float"),
    ("POST", "/suggestions", {"count": 1}, ["count"], "int"),
    ("POST", "/suggestions", {"count": 1, "seed": 3}, ["seed"], "int"),
    ("POST", "/suggestions", {"count": 1, "method": "design"}, ["method"], "str"),
    ("POST", "/suggestions", {"count": 1, "fidelity": {"params": 1e6}}, ["fidelity", "params"], "float"),
    ("POST", "/suggestions", {"count": 1, "candidates": [{"mixture": {**GOOD_MIX, "web": 0.3, "math": 0.2}}]},
     ["candidates", 0, "mixture", "math"], "float"),
    ("POST", "/predict", {"mixtures": [GOOD_MIX], "seed": 3}, ["seed"], "int"),
    ("POST", "/predict", {"mixtures": [GOOD_MIX]}, ["mixtures", 0, "code"], "float"),
    ("POST", "/recommendation", {"candidates": [GOOD_MIX], "seed": 3}, ["seed"], "int"),
    ("POST", "/refits", {"force": False}, ["force"], "bool"),
    ("PUT", "/reoptimization", {"enabled": True, "every_runs": 5}, ["enabled"], "bool"),
    ("PUT", "/reoptimization", {"enabled": True, "every_runs": 5}, ["every_runs"], "int"),
    ("PUT", "/reoptimization", {"every_minutes": 5.0, "ready_suggestions": 1}, ["every_minutes"], "float"),
    ("PUT", "/reoptimization", {"every_minutes": 5.0, "ready_suggestions": 1}, ["ready_suggestions"], "int"),
    ("POST", "/online-sessions", {"method": "static", "initial_weights": GOOD_MIX},
     ["initial_weights", "web"], "float"),
    ("POST", "/online-sessions", {"method": "doremi", "reference_losses": dict.fromkeys(GOOD_MIX, 3.0)},
     ["reference_losses", "math"], "float"),
    ("POST", "/online-sessions/{sid}/observations", {"step": 5, "losses": dict.fromkeys(GOOD_MIX, 3.0)},
     ["step"], "int"),
    ("POST", "/online-sessions/{sid}/observations", {"step": 5, "losses": dict.fromkeys(GOOD_MIX, 3.0)},
     ["losses", "code"], "float"),
]


def _replaced(body: Any, path: list[str | int], value: Any) -> Any:
    """A copy of ``body`` with the value at ``path`` replaced."""
    out = json.loads(json.dumps(body))
    parent = out
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    return out


def _path(path: list[str | int]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


@pytest.mark.parametrize(
    ("method", "endpoint", "body", "path", "wrong"),
    [
        pytest.param(method, endpoint, body, path, wrong, id=f"{method}{endpoint}-{_path(path)}-{wrong!r}")
        for method, endpoint, body, path, kind in TYPED_FIELDS
        for wrong in WRONG_TYPES[kind]
    ],
)
def test_every_typed_field_takes_only_its_json_type(
    shared_api: TestClient, exp: dict, method: str, endpoint: str, body: dict, path: list, wrong: Any
) -> None:
    """Regression: ``count`` took ``"2"`` and ``true``, a prior ``"0.4"``, while the README promises JSON
    numbers. The wrong type is a 422 naming the field and changes nothing; the valid body passes (a
    prediction may lack data), so the matrix tests the one field."""
    url = "/v1/experiments" if endpoint == "/" else f"/v1/experiments/{exp['id']}{endpoint}"
    if "{sid}" in url:
        created = shared_api.post(f"/v1/experiments/{exp['id']}/online-sessions", json={"method": "stratified"})
        url = url.replace("{sid}", created.json()["id"])
    if endpoint == "/":
        body = {**body, "name": f"typed-{uuid.uuid4().hex[:8]}"}
    before = (_experiment_count(shared_api), state_of(shared_api, exp["id"]),
              shared_api.get(f"/v1/experiments/{exp['id']}").json())
    r = shared_api.request(method, url, json=_replaced(body, path, wrong))
    _rejected(r, _path(path), "invalid_input")
    assert (_experiment_count(shared_api), state_of(shared_api, exp["id"]),
            shared_api.get(f"/v1/experiments/{exp['id']}").json()) == before
    ok = shared_api.request(method, url, json=body)
    assert ok.status_code < 300 or ok.json()["error"]["code"] == "not_enough_data", ok.text


# ---------------------------------------------------------------------- malformed and mistyped bodies
POST_ENDPOINTS = ["runs", "runs:batch", "suggestions", "predict", "online-sessions", "refits"]
BAD_BODIES = [
    (b"{not json", "malformed_json", "syntax"),
    (b'{"count": 1,}', "malformed_json", "trailing-comma"),
    (b"[1, 2]", "invalid_input", "array"),
    (b'"text"', "invalid_input", "string"),
    (b"null", "invalid_input", "null"),
]


@pytest.mark.parametrize(
    ("endpoint", "raw", "code"),
    [
        pytest.param(endpoint, raw, code, id=f"{endpoint}-{name}")
        for endpoint in POST_ENDPOINTS
        for raw, code, name in BAD_BODIES
        if not (endpoint == "refits" and raw == b"null")  # the refit body is optional: null means defaults
    ],
)
def test_malformed_and_mistyped_bodies(
    shared_api: TestClient, exp: dict, endpoint: str, raw: bytes, code: str
) -> None:
    before = state_of(shared_api, exp["id"])
    r = shared_api.post(
        f"/v1/experiments/{exp['id']}/{endpoint}", content=raw, headers={"content-type": "application/json"}
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == code, r.text
    assert r.json()["error"]["field"] == "body"
    assert state_of(shared_api, exp["id"]) == before


def test_malformed_experiment_patch_and_create(shared_api: TestClient, exp: dict) -> None:
    before = _experiment_count(shared_api)
    for method, url in (("POST", "/v1/experiments"), ("PATCH", f"/v1/experiments/{exp['id']}")):
        r = shared_api.request(
            method, url, content=b'{"name": "x"', headers={"content-type": "application/json"}
        )
        assert r.status_code == 422 and r.json()["error"] == {
            **r.json()["error"],
            "code": "malformed_json",
            "field": "body",
        }
    assert _experiment_count(shared_api) == before


# ------------------------------------------------------------------------------ unicode and many domains
UNICODE_DOMAINS = ["数学", "código", "🧪 lab", "עברית", "e\u0301cole", "\u00e9cole", "Ωmega/β"]


def test_unicode_domain_names_round_trip_exactly(shared_api: TestClient) -> None:
    """NFC and NFD spellings are different names; every byte of each comes back as sent."""
    body = spec(
        name=f"ユニコード-{uuid.uuid4().hex[:6]}",
        domains=[{"name": d} for d in UNICODE_DOMAINS],
        objective={"metrics": ["loss/数学", "loss/🧪 lab"]},
        fidelities=[],
    )
    exp = shared_api.post("/v1/experiments", json=body).json()
    assert [d["name"] for d in exp["domains"]] == UNICODE_DOMAINS and exp["name"] == body["name"]
    mixture = dict(zip(UNICODE_DOMAINS, np.full(7, 1 / 7).tolist(), strict=True))
    r = shared_api.post(
        f"/v1/experiments/{exp['id']}/runs",
        json={
            "mixture": mixture,
            "metrics": {"loss/数学": 2.0, "loss/🧪 lab": 3.0},
            "client_run_id": "ラン-1",
        },
    )
    assert r.status_code == 201, r.text
    stored = shared_api.get(f"/v1/experiments/{exp['id']}/runs").json()["runs"][0]
    assert list(stored["mixture"]) == UNICODE_DOMAINS and stored["client_run_id"] == "ラン-1"
    assert stored["metrics"] == {"loss/数学": 2.0, "loss/🧪 lab": 3.0} and stored["objective"] == 2.5
    sugg = shared_api.post(f"/v1/experiments/{exp['id']}/suggestions", json={"count": 3}).json()["runs"]
    assert all(list(s["mixture"]) == UNICODE_DOMAINS for s in sugg)
    r = shared_api.post(f"/v1/experiments/{exp['id']}/runs", json={"mixture": {**mixture, "ecole": 0}})
    _rejected(r, "mixture.ecole", "invalid_mixture")
    assert (
        shared_api.get("/v1/experiments", params={"q": "ユニコード"}).json()["experiments"][0]["id"]
        == exp["id"]
    )


def test_a_256_domain_experiment_reports_and_suggests(shared_api: TestClient) -> None:
    names = [f"d{i:03d}" for i in range(256)]
    domains = [{"name": n, "max_weight": 0.05} for n in names]
    exp = shared_api.post(
        "/v1/experiments", json=spec(name=f"wide-{uuid.uuid4().hex[:6]}", domains=domains)
    ).json()
    url = f"/v1/experiments/{exp['id']}"
    rng = np.random.default_rng(0)
    runs = [
        {
            "mixture": dict(zip(names, w.tolist(), strict=True)),
            "fidelity": {"params": 1e6},
            "metrics": {"loss/web": float(3 + w[0]), "loss/code": float(3 + w[1])},
            "client_run_id": f"w{i}",
        }
        for i, w in enumerate(rng.dirichlet(np.ones(256), size=40))
    ]
    assert shared_api.post(f"{url}/runs:batch", json={"runs": runs}).json()["created"] == 40
    listed = shared_api.get(f"{url}/runs", params={"page_size": 1000}).json()["runs"]
    assert len(listed) == 40 and all(list(r["mixture"]) == names for r in listed)
    assert listed[7]["mixture"] == pytest.approx(runs[7]["mixture"], abs=1e-12)
    sugg = shared_api.post(f"{url}/suggestions", json={"count": 8}).json()["runs"]
    w = np.array([[s["mixture"][n] for n in names] for s in sugg])
    assert w.shape == (8, 256) and np.allclose(w.sum(axis=1), 1, atol=1e-9)
    assert (w <= 0.05 + 1e-9).all() and (w >= -1e-12).all() and len({tuple(np.round(r, 9)) for r in w}) == 8
    bad = {**runs[0], "client_run_id": "w-bad", "mixture": {**runs[0]["mixture"], "d255": -0.1}}
    _rejected(shared_api.post(f"{url}/runs", json=bad), "mixture.d255", "invalid_mixture")
    assert shared_api.get(url).json()["run_counts"] == {
        "suggested": 8,
        "running": 0,
        "completed": 40,
        "failed": 0,
        "abandoned": 0,
    }


# -------------------------------------------------------------------------------------- huge payloads
def test_a_10000_run_batch_with_one_bad_run_at_the_end_stores_nothing(
    shared_api: TestClient, exp: dict
) -> None:
    runs = [_run(f"h{i}") for i in range(10_000)]
    runs[-1] = {**runs[-1], "mixture": _with(GOOD_MIX, web=0.41)}
    before = state_of(shared_api, exp["id"])
    _rejected(
        shared_api.post(f"/v1/experiments/{exp['id']}/runs:batch", json={"runs": runs}),
        "runs[9999].mixture",
        "invalid_mixture",
    )
    assert state_of(shared_api, exp["id"]) == before


def test_a_mixture_with_100000_unknown_domains_is_rejected_by_name(shared_api: TestClient, exp: dict) -> None:
    mixture = {**GOOD_MIX, **{f"zz{i:06d}": 0.0 for i in range(100_000)}}
    r = shared_api.post(
        f"/v1/experiments/{exp['id']}/runs",
        json={"mixture": mixture, "fidelity": {"params": 1e6}, "metrics": GOOD_METRICS},
    )
    _rejected(r, "mixture.zz000000", "invalid_mixture")
    assert len(r.content) < 10_000  # the error names the first culprit, it does not echo the payload


def test_a_body_over_the_size_limit_is_refused_before_parsing(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path}/small.db", max_body_bytes=1_000_000)
    with TestClient(create_app(settings)) as api:
        exp = api.post("/v1/experiments", json=spec(name="small")).json()
        runs = [_run(f"big-{i}") for i in range(10_000)]
        r = api.post(f"/v1/experiments/{exp['id']}/runs:batch", json={"runs": runs})
        assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"
        assert state_of(api, exp["id"])[2] == 0


def test_an_experiment_without_fidelity_axes_suggests_after_its_first_run(shared_api: TestClient) -> None:
    """Regression: a snapshot of runs without fidelity axes failed to reshape: every suggestion was a 409."""
    exp = shared_api.post(
        "/v1/experiments", json=spec(name=f"nofid-{uuid.uuid4().hex[:6]}", fidelities=[])
    ).json()
    r = shared_api.post(
        f"/v1/experiments/{exp['id']}/runs", json={"mixture": GOOD_MIX, "metrics": GOOD_METRICS}
    )
    assert r.status_code == 201 and r.json()["fidelity"] == {}
    for method in ("design", "random"):
        r = shared_api.post(f"/v1/experiments/{exp['id']}/suggestions", json={"count": 2, "method": method})
        assert r.status_code == 201 and len(r.json()["runs"]) == 2, r.text
