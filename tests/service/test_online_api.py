"""Online sessions over the API: DoReMi and Aioli driven by a simulated trainer, persisted and resumable."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient

from mixing import online
from tests.service.helpers import DOMAINS, create

REF = {"web": 3.0, "code": 2.5, "papers": 3.2, "math": 2.0}


def _losses(step: int, w: dict[str, float]) -> dict[str, float]:
    """A simulated run: each domain's loss falls faster the more of it is trained on."""
    return {d: float(4.0 - 0.2 * np.log1p(step) * (0.5 + w[d])) for d in DOMAINS}


def test_doremi_session_matches_the_pure_algorithm_and_persists(api: TestClient) -> None:
    exp = create(api)
    base = f"/v1/experiments/{exp['id']}/online-sessions"
    r = api.post(base, json={"method": "doremi", "reference_losses": REF, "client_session_id": "train-1"})
    assert r.status_code == 201, r.text
    ses = r.json()
    assert ses["domains"] == DOMAINS and ses["method"] == "doremi"
    assert api.post(base, json={"method": "doremi", "reference_losses": REF,
                                "client_session_id": "train-1"}).json()["id"] == ses["id"]
    state, _ = online.start("doremi", 4, {}, None, np.array([REF[d] for d in DOMAINS]))
    w = ses["directive"]["weights"]
    for step in (100, 200, 300, 400):
        losses = _losses(step, w)
        out = api.post(f"{base}/{ses['id']}/observations", json={"step": step, "losses": losses})
        assert out.status_code == 200, out.text
        state, d = online.observe(state, step, np.array([losses[x] for x in DOMAINS]))
        w = out.json()["directive"]["weights"]
        assert np.allclose([w[x] for x in DOMAINS], d.weights, atol=1e-12)
    # A retried post of the same step returns the same directive; different losses for it are refused.
    again = api.post(f"{base}/{ses['id']}/observations", json={"step": 400, "losses": losses})
    assert again.status_code == 200 and again.json()["directive"]["weights"] == w
    clash = api.post(f"{base}/{ses['id']}/observations", json={"step": 400, "losses": {**losses, "web": 9.0}})
    assert clash.status_code == 409
    detail = api.get(f"{base}/{ses['id']}").json()
    assert [p["step"] for p in detail["trajectory"]] == [100, 200, 300, 400] and detail["last_step"] == 400
    assert api.get(base).json()["sessions"][0]["id"] == ses["id"]


def test_aioli_session_gives_a_probe_schedule(api: TestClient) -> None:
    exp = create(api)
    base = f"/v1/experiments/{exp['id']}/online-sessions"
    ses = api.post(base, json={"method": "aioli"}).json()
    d = ses["directive"]
    step, phases, probes = 0, [], set()
    for _ in range(20):
        step += d["train_steps"]
        r = api.post(f"{base}/{ses['id']}/observations", json={"step": step, "losses": _losses(step, d["weights"])})
        assert r.status_code == 200, r.text
        d = r.json()["directive"]
        phases.append(d["phase"])
        if d["probe"]:
            probes.add(d["probe"]["domain"])
            assert d["weights"] == d["probe"]["weights"]
    assert "probe" in phases and probes == set(DOMAINS)
    assert abs(sum(d["mixture"].values()) - 1) < 1e-9


@pytest.mark.parametrize(("body", "field", "code"), [
    ({"step": 100, "losses": {"web": 1, "code": 1, "papers": 1}}, "losses.math", "domain_mismatch"),
    ({"step": 100, "losses": {"web": 1, "code": 1, "papers": 1, "math": 1, "x": 1}}, "losses.x", "domain_mismatch"),
    ({"step": -1, "losses": REF}, "step", "invalid_input"),
])
def test_bad_observations(api: TestClient, body: dict, field: str, code: str) -> None:
    exp = create(api)
    base = f"/v1/experiments/{exp['id']}/online-sessions"
    ses = api.post(base, json={"method": "stratified"}).json()
    r = api.post(f"{base}/{ses['id']}/observations", json=body)
    assert r.status_code == 422 and r.json()["error"]["field"] == field and r.json()["error"]["code"] == code


def test_steps_must_increase_and_sessions_validate(api: TestClient) -> None:
    exp = create(api)
    base = f"/v1/experiments/{exp['id']}/online-sessions"
    ses = api.post(base, json={"method": "doremi", "reference_losses": REF}).json()
    assert api.post(f"{base}/{ses['id']}/observations", json={"step": 200, "losses": REF}).status_code == 200
    r = api.post(f"{base}/{ses['id']}/observations", json={"step": 100, "losses": REF})
    assert r.status_code == 422 and r.json()["error"]["code"] == "step_not_increasing"
    assert len(api.get(f"{base}/{ses['id']}").json()["trajectory"]) == 1
    assert api.post(base, json={"method": "doremi"}).status_code == 422
    r = api.post(base, json={"method": "aioli", "hyperparameters": {"nonsense": 1}})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_hyperparameter"
    r = api.post(base, json={"method": "static", "initial_weights": {"web": 0.5, "code": 0.5, "papers": 0.5,
                                                                      "math": 0}})
    assert r.status_code == 422 and r.json()["error"]["field"] == "initial_weights"
    assert api.post(base, json={"method": "gradient-magic"}).status_code == 422
    assert api.get(f"{base}/ses_missing").status_code == 404
