"""The store on its own, against every backend it runs on: each test runs on SQLite and on the real
PostgreSQL (``database_url`` of tests/conftest.py), as Optuna runs its storage tests on every storage."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from migrations import upgrade
from service.db import make_engine, make_session_factory
from service.schemas import ExperimentCreate, RunReport
from service.store import Store
from service.store.tokens import Tokens
from tests.service.helpers import DOMAINS, spec, synthetic_losses


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    upgrade(database_url)
    engine = make_engine(database_url)
    yield Store(engine, make_session_factory(engine))
    engine.dispose()


def new_experiment(store: Store, name: str = "exp", project: str = "default") -> str:
    Tokens(store.factory).ensure_project(project)  # as authentication does for a token's project
    return store.create_experiment(ExperimentCreate(**spec(name)), project).id


def report(seed: int = 0, **fields: object) -> RunReport:
    """A completed run at a random mixture, with ``fields`` overriding any part of the report."""
    w = np.random.default_rng(seed).dirichlet(np.ones(len(DOMAINS)))
    body: dict[str, object] = {"mixture": dict(zip(DOMAINS, w.tolist(), strict=True)),
                               "fidelity": {"params": 1e6}, "metrics": synthetic_losses(w)}
    return RunReport(**{**body, **fields})
