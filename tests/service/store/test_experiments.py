"""Experiments: create, get, page through, patch; a missing or taken one is the store's own error."""

from __future__ import annotations

import pytest

from service.schemas import ExperimentCreate, ExperimentPatch
from service.store import InvalidRecord, RecordConflict, RecordNotFound, Store
from tests.service.helpers import spec
from tests.service.store.conftest import new_experiment


def test_created_experiments_page_in_creation_order(store: Store) -> None:
    ids = [new_experiment(store, f"exp-{i}") for i in range(5)]
    new_experiment(store, "elsewhere", project="other")
    seen: list[str] = []
    token = None
    for expected_size in (2, 2, 1):
        rows, token = store.list_experiments("default", 2, token)
        assert len(rows) == expected_size
        seen += [e.id for e in rows]
    assert token is None
    assert seen == ids


def test_list_filters_by_state_and_name(store: Store) -> None:
    first = new_experiment(store, "alpha")
    second = new_experiment(store, "beta_1")
    store.patch_experiment(first, ExperimentPatch(state="archived"))
    assert [e.id for e in store.list_experiments("default", 10, None, state="active")[0]] == [second]
    # "_" is a literal underscore, not LIKE's any-character
    assert [e.id for e in store.list_experiments("default", 10, None, query="a_1")[0]] == [second]
    assert store.list_experiments("default", 10, None, query="beta")[0][0].id == second


def test_get_answers_only_within_the_project(store: Store) -> None:
    exp_id = new_experiment(store, project="default")
    assert store.get_experiment(exp_id).name == "exp"
    with pytest.raises(RecordNotFound) as missing:
        store.get_experiment(exp_id, "other")
    assert (missing.value.code, missing.value.field) == ("not_found", "experiment_id")


def test_a_taken_name_is_a_conflict_on_create_and_on_rename(store: Store) -> None:
    new_experiment(store, "taken")
    other = new_experiment(store, "free")
    with pytest.raises(RecordConflict) as created:
        store.create_experiment(ExperimentCreate(**spec("taken")))
    with pytest.raises(RecordConflict) as renamed:
        store.patch_experiment(other, ExperimentPatch(name="taken"))
    for err in (created.value, renamed.value):
        assert (err.code, err.field, err.message) == ("duplicate_name", "name",
                                                      "an experiment named 'taken' already exists")
    assert store.get_experiment(other).name == "free"


def test_a_page_token_not_issued_by_the_store_is_invalid(store: Store) -> None:
    with pytest.raises(InvalidRecord) as bad:
        store.list_experiments("default", 10, "not-a-token")
    assert (bad.value.code, bad.value.field) == ("invalid_page_token", "page_token")


def test_a_budget_change_bumps_the_data_version_and_a_rename_does_not(store: Store) -> None:
    exp_id = new_experiment(store)
    store.patch_experiment(exp_id, ExperimentPatch(name="renamed"))
    assert store.get_experiment(exp_id).data_version == 0
    store.patch_experiment(exp_id, ExperimentPatch.model_validate({"budget": {"max_epochs": 4}}))
    exp = store.get_experiment(exp_id)
    assert (exp.name, exp.data_version, exp.spec["budget"]["max_epochs"]) == ("renamed", 1, 4)
