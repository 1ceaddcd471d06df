"""Upgrading a database that holds data, from every earlier schema revision to head, on SQLite and PostgreSQL.

The revisions come from the Alembic script directory, so a new one is tested as soon as it exists. At each
revision the test writes representative rows with plain INSERTs against the schema as it is at that revision
(reflected, not the current models), upgrades, and checks the rows are intact and usable through the API.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory
from fastapi.testclient import TestClient

from migrations import alembic_config, upgrade
from mixing.online.session import start as start_online
from service.api.app import create_app
from service.schemas import ExperimentCreate
from service.settings import Settings
from tests.service.helpers import DOMAINS, spec

SCRIPTS = ScriptDirectory.from_config(alembic_config("sqlite://"))
HEAD = SCRIPTS.get_current_head()
EARLIER = [r.revision for r in SCRIPTS.walk_revisions() if r.revision != HEAD][::-1]
NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
EXP = "exp_old"
MIXTURES = [[0.4, 0.3, 0.2, 0.1], [0.25, 0.25, 0.25, 0.25], [0.1, 0.2, 0.3, 0.4], [0.7, 0.1, 0.1, 0.1]]


def _rows() -> dict[str, list[dict[str, Any]]]:
    """Rows for every table any revision has had, each with every column any revision has had.

    Only the tables and columns present at the revision under test are written; a required column that is
    missing here fails the test with its name (add a value for it when a revision adds one).
    """
    body = ExperimentCreate(**spec(name="old-experiment", metadata={"team": "pretraining"}))
    runs = [
        {
            "id": f"run_old{i}",
            "experiment_id": EXP,
            "mixture": m,
            "fidelity": [1e6],
            "state": "completed",
            "metrics": {"loss/web": 3.0 + i / 10, "loss/code": 3.2 + i / 10},
            "cost": 1.0,
            "method": "external",
            "prediction": None,
            "client_run_id": f"old-{i}",
            "proposal_id": None,
            "error": None,
            "created_at": NOW,
            "updated_at": NOW,
            "heartbeat_at": NOW,
            "completed_at": NOW,
        }
        for i, m in enumerate(MIXTURES[:3])
    ]
    runs.append(
        {
            **runs[0],
            "id": "run_pending",
            "mixture": MIXTURES[3],
            "state": "suggested",
            "metrics": {},
            "method": "design",
            "client_run_id": None,
            "proposal_id": "prop_sugg",
            "completed_at": None,
            "heartbeat_at": None,
            "prediction": {"value": 3.1, "lower": 3.0, "upper": 3.2},
        }
    )
    session_state, _ = start_online("stratified", len(DOMAINS), {}, None, None)
    return {
        "experiments": [
            {
                "id": EXP,
                "project": "default",
                "name": "old-experiment",
                "state": "active",
                "spec": body.model_dump(mode="json", exclude={"name", "metadata"}),
                "metadata": {"team": "pretraining"},
                "data_version": 3,
                "hints": {},
                "created_at": NOW,
                "updated_at": NOW,
            }
        ],
        "runs": runs,
        "jobs": [
            {
                "id": "job_old",
                "kind": "propose",
                "experiment_id": EXP,
                "state": "succeeded",
                "params": {"count": 1, "method": "design"},
                "result": {"run_ids": ["run_pending"]},
                "progress": 1.0,
                "error": None,
                "attempts": 1,
                "created_at": NOW,
                "started_at": NOW,
                "finished_at": NOW,
                "published_at": NOW,
                "lease_owner": None,
                "lease_expires_at": None,
            }
        ],
        "proposals": [
            {
                "id": "prop_sugg",
                "experiment_id": EXP,
                "job_id": "job_old",
                "kind": "suggestion",
                "method": "design",
                "data_version": 3,
                "n_runs": 3,
                "payload": {"count": 1},
                "created_at": NOW,
            },
            {
                "id": "prop_rec",
                "experiment_id": EXP,
                "job_id": None,
                "kind": "recommendation",
                "method": "best-observed",
                "data_version": 3,
                "n_runs": 3,
                "created_at": NOW,
                "payload": {
                    "mixture": MIXTURES[0],
                    "fidelity": [1e9],
                    "details": {},
                    "predicted": {"value": 3.1, "lower": None, "upper": None},
                },
            },
        ],
        "fits": [
            {
                "id": "fit_old",
                "experiment_id": EXP,
                "job_id": None,
                "law": "regmix_linear",
                "selected": True,
                "n_runs": 3,
                "data_version": 3,
                "scores": {"cv_rmse": 0.1},
                "params": {},
                "duration_s": 0.5,
                "device": "cpu",
                "created_at": NOW,
            }
        ],
        "reopt_policies": [
            {
                "experiment_id": EXP,
                "enabled": True,
                "every_runs": 50,
                "every_minutes": None,
                "ready_suggestions": 0,
                "method": "auto",
                "last_completed": 3,
                "last_enqueued_at": None,
                "last_job_id": None,
                "created_at": NOW,
                "updated_at": NOW,
            }
        ],
        "online_sessions": [
            {
                "id": "ses_old",
                "experiment_id": EXP,
                "client_session_id": "trainer-a",
                "method": "stratified",
                "hyperparameters": session_state["hyperparameters"],
                "state": session_state,
                "last_step": None,
                "created_at": NOW,
                "updated_at": NOW,
            }
        ],
    }


def _insert(url: str) -> dict[str, int]:
    """Write the rows the schema at ``url`` has tables for; returns the row count per table written."""
    engine = sa.create_engine(url)
    meta = sa.MetaData()
    meta.reflect(engine)
    written: dict[str, int] = {}
    with engine.begin() as conn:
        for name, rows in _rows().items():
            if name not in meta.tables:
                continue
            table = meta.tables[name]
            required = {c.name for c in table.columns
                        if not (c.nullable or c.primary_key or c.server_default)}
            missing = required - set(rows[0])
            assert not missing, (
                f"a revision added required columns {missing} to {name}: give them values here"
            )
            conn.execute(table.insert(), [{k: v for k, v in r.items() if k in table.columns} for r in rows])
            written[name] = len(rows)
    engine.dispose()
    return written


def _counts(url: str, tables: list[str]) -> dict[str, int]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        out = {t: int(conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar() or 0) for t in tables}
    engine.dispose()
    return out


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_db(request: pytest.FixtureRequest, tmp_path: Path, postgres_db_factory: Callable[[], str]) -> str:
    return f"sqlite:///{tmp_path}/old.db" if request.param == "sqlite" else postgres_db_factory()


def test_there_are_earlier_revisions_to_upgrade_from() -> None:
    assert EARLIER and EARLIER[0] == "0001" and HEAD not in EARLIER


@pytest.mark.parametrize("revision", EARLIER)
def test_upgrade_with_data_from(revision: str, empty_db: str) -> None:
    upgrade(empty_db, revision)
    written = _insert(empty_db)
    assert {"experiments", "runs", "jobs"} <= set(written)
    upgrade(empty_db, "head")
    assert _counts(empty_db, list(written)) == written

    with TestClient(create_app(Settings(database_url=empty_db, auto_migrate=True, seed=1))) as api:
        exp = api.get(f"/v1/experiments/{EXP}").json()
        assert exp["name"] == "old-experiment" and exp["metadata"] == {"team": "pretraining"}
        assert exp["run_counts"]["completed"] == 3 and exp["run_counts"]["suggested"] == 1
        assert exp["data_version"] == 3 and [d["name"] for d in exp["domains"]] == DOMAINS
        runs = api.get(f"/v1/experiments/{EXP}/runs").json()["runs"]
        assert [r["id"] for r in runs] == ["run_old0", "run_old1", "run_old2", "run_pending"]
        assert (
            runs[1]["mixture"] == dict(zip(DOMAINS, MIXTURES[1], strict=True)) and runs[1]["objective"] == 3.2
        )
        assert api.get("/v1/jobs/job_old").json()["result"] == {"run_ids": ["run_pending"]}
        rec = api.get(f"/v1/experiments/{EXP}/recommendation").json()
        assert rec["method"] == "best-observed" and rec["data_version"] == 3  # the stored one, still current
        if "fits" in written:
            assert [f["id"] for f in api.get(f"/v1/experiments/{EXP}/fits").json()["fits"]] == ["fit_old"]
        if "reopt_policies" in written:
            assert api.get(f"/v1/experiments/{EXP}/reoptimization").json()["every_runs"] == 50
        if "online_sessions" in written:
            r = api.post(
                f"/v1/experiments/{EXP}/online-sessions",
                json={"method": "stratified", "client_session_id": "trainer-a"},
            )
            assert r.status_code == 200 and r.json()["id"] == "ses_old"

        # Still writable: a retry of an old report, a new report, and the report of the old suggestion.
        url = f"/v1/experiments/{EXP}/runs"
        old = {
            "mixture": dict(zip(DOMAINS, MIXTURES[0], strict=True)),
            "fidelity": {"params": 1e6},
            "metrics": {"loss/web": 3.0, "loss/code": 3.2},
            "cost": 1.0,
            "client_run_id": "old-0",
        }
        again = api.post(url, json=old)
        assert again.status_code == 200 and again.json()["id"] == "run_old0"
        new = api.post(
            url,
            json={**old, "client_run_id": "new-1", "mixture": dict(zip(DOMAINS, MIXTURES[3], strict=True))},
        )
        assert new.status_code == 201, new.text
        done = api.post(url, json={"id": "run_pending", "metrics": {"loss/web": 2.9, "loss/code": 3.0}})
        assert done.status_code == 200 and done.json()["state"] == "completed"
        assert api.get(f"/v1/experiments/{EXP}").json()["data_version"] == 5
        sugg = api.post(f"/v1/experiments/{EXP}/suggestions", json={"count": 2, "method": "design"})
        assert sugg.status_code == 201 and len(sugg.json()["runs"]) == 2
        created = api.post("/v1/experiments", json=spec(name="after-upgrade"))
        assert created.status_code == 201, created.text
