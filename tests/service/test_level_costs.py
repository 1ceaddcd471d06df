"""``search.level_costs``: what a run costs at a level, declared before any run there reports it, on SQLite
and PostgreSQL. BO's cost forecast for a level no run has reported a cost at is otherwise an extrapolation
along the fidelity axes (a 1e9-parameter run as 1,000 runs at 1e6), which decides when it buys target runs."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.service.helpers import create, seed_runs, spec

LEVELS = [{"fidelity": {"params": 1e6}, "cost": 1.0}, {"fidelity": {"params": 1e9}, "cost": 5.0}]


@pytest.mark.parametrize(("level_costs", "field"), [
    ([{"fidelity": {"tokens": 1e6}, "cost": 1.0}], "search.level_costs[0].fidelity.tokens"),
    ([{"fidelity": {"params": 1e6, "tokens": 1.0}, "cost": 1.0}], "search.level_costs[0].fidelity.tokens"),
    ([{"fidelity": {"params": 5e9}, "cost": 1.0}], "search.level_costs[0].fidelity.params"),
    ([{"fidelity": {"params": 1e6}, "cost": 0.0}], "search.level_costs[0].cost"),
    ([{"fidelity": {"params": 1e6}, "cost": "NaN"}], "search.level_costs[0].cost"),
    ([LEVELS[0], LEVELS[1], {"fidelity": {"params": 1e6}, "cost": 2.0}], "search.level_costs[2].fidelity"),
])
def test_a_bad_level_cost_is_a_422_naming_it_and_stores_nothing(api: TestClient, level_costs: list[dict[str, Any]],
                                                              field: str) -> None:
    r = api.post("/v1/experiments", json=spec(search={"level_costs": level_costs}))
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == field, r.json()
    assert api.get("/v1/experiments").json()["experiments"] == []


@pytest.mark.parametrize("declared", [True, False])
def test_bo_buys_target_runs_once_the_cheap_ones_have_cost_one_at_the_declared_price(api: TestClient,
                                                                                      declared: bool) -> None:
    """12 cheap runs (cost 1 each) have cost more than a target run declared at 5, so the next bo batch
    opens with target runs; without the declaration a target run is forecast at 1,000 and none is bought."""
    exp = create(api, search={"level_costs": LEVELS} if declared else {})
    assert exp["search"]["level_costs"] == (LEVELS if declared else [])
    seed_runs(api, exp["id"], 12, params=1e6)
    r = api.post(f"/v1/experiments/{exp['id']}/suggestions", json={"count": 4, "method": "bo", "seed": 0})
    assert r.status_code == 201, r.text
    at_target = [run["fidelity"]["params"] == 1e9 for run in r.json()["runs"]]
    assert all(at_target) if declared else not any(at_target)
