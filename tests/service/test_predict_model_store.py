"""``POST /predict`` answers from the stored model while it is current, and fits only when it is not.

The rule (service/store/fitted_models.py): a stored model is served when it was fitted by the same method, at the
same fidelity, seed and hints, on the current data version; otherwise the call fits, stores and answers.
Every test counts the fits a method makes, and checks each answer against a fresh fit of the current
runs, which is what predict computed before models were stored.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from mixing.methods import available_methods
from service.operations.context import search_context
from service.store import Store
from tests.service.helpers import DOMAINS, create, seed_runs, wait_for_job

#: Laws a refit scores here: fast to cross-validate on a few dozen runs.
FAST_LAWS = ["regmix_linear", "data_mixing_law"]
GRID = np.random.default_rng(5).dirichlet(np.ones(len(DOMAINS)), 10)
BODY: dict[str, Any] = {"mixtures": [dict(zip(DOMAINS, w.tolist(), strict=True)) for w in GRID]}


def store_of(api: TestClient) -> Store:
    return api.app.state.mixopt.store  # type: ignore[attr-defined, no-any-return]


@pytest.fixture
def fits(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the methods that fitted a model, one entry per fit."""
    calls: list[str] = []
    for cls in {c for c in available_methods().values() if hasattr(c, "fit")}:
        def counted(self: Any, *args: Any, _fit: Any = cls.fit, **kwargs: Any) -> Any:
            calls.append(self.name)
            return _fit(self, *args, **kwargs)

        monkeypatch.setattr(cls, "fit", counted)
    return calls


def predict(api: TestClient, exp_id: str, **extra: Any) -> list[dict[str, Any]]:
    r = api.post(f"/v1/experiments/{exp_id}/predict", json={**BODY, **extra})
    assert r.status_code == 200, r.text
    return r.json()["predictions"]  # type: ignore[no-any-return]


def fresh_fit(api: TestClient, exp_id: str, method: str) -> np.ndarray:
    """The objective a fit of the current runs predicts at GRID (the settings' seed, as predict uses)."""
    st = api.app.state.mixopt  # type: ignore[attr-defined]
    exp = st.store.get_experiment(exp_id, "default")
    ctx, _ = search_context(st.store, exp, st.settings.seed)
    _, objective, _ = available_methods()[method]().predictor(ctx).predict(GRID)
    return np.asarray(objective)


def objectives(preds: list[dict[str, Any]]) -> np.ndarray:
    return np.array([p["objective"] for p in preds])


def test_predict_fits_once_per_data_version_and_answers_as_a_fresh_fit(api: TestClient, fits: list[str]
                                                                       ) -> None:
    exp = create(api)
    seed_runs(api, exp["id"], 40)
    first = predict(api, exp["id"], method="regmix")
    assert fits == ["regmix"]
    assert predict(api, exp["id"], method="regmix") == first  # loaded, not fitted
    assert fits == ["regmix"]
    assert np.allclose(objectives(first), fresh_fit(api, exp["id"], "regmix"), rtol=1e-12, atol=0)

    seed_runs(api, exp["id"], 6, seed=7)  # new runs: the stored model is stale and never served
    fits.clear()
    after = predict(api, exp["id"], method="regmix")
    assert fits == ["regmix"]
    assert np.allclose(objectives(after), fresh_fit(api, exp["id"], "regmix"), rtol=1e-12, atol=0)
    assert not np.allclose(objectives(after), objectives(first))
    fits.clear()
    assert predict(api, exp["id"], method="regmix") == after  # the refreshed model is stored in its place
    assert fits == []


def test_a_refit_stores_the_default_model_so_predict_fits_nothing(api: TestClient, fits: list[str]) -> None:
    exp = create(api)
    seed_runs(api, exp["id"], 40)
    job = api.post(f"/v1/experiments/{exp['id']}/refits", json={"laws": FAST_LAWS, "method": "regmix"}).json()
    done = wait_for_job(api, job["job"]["id"])
    assert done["state"] == "succeeded", done
    assert done["result"]["model"]["method"] == "law"
    fits.clear()
    preds = predict(api, exp["id"])  # method auto: the selected law, single fidelity
    assert fits == []
    assert np.allclose(objectives(preds), fresh_fit(api, exp["id"], "law"), rtol=1e-12, atol=0)


def test_a_stored_model_is_not_served_for_other_hints_seeds_or_fidelities(api: TestClient, fits: list[str]
                                                                          ) -> None:
    exp = create(api)
    seed_runs(api, exp["id"], 40)
    store = store_of(api)
    store.update_hints(exp["id"], {"selected_law": "regmix_linear", "law_params": {}})
    linear = predict(api, exp["id"], method="law")
    assert fits == ["law"]
    store.update_hints(exp["id"], {"selected_law": "data_mixing_law", "law_params": {}})
    other = predict(api, exp["id"], method="law")  # same runs, another law: the stored one is not it
    assert fits == ["law", "law"]
    assert not np.allclose(objectives(other), objectives(linear))
    assert np.allclose(objectives(other), fresh_fit(api, exp["id"], "law"), rtol=1e-12, atol=0)
    fits.clear()
    predict(api, exp["id"], method="law", seed=99)
    predict(api, exp["id"], method="law", fidelity={"params": 1e6})
    assert fits == ["law", "law"]
    assert predict(api, exp["id"], method="law") == other
    assert fits == ["law", "law"]


def test_bo_models_are_stored_too(api: TestClient, fits: list[str]) -> None:
    """The GP of multi-fidelity BO pickles, so the model the dashboard's compare page asks is loaded."""
    exp = create(api)
    seed_runs(api, exp["id"], 24, params=1e6)
    seed_runs(api, exp["id"], 6, params=1e9, seed=1)
    first = predict(api, exp["id"])  # method auto: BO, with two fidelities observed
    assert fits == ["bo"]
    assert predict(api, exp["id"]) == first
    assert fits == ["bo"]
    assert np.allclose(objectives(first), fresh_fit(api, exp["id"], "bo"), rtol=1e-9, atol=0)


def test_stored_models_stay_out_of_bundles(api: TestClient, fits: list[str]) -> None:
    """A fitted model is derived from the runs: an export leaves it out (a pickle read from a file would run
    code), and the importing server fits its own."""
    exp = create(api)
    seed_runs(api, exp["id"], 20)
    predict(api, exp["id"], method="regmix")
    r = api.get(f"/v1/experiments/{exp['id']}:export")
    assert r.status_code == 200, r.text
    assert "fitted_models" not in r.json() and len(r.json()["runs"]) == 20
