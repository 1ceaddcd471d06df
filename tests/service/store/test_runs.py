"""Run reports and pages of runs: retries never duplicate, contradictions and unknown runs are refused."""

from __future__ import annotations

import numpy as np
import pytest

from service.schemas import ExperimentPatch
from service.store import InvalidRecord, RecordConflict, RecordNotFound, Store
from tests.service.helpers import DOMAINS
from tests.service.store.conftest import new_experiment, report


def test_a_retried_report_is_the_same_run(store: Store) -> None:
    exp_id = new_experiment(store)
    first, created, _ = store.report_run(exp_id, report(client_run_id="r-1"))
    assert created
    # The retry's one-statement insert (the spec is cached now) writes nothing; the general path finds the run.
    again, created_again, _ = store.report_run(exp_id, report(client_run_id="r-1"))
    assert again.id == first.id and not created_again
    rows, _ = store.list_runs(store.get_experiment(exp_id), 100, None)
    assert [r.client_run_id for r in rows] == ["r-1"]
    assert store.get_experiment(exp_id).data_version == 1


def test_a_contradicting_report_is_a_conflict_and_changes_nothing(store: Store) -> None:
    exp_id = new_experiment(store)
    run, _, _ = store.report_run(exp_id, report(client_run_id="r-1"))
    with pytest.raises(RecordConflict) as final:
        store.report_run(exp_id, report(client_run_id="r-1", metrics={"loss/web": 9.0, "loss/code": 9.0}))
    assert (final.value.code, final.value.field) == ("run_final", "state")
    assert store.get_run(exp_id, run.id).metrics == run.metrics


def test_unknown_runs_and_experiments_are_not_found(store: Store) -> None:
    exp_id = new_experiment(store)
    with pytest.raises(RecordNotFound) as run:
        store.report_run(exp_id, report(id="run_nope", mixture=None))
    assert (run.value.code, run.value.field) == ("not_found", "id")
    with pytest.raises(RecordNotFound):
        store.get_run(exp_id, "run_nope")
    with pytest.raises(RecordNotFound) as exp:
        store.report_batch("exp_nope", [report()])
    assert exp.value.field == "experiment_id"


def test_an_archived_experiment_takes_no_reports(store: Store) -> None:
    exp_id = new_experiment(store)
    store.report_run(exp_id, report(seed=1))  # cached: the next report tries the one-statement path first
    store.patch_experiment(exp_id, ExperimentPatch(state="archived"))
    for attempt in (lambda: store.report_run(exp_id, report(seed=2)),
                    lambda: store.report_batch(exp_id, [report(seed=3)])):
        with pytest.raises(RecordConflict) as archived:
            attempt()
        assert archived.value.code == "experiment_archived"


def test_a_batch_is_all_or_nothing_and_idempotent(store: Store) -> None:
    exp_id = new_experiment(store)
    batch = [report(seed=i, client_run_id=f"r-{i}") for i in range(5)]
    assert store.report_batch(exp_id, batch)[:3] == (5, 0, 0)
    assert store.report_batch(exp_id, batch)[:3] == (0, 5, 0)
    with pytest.raises(InvalidRecord) as twice:
        store.report_batch(exp_id, [report(seed=9, client_run_id="new"), report(seed=9, client_run_id="new")])
    assert (twice.value.code, twice.value.field) == ("duplicate_in_batch", "runs[1]")
    with pytest.raises(RecordConflict) as clash:
        store.report_batch(exp_id, [report(seed=8, client_run_id="fresh"),
                                    report(seed=0, client_run_id="r-0", state="failed")])
    assert clash.value.field == "runs[1].state"
    rows, _ = store.list_runs(store.get_experiment(exp_id), 100, None)
    assert len(rows) == 5  # the clash rolled the whole batch back, "fresh" included


def test_runs_page_by_state_and_by_fidelity(store: Store) -> None:
    exp_id = new_experiment(store)
    exp = store.get_experiment(exp_id)
    reports = [report(seed=i, fidelity={"params": 1e6 if i % 2 else 1e7}) for i in range(7)]
    store.report_batch(exp_id, reports)
    pending = store.add_suggested_runs(exp_id, np.full((2, len(DOMAINS)), 1 / len(DOMAINS)),
                                       np.array([[1e6], [1e6]]), "design", [None, None])

    def all_pages(**kwargs: object) -> list[str]:
        ids: list[str] = []
        token = None
        while True:
            rows, token = store.list_runs(exp, 2, token, **kwargs)  # type: ignore[arg-type]
            ids += [r.id for r in rows]
            if token is None:
                return ids

    everything = all_pages()
    assert len(everything) == 9 and everything[-2:] == [r.id for r in pending]
    assert all_pages(states=["suggested"]) == [r.id for r in pending]
    small = all_pages(fidelity=[1e6])
    assert len(small) == 5 and small[-2:] == [r.id for r in pending]
    assert len(all_pages(fidelity=[1e7])) == 4
