"""With a broker, a project's jobs hold at most ``worker_project_cap`` leases per lane (issue 14, item 9).

Checked on the store's lease, which every Celery delivery takes first, on SQLite and PostgreSQL; the
concurrent case runs many deliveries at once and counts the leases granted.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from migrations import upgrade
from service.db import make_engine, make_session_factory
from service.operations.kinds import LANE_KINDS, Lane
from service.schemas import ExperimentCreate
from service.store import Store
from service.store.tokens import Tokens
from tests.service.helpers import spec

BACKGROUND = LANE_KINDS[Lane.background]
LEASE_S = 600.0


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    upgrade(database_url)
    engine = make_engine(database_url)
    yield Store(engine, make_session_factory(engine))
    engine.dispose()


def _experiment(store: Store, project: str) -> str:
    Tokens(store.factory).ensure_project(project)
    return store.create_experiment(ExperimentCreate(**spec(f"exp-{project}")), project).id


def _lease(store: Store, job_id: str, owner: str, cap: int = 1) -> str:
    return store.lease_job(job_id, owner, LEASE_S, 3, cap, BACKGROUND)[0]


def test_a_project_at_its_cap_waits_and_other_projects_do_not(store: Store) -> None:
    flood, other = _experiment(store, "flood"), _experiment(store, "other")
    first, second = (store.create_job("refit", flood, {}).id for _ in range(2))
    theirs = store.create_job("refit", other, {}).id
    suggestion = store.create_job("propose", flood, {}).id

    assert _lease(store, first, "w1") == "acquired"
    assert _lease(store, second, "w2") == "held"
    assert _lease(store, theirs, "w2") == "acquired"
    assert store.lease_job(suggestion, "w3", LEASE_S, 3, 1, LANE_KINDS[Lane.interactive])[0] == "acquired"
    assert _lease(store, second, "w2", cap=0) == "acquired"  # no cap: as before
    store.release_lease(second, "w2")

    assert _lease(store, first, "w1") == "acquired"  # the holder's own redelivery is not counted against it
    store.finish_job(first, {})
    store.release_lease(first, "w1")
    assert _lease(store, second, "w2") == "acquired"


def test_concurrent_deliveries_get_no_more_leases_than_the_cap(store: Store) -> None:
    flood = _experiment(store, "flood")
    jobs = [store.create_job("refit", flood, {}).id for _ in range(8)]
    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(lambda job: _lease(store, job, f"w-{job}", cap=2), jobs))
    assert sorted(outcomes) == ["acquired"] * 2 + ["held"] * 6
