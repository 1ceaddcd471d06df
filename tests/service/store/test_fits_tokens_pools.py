"""Fits and recommendations, candidate pools, API tokens, online sessions."""

from __future__ import annotations

import numpy as np
import pytest

from mixing.problem import Candidates
from service.schemas_online import ObservationIn, OnlineSessionCreate
from service.store import InvalidRecord, RecordConflict, RecordNotFound, Store, pool_digest
from service.store.models import Fit, new_id
from service.store.online import OnlineSessions
from service.store.tokens import Tokens
from tests.service.helpers import DOMAINS
from tests.service.store.conftest import new_experiment


def _fit(law: str, job_id: str) -> Fit:
    return Fit(id=new_id("fit"), job_id=job_id, law=law, selected=False, n_runs=3, data_version=0, scores={},
               params={}, duration_s=0.1, device="cpu")


def test_a_refit_of_older_data_is_refused_and_fits_page(store: Store) -> None:
    exp_id = new_experiment(store)
    assert store.apply_refit(exp_id, [_fit("a", "job_1"), _fit("b", "job_1")], 2, {"selected_law": "a"})
    assert not store.apply_refit(exp_id, [_fit("old", "job_0")], 1, {"selected_law": "old"})
    assert store.apply_refit(exp_id, [_fit("c", "job_2")], 2, {})
    assert [f.law for f in store.latest_fits(exp_id)] == ["c"]
    assert store.get_experiment(exp_id).hints["selected_law"] == "a"
    first, token = store.list_fits(exp_id, 2, None)
    rest, end = store.list_fits(exp_id, 2, token)
    assert [f.law for f in first + rest] == ["a", "b", "c"] and end is None
    assert [f.law for f in store.recent_fits(exp_id, 2)] == ["b", "c"]
    with pytest.raises(RecordNotFound):
        store.apply_refit("exp_nope", [], 1, {})


def test_the_latest_recommendation_wins(store: Store) -> None:
    exp_id = new_experiment(store)
    assert store.latest_recommendation(exp_id) is None
    store.save_recommendation(exp_id, "regmix", 1, 10, {"n": 1})
    second = store.save_recommendation(exp_id, "regmix", 2, 12, {"n": 2})
    latest = store.latest_recommendation(exp_id)
    assert latest is not None and latest.id == second.id and latest.payload == {"n": 2}


def test_a_pool_reads_back_exactly_with_the_chosen_cells(store: Store) -> None:
    exp_id = new_experiment(store)
    rng = np.random.default_rng(0)
    fidelities = rng.uniform(1e6, 1e7, (50, 1))
    fidelities[::3] = np.nan
    pool = Candidates(mixtures=rng.dirichlet(np.ones(len(DOMAINS)), 50), fidelities=fidelities)
    digest = store.save_pool(exp_id, pool)
    assert store.save_pool(exp_id, pool) == digest == pool_digest(pool)
    back = store.load_pool(exp_id, digest)
    np.testing.assert_array_equal(back.mixtures, pool.mixtures)
    np.testing.assert_array_equal(back.fidelities, pool.fidelities)  # NaN where the method chooses
    with pytest.raises(RecordNotFound) as missing:
        store.load_pool(exp_id, "0" * 64)
    assert missing.value.field == "candidates"


def test_tokens_are_found_by_prefix_and_revoked_once(store: Store) -> None:
    tokens = Tokens(store.factory)
    issued = tokens.create("team-a", ["write"], name="ci")
    assert issued.token.startswith(f"mxo_{issued.row.prefix}_")
    found = tokens.find(issued.row.prefix)
    assert found is not None and found.scopes == ["write"] and found.project == "team-a"
    first = tokens.revoke(issued.row.id).revoked_at
    assert first is not None and tokens.revoke(issued.row.prefix).revoked_at == first
    assert [t.id for t in tokens.list("team-a")] == [issued.row.id] and tokens.list("team-b") == []
    with pytest.raises(RecordNotFound) as missing:
        tokens.revoke("tok_nope")
    assert missing.value.field == "token_id"
    for bad, code in ((lambda: tokens.create("team-a", ["root"]), "unknown_scope"),
                      (lambda: tokens.create("no spaces", ["read"]), "invalid_project")):
        with pytest.raises(InvalidRecord) as refused:
            bad()
        assert refused.value.code == code


def test_online_sessions_page_and_refuse_a_contradicting_step(store: Store) -> None:
    exp_id = new_experiment(store)
    sessions = OnlineSessions(store)
    made = [sessions.create(exp_id, OnlineSessionCreate(method="stratified", client_session_id=f"s{i}"), "default")
            for i in range(3)]
    again, created = sessions.create(exp_id, OnlineSessionCreate(method="stratified", client_session_id="s0"),
                                     "default")
    assert again.id == made[0][0].id and not created
    _, page1, token = sessions.list(exp_id, "default", 2, None)
    _, page2, end = sessions.list(exp_id, "default", 2, token)
    assert [s.id for s in page1 + page2] == [s.id for s, _ in made] and end is None
    ses_id = made[0][0].id
    losses = dict.fromkeys(DOMAINS, 2.0)
    directive = sessions.observe(exp_id, ses_id, ObservationIn(step=1, losses=losses), "default")
    assert sessions.observe(exp_id, ses_id, ObservationIn(step=1, losses=losses), "default") == directive
    with pytest.raises(RecordConflict) as clash:
        sessions.observe(exp_id, ses_id, ObservationIn(step=1, losses=dict.fromkeys(DOMAINS, 3.0)), "default")
    assert (clash.value.code, clash.value.field) == ("step_conflict", "step")
    with pytest.raises(RecordNotFound) as missing:
        sessions.get(exp_id, "ses_nope", "default")
    assert missing.value.field == "session_id"
