"""The one-round-trip report paths (``service/store/run_writes.py``) against the general path they shortcut.

After an experiment's first report, a new run goes through one conditional INSERT and a result for a
pending run through one conditional UPDATE; these tests prove each is taken (not silently skipped), stores
exactly what the general path stores, bumps the data version once per change, and hands everything it must
not decide — retries, final runs, archived experiments — to the general path.
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


def _spy(store: Store, attribute: str) -> list[Any]:
    """Record what each call of a fast path returned (None: "not mine", the general path decides)."""
    inner: Callable[..., Any] = getattr(store, attribute)
    seen: list[Any] = []

    def counting(*args: Any) -> Any:
        seen.append(inner(*args))
        return seen[-1]

    setattr(store, attribute, counting)
    return seen


@pytest.fixture
def fast_inserts(api: TestClient) -> list[int | None]:
    return _spy(api.app.state.mixopt.store, "_insert_new_run")  # type: ignore[attr-defined]


@pytest.fixture
def fast_advances(api: TestClient) -> list[Any]:
    return _spy(api.app.state.mixopt.store, "_advance_pending_run")  # type: ignore[attr-defined]


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
    # an invalid report to it is answered as on the general path: archived comes first, not the 422
    invalid = api.post(url, json={**REPORT, "mixture": {"web": 2.0, "code": 0, "papers": 0, "math": 0}})
    assert invalid.status_code == 409 and invalid.json()["error"]["code"] == "experiment_archived"
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


def test_results_for_suggested_runs_take_one_round_trip_and_match_the_general_path(
        api: TestClient, fast_advances: list[Any]) -> None:
    exp = create(api)
    url = f"/v1/experiments/{exp['id']}/runs"
    first, fast, general = api.post(f"/v1/experiments/{exp['id']}/suggestions",
                                    json={"count": 3, "client_id": "w"}).json()["runs"]
    assert api.post(url, json={"id": first["id"], "state": "running"}).status_code == 200  # caches the spec
    assert fast_advances == []
    version = state_of(api, exp["id"])[0]
    partial = {"loss/web": 3.5, "loss/other": 9.0}
    done = {"metrics": {"loss/web": 3.0, "loss/code": 3.2}, "cost": 2.0}
    for run, extra in ((fast, {}), (general, {"mixture": general["mixture"]})):  # a mixture to check: general
        r = api.post(url, json={"id": run["id"], "state": "running", "metrics": partial, **extra})
        assert r.status_code == 200 and r.json()["state"] == "running" and r.json()["metrics"] == partial
        r = api.post(url, json={"id": run["id"], **done, **extra})
        assert r.status_code == 200 and r.json()["state"] == "completed"
    assert len(fast_advances) == 2 and all(a is not None for a in fast_advances)
    a, b = (api.get(f"{url}/{r['id']}").json() for r in (fast, general))
    for key in ("state", "metrics", "objective", "cost", "method", "predicted", "client_id", "error"):
        assert a[key] == b[key], key
    assert a["metrics"] == {"loss/web": 3.0, "loss/code": 3.2, "loss/other": 9.0}  # merged, later reports win
    assert a["completed_at"] is not None and a["claimed_at"] == fast["claimed_at"]
    assert state_of(api, exp["id"])[0] == version + 4  # one bump per change, on either path
    retry = api.post(url, json={"id": fast["id"], **done})
    assert retry.status_code == 200 and fast_advances[-1] is None  # final already: the general path says so
    clash = api.post(url, json={"id": fast["id"], "metrics": {"loss/web": 1.0, "loss/code": 1.0}})
    assert clash.status_code == 409 and clash.json()["error"]["code"] == "run_final"
    assert state_of(api, exp["id"])[0] == version + 4
    missing = api.post(url, json={"id": "run_missing", "state": "running"})
    assert missing.status_code == 404 and fast_advances[-1] is None
