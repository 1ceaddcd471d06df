"""The one-round-trip path for new runs (``service/run_insert.py``) against the general path it shortcuts.

Every report after an experiment's first goes through the single conditional INSERT; these tests prove it
is taken (not silently skipped), stores exactly what the general path stores, bumps the data version once
per new run, and hands everything it must not decide — retries, archived experiments — to the general path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.store import Store
from tests.service.helpers import create, state_of

REPORT: dict[str, Any] = {"mixture": {"web": 0.4, "code": 0.3, "papers": 0.2, "math": 0.1000000001},
                          "fidelity": {"params": 1e6}, "metrics": {"loss/web": 3.1, "loss/code": 3.3},
                          "cost": 2.5}


@pytest.fixture
def fast_inserts(api: TestClient) -> list[int | None]:
    """What each call of the one-round-trip insert returned (a pk, or None for "not mine")."""
    store: Store = api.app.state.mixopt.store  # type: ignore[attr-defined]
    inner: Callable[..., int | None] = store._insert_new_run
    seen: list[int | None] = []

    def counting(*args: Any) -> int | None:
        seen.append(inner(*args))
        return seen[-1]

    store._insert_new_run = counting  # type: ignore[assignment]
    return seen


def test_new_runs_take_one_round_trip_and_store_what_the_general_path_stores(
        api: TestClient, fast_inserts: list[int | None]) -> None:
    exp = create(api)
    url = f"/v1/experiments/{exp['id']}/runs"
    first = api.post(url, json={**REPORT, "client_run_id": "a"})
    assert first.status_code == 201 and fast_inserts == []  # first report: general path, spec cached
    second = api.post(url, json={**REPORT, "client_run_id": "b"})
    assert second.status_code == 201 and len(fast_inserts) == 1 and fast_inserts[0] is not None
    a, b = first.json(), second.json()
    for key in ("mixture", "fidelity", "metrics", "objective", "cost", "state", "method", "predicted", "error"):
        assert a[key] == b[key], key
    assert b["client_run_id"] == "b" and b["completed_at"] is not None
    assert sum(b["mixture"].values()) == pytest.approx(1.0, abs=1e-15)  # renormalised like the general path
    assert api.get(f"{url}/{b['id']}").json() == b  # what came back is what was stored
    running = api.post(url, json={**REPORT, "metrics": {}, "state": "running"})  # no client_run_id
    assert running.status_code == 201 and running.json()["completed_at"] is None
    version, counts, listed = state_of(api, exp["id"])
    assert (version, counts["completed"], counts["running"], listed) == (3, 2, 1, 3)


def test_retries_and_archived_experiments_fall_through_to_the_general_path(
        api: TestClient, fast_inserts: list[int | None]) -> None:
    exp = create(api)
    url = f"/v1/experiments/{exp['id']}/runs"
    assert api.post(url, json={**REPORT, "client_run_id": "a"}).status_code == 201
    made = api.post(url, json={**REPORT, "client_run_id": "b"}).json()
    retry = api.post(url, json={**REPORT, "client_run_id": "b"})
    assert retry.status_code == 200 and retry.json()["id"] == made["id"]
    assert fast_inserts[-1] is None  # the insert found the client_run_id taken and wrote nothing
    clash = api.post(url, json={**REPORT, "metrics": {"loss/web": 9.0, "loss/code": 9.0}, "client_run_id": "b"})
    assert clash.status_code == 409 and clash.json()["error"]["code"] == "run_final"
    before = state_of(api, exp["id"])
    assert api.patch(f"/v1/experiments/{exp['id']}", json={"state": "archived"}).status_code == 200
    archived = api.post(url, json={**REPORT, "client_run_id": "c"})
    assert archived.status_code == 409 and archived.json()["error"]["code"] == "experiment_archived"
    assert fast_inserts[-1] is None
    assert state_of(api, exp["id"])[1:] == before[1:]
    assert api.patch(f"/v1/experiments/{exp['id']}", json={"state": "active"}).status_code == 200
    assert api.post(url, json={**REPORT, "client_run_id": "c"}).status_code == 201
    assert fast_inserts[-1] is not None


def test_invalid_reports_are_rejected_before_the_insert(api: TestClient, fast_inserts: list[int | None]) -> None:
    exp = create(api)
    url = f"/v1/experiments/{exp['id']}/runs"
    assert api.post(url, json={**REPORT, "client_run_id": "a"}).status_code == 201
    bad = api.post(url, json={**REPORT, "mixture": {"web": 0.5, "code": 0.5, "papers": 0.5, "math": 0.0}})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "mixture"
    unknown = api.post(url, json={**REPORT, "fidelity": {"tokens": 1.0}})
    assert unknown.status_code == 422 and unknown.json()["error"]["field"] == "fidelity.tokens"
    assert fast_inserts == []
    assert state_of(api, exp["id"])[2] == 1
