"""Outcome constraints over the API: the spec, its validation, and recommendations that honour them."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.spec import parse_spec
from tests.service.helpers import DOMAINS, create, spec

PRIOR = np.array([0.5, 0.2, 0.2, 0.1])
#: code loss falls as code grows, web loss rises with it: the constraint on web caps the code share.
CONSTRAINED = {"metrics": ["loss/code"], "aggregate": "single",
               "constraints": [{"metric": "loss/web", "op": "<=", "relative_to": "prior", "slack": 0.01}]}


def losses(w: np.ndarray) -> dict[str, float]:
    return {"loss/code": float(3.5 - 1.5 * w[1] + 0.5 * w[1] ** 2 - 0.2 * w[2]),
            "loss/web": float(3.0 + 0.8 * w[1] + 0.5 * w[1] ** 2 + 0.1 * w[3])}


def bound() -> float:
    """The constraint's absolute bound: 1% above the prior mixture's web loss."""
    return losses(PRIOR)["loss/web"] * 1.01


def seeded(api: TestClient, objective: dict[str, Any], n: int = 40, name: str = "exp") -> str:
    exp = create(api, name=name, objective=objective, fidelities=[])
    rng = np.random.default_rng(0)
    runs = [{"mixture": dict(zip(DOMAINS, w.tolist(), strict=True)), "metrics": losses(w)}
            for w in rng.dirichlet(np.ones(4), n)]
    r = api.post(f"/v1/experiments/{exp['id']}/runs:batch", json={"runs": runs})
    assert r.status_code == 200, r.text
    return str(exp["id"])


def test_constraints_are_stored_and_old_specs_still_parse(api: TestClient) -> None:
    exp = create(api, objective=CONSTRAINED)
    got = api.get(f"/v1/experiments/{exp['id']}").json()["objective"]
    assert got["constraints"] == [{"metric": "loss/web", "op": "<=", "bound": None, "relative_to": "prior",
                                   "slack": 0.01}]
    assert got["feasibility_probability"] == 0.9
    old = parse_spec({"domains": [{"name": "a"}, {"name": "b"}], "objective": {"metrics": ["m"]}})
    assert old.objective.constraints == [] and old.model_metrics == ["m"]


@pytest.mark.parametrize(("constraint", "field"), [
    ({"metric": "loss/web", "op": "<=", "bound": 3.0, "relative_to": "prior"}, "objective.constraints[0]"),
    ({"metric": "loss/web", "op": "<="}, "objective.constraints[0]"),
    ({"metric": "loss/web", "op": "<", "bound": 3.0}, "objective.constraints[0].op"),
    ({"metric": "loss/web", "op": "<=", "relative_to": "prior", "slack": -0.1}, "objective.constraints[0].slack"),
    ({"metric": "loss/web", "op": "<=", "bound": 3.0, "slack": 0.1}, "objective.constraints[0]"),
    ({"metric": "loss/web", "op": "<=", "bound": float("1e300")}, "objective.constraints[0].bound"),
])
def test_invalid_constraints_are_a_422_naming_the_field(api: TestClient, constraint: dict[str, Any],
                                                        field: str) -> None:
    r = api.post("/v1/experiments", json=spec(objective={"metrics": ["loss/code"], "constraints": [constraint]}))
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == field
    assert api.get("/v1/experiments").json()["experiments"] == []


def test_relative_to_prior_needs_priors_and_probability_lies_in_0_1(api: TestClient) -> None:
    r = api.post("/v1/experiments", json=spec(domains=[{"name": "a"}, {"name": "b"}], objective=CONSTRAINED))
    assert r.status_code == 422 and r.json()["error"]["field"] == "objective.constraints[0].relative_to"
    r = api.post("/v1/experiments", json=spec(objective={**CONSTRAINED, "feasibility_probability": 1.0}))
    assert r.status_code == 422 and r.json()["error"]["field"] == "objective.feasibility_probability"


def test_a_completed_run_must_report_the_constrained_metric(api: TestClient) -> None:
    exp = create(api, objective=CONSTRAINED, fidelities=[])
    r = api.post(f"/v1/experiments/{exp['id']}/runs", json={
        "mixture": dict(zip(DOMAINS, PRIOR.tolist(), strict=True)), "metrics": {"loss/code": 3.0}})
    assert r.status_code == 422 and r.json()["error"]["field"] == "metrics.loss/web"
    assert r.json()["error"]["code"] == "missing_metric"


@pytest.mark.parametrize("method", ["law", "regmix"])
def test_the_recommendation_is_the_best_feasible_mixture(api: TestClient, method: str) -> None:
    exp_id = seeded(api, CONSTRAINED)
    free = api.post(f"/v1/experiments/{exp_id}/recommendation",
                    json={"candidates": [dict(zip(DOMAINS, [0.0, 1.0, 0.0, 0.0], strict=True))], "method": method})
    assert free.status_code == 409 and free.json()["error"]["code"] == "no_feasible_mixture", free.text
    pool = np.random.default_rng(1).dirichlet(np.ones(4), 300)
    r = api.post(f"/v1/experiments/{exp_id}/recommendation",
                 json={"candidates": [dict(zip(DOMAINS, w.tolist(), strict=True)) for w in pool], "method": method})
    assert r.status_code == 200, r.text
    body = r.json()
    w = np.array([body["mixture"][d] for d in DOMAINS])
    (c,) = body["constraints"]
    assert c["metric"] == "loss/web" and c["op"] == "<=" and c["probability"] >= 0.9
    assert c["lower"] <= c["value"] <= c["upper"] <= c["bound"] + 1e-9 or c["value"] <= c["bound"]
    assert c["bound"] == pytest.approx(bound(), rel=0.02)
    assert losses(w)["loss/web"] <= bound() + 0.01
    # it still optimises: better than most of the candidates that truly meet the bound
    feasible = [losses(x)["loss/code"] for x in pool if losses(x)["loss/web"] <= bound()]
    assert losses(w)["loss/code"] < np.quantile(feasible, 0.25)


def test_get_recommendation_honours_constraints_and_says_when_none_is_feasible(api: TestClient) -> None:
    exp_id = seeded(api, CONSTRAINED)
    r = api.get(f"/v1/experiments/{exp_id}/recommendation")
    assert r.status_code == 200, r.text
    w = np.array([r.json()["mixture"][d] for d in DOMAINS])
    assert r.json()["constraints"][0]["probability"] >= 0.9
    assert losses(w)["loss/web"] <= bound() + 0.01
    impossible = {**CONSTRAINED, "constraints": [{"metric": "loss/web", "op": "<=", "bound": 2.0}]}
    exp_id = seeded(api, impossible, name="impossible")
    r = api.get(f"/v1/experiments/{exp_id}/recommendation")
    assert r.status_code == 409, r.text
    err = r.json()["error"]
    assert err["code"] == "no_feasible_mixture" and err["field"] == "objective.constraints"
    assert err["details"]["feasibility_probability"] == 0.9


def test_a_bound_relative_to_a_run_uses_that_run(api: TestClient) -> None:
    """A baseline named by client_run_id before it is reported: 409 on the field until it exists."""
    by_run = {**CONSTRAINED, "constraints": [{"metric": "loss/web", "op": "<=", "relative_to": "baseline",
                                              "slack": 0.01}]}
    exp_id = seeded(api, by_run)
    r = api.get(f"/v1/experiments/{exp_id}/recommendation")
    assert r.status_code == 409 and r.json()["error"]["field"] == "objective.constraints[0].relative_to"
    r = api.post(f"/v1/experiments/{exp_id}/runs", json={
        "client_run_id": "baseline", "mixture": dict(zip(DOMAINS, PRIOR.tolist(), strict=True)),
        "metrics": losses(PRIOR)})
    assert r.status_code == 201, r.text
    r = api.get(f"/v1/experiments/{exp_id}/recommendation")
    assert r.status_code == 200, r.text
    # measured at the target (no fidelity axes): the bound is the baseline run's own loss + 1%
    assert r.json()["constraints"][0]["bound"] == pytest.approx(bound())


@pytest.mark.parametrize("method", ["law", "regmix"])
def test_pareto_front_trades_the_objective_against_the_constrained_metric(api: TestClient, method: str) -> None:
    exp_id = seeded(api, CONSTRAINED)
    r = api.get(f"/v1/experiments/{exp_id}/pareto", params={"method": method, "candidates": 2000, "seed": 1})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [a["name"] for a in body["axes"]] == ["objective", "loss/web"]
    assert [a["goal"] for a in body["axes"]] == ["minimize", "minimize"]
    assert body["axes"][1]["bound"] == pytest.approx(bound(), rel=0.02) and body["axes"][0]["bound"] is None
    front = np.array([p["values"] for p in body["front"]])
    assert len(front) >= 2 and np.all(np.diff(front[:, 0]) >= 0) and np.all(np.diff(front[:, 1]) <= 1e-12)
    assert all(lo <= v <= hi for p in body["front"] for lo, v, hi in zip(p["lower"], p["values"], p["upper"],
                                                                         strict=True))
    assert all(set(p["mixture"]) == set(DOMAINS) and 0 <= p["feasibility"] <= 1 for p in body["front"])
    observed = body["observed"]
    assert len(observed) == 40 and 1 <= sum(o["on_front"] for o in observed) < 40
    assert body["method"] == method and body["n_candidates"] == 2000 and body["n_runs"] == 40


def test_pareto_without_constraints_uses_the_objectives_metrics_and_refuses_bad_queries(api: TestClient) -> None:
    exp_id = seeded(api, {"metrics": ["loss/code", "loss/web"]})
    r = api.get(f"/v1/experiments/{exp_id}/pareto", params={"candidates": 500})
    assert r.status_code == 200, r.text
    assert [a["name"] for a in r.json()["axes"]] == ["loss/code", "loss/web"]
    for params, field in [({"candidates": 5}, "query.candidates"), ({"method": "design"}, "query.method")]:
        r = api.get(f"/v1/experiments/{exp_id}/pareto", params=params)
        assert r.status_code == 422 and r.json()["error"]["field"] == field, r.text
    empty = create(api, name="empty", objective=CONSTRAINED)
    r = api.get(f"/v1/experiments/{empty['id']}/pareto")
    assert r.status_code == 409 and r.json()["error"]["code"] == "not_enough_data"


def test_bo_across_fidelities_recommends_a_feasible_mixture(api: TestClient) -> None:
    """With two fidelity levels ``auto`` recommends with BO, which judges the constraint with its own GP."""
    exp = create(api, name="mf", objective=CONSTRAINED)
    rng = np.random.default_rng(0)
    runs = [{"mixture": dict(zip(DOMAINS, w.tolist(), strict=True)), "fidelity": {"params": p},
             "metrics": {k: v + (0.3 if p < 1e9 else 0.0) for k, v in losses(w).items()}, "cost": p / 1e6}
            for p, n in ((1e6, 30), (1e9, 6)) for w in rng.dirichlet(np.ones(4), n)]
    assert api.post(f"/v1/experiments/{exp['id']}/runs:batch", json={"runs": runs}).status_code == 200
    r = api.get(f"/v1/experiments/{exp['id']}/recommendation")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["method"] == "bo" and body["constraints"][0]["probability"] >= 0.9
    w = np.array([body["mixture"][d] for d in DOMAINS])
    assert losses(w)["loss/web"] <= bound() + 0.02
    r = api.get(f"/v1/experiments/{exp['id']}/pareto", params={"method": "bo", "candidates": 1000, "seed": 0})
    assert r.status_code == 200, r.text
    assert r.json()["method"] == "bo" and [a["name"] for a in r.json()["axes"]] == ["objective", "loss/web"]
    assert len(r.json()["front"]) >= 2 and len(r.json()["observed"]) == 6  # the target runs


def test_tradeoffs_add_axes_with_their_own_goal_to_the_front(api: TestClient) -> None:
    objective = {"metrics": ["loss/code"], "aggregate": "single",
                 "tradeoffs": [{"metric": "loss/web", "goal": "maximize"}]}
    exp = create(api, name="trade", objective=objective, fidelities=[])
    r = api.post(f"/v1/experiments/{exp['id']}/runs", json={
        "mixture": dict(zip(DOMAINS, PRIOR.tolist(), strict=True)), "metrics": {"loss/code": 3.0}})
    assert r.status_code == 422 and r.json()["error"]["field"] == "metrics.loss/web"
    exp_id = seeded(api, objective, name="trade-seeded")
    r = api.get(f"/v1/experiments/{exp_id}/pareto", params={"method": "regmix", "candidates": 1000, "seed": 0})
    assert r.status_code == 200, r.text
    axes = r.json()["axes"]
    assert [(a["name"], a["goal"], a["bound"]) for a in axes] == [("objective", "minimize", None),
                                                                   ("loss/web", "maximize", None)]
    front = np.array([p["values"] for p in r.json()["front"]])
    # along a (minimise, maximise) front sorted by the objective, web loss must rise with it, or the point
    # before would dominate the next
    assert len(front) >= 2 and np.all(np.diff(front[:, 1]) >= -1e-12)
    bad = api.post("/v1/experiments", json=spec(name="bad", objective={**objective, "tradeoffs": [{"metric": "x",
                                                                                                   "goal": "up"}]}))
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "objective.tradeoffs[0].goal"
