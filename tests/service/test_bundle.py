"""Experiment bundles: export -> import (SQLite, PostgreSQL) -> export gives the same bytes; --new-id copies.

The source experiment holds every kind of row: completed, failed and running runs, suggested runs with
their proposal and job (one from a candidate pool), a refit's fits and recommendation, a re-optimization
policy, and an online session with observations, plus floats whose shortest repr has 17 digits and
non-ASCII client ids.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from fastapi.testclient import TestClient

from migrations import upgrade
from service.api.app import create_app
from service.cli import main
from service.db import make_engine
from service.settings import Settings, get_settings
from service.store import bundle
from service.store.models import Base
from tests.service.helpers import create, seed_runs, wait_for_job

FAST_LAWS = ["regmix_linear", "data_mixing_law", "bimix"]
REF = {"web": 3.0, "code": 2.5, "papers": 3.2, "math": 2.0}


def rich_experiment(api: TestClient) -> str:
    exp = create(api, name="bundle-src", metadata={"team": "pretrain", "notes": "ünïcode ✓"})
    eid = exp["id"]
    seed_runs(api, eid, 24)
    source = create(api, name="bundle-warm-source")["id"]
    seed_runs(api, source, 4, seed=7)
    assert api.post(f"/v1/experiments/{eid}/transfers", json={"experiment_id": source}).json()["transferred"] == 4
    odd = {"mixture": {"web": 0.1, "code": 0.2, "papers": 0.30000000000000004, "math": 0.39999999999999997},
           "fidelity": {"params": 1e6}, "metrics": {"loss/web": 0.30000000000000004, "loss/code": 1e-300},
           "cost": 1.0000000000000002, "client_run_id": "ñ-λ-🚀"}
    assert api.post(f"/v1/experiments/{eid}/runs", json=odd).status_code == 201
    failed = {"mixture": {"web": 0.25, "code": 0.25, "papers": 0.25, "math": 0.25}, "state": "failed",
              "fidelity": {"params": 1e7}, "error": "OOM at step 12", "client_run_id": "failed-1"}
    assert api.post(f"/v1/experiments/{eid}/runs", json=failed).status_code == 201
    sugg = api.post(f"/v1/experiments/{eid}/suggestions", json={"count": 3, "method": "design"})
    assert sugg.status_code == 201, sugg.text
    first = sugg.json()["runs"][0]["id"]
    pool = [{"mixture": {"web": 0.4, "code": 0.3, "papers": 0.2 + k / 100, "math": 0.1 - k / 100}}
            for k in range(5)]
    from_pool = api.post(f"/v1/experiments/{eid}/suggestions", json={"count": 1, "candidates": pool})
    assert from_pool.status_code == 201, from_pool.text
    assert api.post(f"/v1/experiments/{eid}/runs", json={"id": first, "state": "running"}).status_code == 200
    refit = api.post(f"/v1/experiments/{eid}/refits", json={"laws": FAST_LAWS})
    assert wait_for_job(api, refit.json()["job"]["id"])["state"] == "succeeded"
    policy = {"every_runs": 5, "every_minutes": 12.5, "ready_suggestions": 2, "method": "design"}
    assert api.put(f"/v1/experiments/{eid}/reoptimization", json=policy).status_code == 200
    base = f"/v1/experiments/{eid}/online-sessions"
    ses = api.post(base, json={"method": "doremi", "reference_losses": REF, "client_session_id": "train-1"})
    for step in (100, 200):
        losses = {d: v + 0.1 * step / 100 for d, v in REF.items()}
        observed = api.post(f"{base}/{ses.json()['id']}/observations", json={"step": step, "losses": losses})
        assert observed.status_code == 200
    return eid


def _engine_of(api: TestClient) -> sa.Engine:
    return api.app.state.mixopt.store.engine  # type: ignore[attr-defined, no-any-return]


def _fresh_sqlite(tmp_path: Path, name: str) -> str:
    url = f"sqlite:///{tmp_path}/{name}.db"
    upgrade(url)
    return url


def _fresh_postgres(factory: Callable[[], str]) -> str:
    url = factory()
    upgrade(url)
    return url


def _roundtrip(text: str, url: str, **kw: Any) -> tuple[str, str]:
    engine = make_engine(url)
    try:
        exp_id = bundle.import_bundle(engine, bundle.loads(text), **kw)
        return exp_id, bundle.dumps(bundle.export_experiment(engine, exp_id))
    finally:
        engine.dispose()


def test_export_import_export_is_byte_identical_on_sqlite_and_postgres(
        api: TestClient, tmp_path: Path, postgres_db_factory: Callable[[], str]) -> None:
    eid = rich_experiment(api)
    first = bundle.dumps(bundle.export_experiment(_engine_of(api), eid))
    doc = json.loads(first)
    # Every kind of row is in it, with every column the model maps (pk aside).
    for table in [bundle.EXPERIMENTS, *(t for t, _, _ in bundle.experiment_tables())]:
        rows = [doc["experiment"]] if table is bundle.EXPERIMENTS else doc[table.name]
        assert rows, f"no {table.name} rows exported"
        assert all(set(r) == {c.name for c in table.columns} - {"pk"} for r in rows), table.name
    assert {r["state"] for r in doc["runs"]} == {"completed", "failed", "running", "suggested"}
    assert len(doc["runs"]) == 24 + 2 + 3 + 1 and len(doc["online_observations"]) == 2
    assert {p["kind"] for p in doc["proposals"]} == {"suggestion", "recommendation"}
    assert {j["kind"] for j in doc["jobs"]} == {"propose", "refit"}
    odd = next(r for r in doc["runs"] if r["client_run_id"] == "ñ-λ-🚀")
    assert odd["metrics"] == {"loss/web": 0.30000000000000004, "loss/code": 1e-300}
    assert odd["cost"] == 1.0000000000000002

    for url in (_fresh_sqlite(tmp_path, "target"), _fresh_postgres(postgres_db_factory)):
        exp_id, again = _roundtrip(first, url)
        assert exp_id == eid
        assert again == first, f"bundle changed through {url.split(':')[0]}"
        # The restored experiment serves the same data through the API.
        with TestClient(create_app(Settings(database_url=url, seed=1234))) as restored:
            for path in (f"/v1/experiments/{eid}/runs?page_size=1000", f"/v1/experiments/{eid}/fits",
                         f"/v1/experiments/{eid}/history", f"/v1/experiments/{eid}/reoptimization"):
                assert restored.get(path).json() == api.get(path).json(), path
            assert restored.get(f"/v1/experiments/{eid}").json() == api.get(f"/v1/experiments/{eid}").json()


def test_http_export_is_the_same_bundle(api: TestClient) -> None:
    exp = create(api)
    seed_runs(api, exp["id"], 3)
    r = api.get(f"/v1/experiments/{exp['id']}:export")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    assert r.text == bundle.dumps(bundle.export_experiment(_engine_of(api), exp["id"]))
    assert api.get("/v1/experiments/exp_missing:export").status_code == 404


def test_existing_id_is_refused_and_new_id_copies_consistently(api: TestClient) -> None:
    eid = rich_experiment(api)
    engine = _engine_of(api)
    original = bundle.export_experiment(engine, eid)
    with pytest.raises(bundle.ExperimentExists, match="--new-id"):
        bundle.import_bundle(engine, original)
    with pytest.raises(bundle.BundleError, match="--name"):  # same name in the same project
        bundle.import_bundle(engine, original, new_ids=True)
    copy_id = bundle.import_bundle(engine, original, new_ids=True, name="bundle-copy")
    copy = bundle.export_experiment(engine, copy_id)
    assert copy_id != eid and copy["experiment"]["name"] == "bundle-copy"

    old_ids = _ids(original)
    new_ids = _ids(copy)
    assert not old_ids & new_ids, "a copied row kept its id"
    # Mapping the new ids back gives the original bundle: every reference followed its row.
    back = {n: o for o, n in zip(_ordered_ids(original), _ordered_ids(copy), strict=True)}
    restored = json.loads(json.dumps(copy), object_hook=lambda d: {k: _unmap(v, back) for k, v in d.items()})
    restored["experiment"]["name"] = original["experiment"]["name"]
    assert bundle.dumps(restored) == bundle.dumps(original)
    run_ids = {r["id"] for r in copy["runs"]}
    proposal_ids = {p["id"] for p in copy["proposals"]}
    assert all(r["proposal_id"] in proposal_ids for r in copy["runs"] if r["proposal_id"])
    propose = next(j for j in copy["jobs"] if j["kind"] == "propose")
    assert set(propose["result"]["run_ids"]) <= run_ids
    # Both experiments are listed and independent.
    assert api.get(f"/v1/experiments/{copy_id}/runs", params={"page_size": 1000}).json()["runs"]


def _ids(b: dict[str, Any]) -> set[str]:
    return set(_ordered_ids(b))


def _ordered_ids(b: dict[str, Any]) -> list[str]:
    out = [b["experiment"]["id"]]
    for table, _, _ in bundle.experiment_tables():
        out += [r["id"] for r in b[table.name] if "id" in r]
    return out


def _unmap(value: Any, back: dict[str, str]) -> Any:
    if isinstance(value, str):
        return back.get(value, value)
    if isinstance(value, list):
        return [_unmap(v, back) for v in value]
    return value


def test_bad_bundles_are_refused_with_a_reason(api: TestClient) -> None:
    exp = create(api)
    seed_runs(api, exp["id"], 2)
    engine = _engine_of(api)
    good = bundle.export_experiment(engine, exp["id"])
    with pytest.raises(bundle.BundleError, match="version 2 is not supported"):
        bundle.import_bundle(engine, {**good, "version": 2})
    with pytest.raises(bundle.BundleError, match="not a mixopt bundle"):
        bundle.loads('{"runs": []}')
    extra_col = json.loads(json.dumps(good))
    extra_col["runs"][0]["colour"] = "blue"
    with pytest.raises(bundle.BundleError, match=r"runs\[0\].*colour"):
        bundle.import_bundle(engine, extra_col, new_ids=True, name="x")
    bad_ts = json.loads(json.dumps(good))
    bad_ts["runs"][1]["created_at"] = "yesterday"
    with pytest.raises(bundle.BundleError, match=r"runs\[1\]\.created_at"):
        bundle.import_bundle(engine, bad_ts, new_ids=True, name="y")
    # Nothing of the refused imports was stored (all or nothing).
    assert len(api.get("/v1/experiments").json()["experiments"]) == 1


def test_a_missing_project_is_created_on_import(api: TestClient, tmp_path: Path) -> None:
    exp = create(api)
    seed_runs(api, exp["id"], 2)
    moved = bundle.export_experiment(_engine_of(api), exp["id"])
    moved["experiment"]["project"] = "team-x"
    url = _fresh_sqlite(tmp_path, "projects")
    exp_id, again = _roundtrip(bundle.dumps(moved), url)
    assert json.loads(again)["experiment"]["project"] == "team-x"
    with sa.create_engine(url).connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM projects WHERE name = 'team-x'")) == 1


def test_a_table_added_later_is_carried_without_code_changes() -> None:
    """Ownership comes from foreign keys: every table that points at an experiment (or at one of its rows)."""
    owned = {t.name for t, _, _ in bundle.experiment_tables()}
    expected = {t.name for t in Base.metadata.sorted_tables if not t.info.get("derived")
                and any(fk.column.table.name in {"experiments", *owned} for fk in t.foreign_keys)}
    assert owned == expected and "fitted_models" not in owned  # derived: recomputed, never loaded from a file
    assert {"runs", "jobs", "fits", "proposals", "reopt_policies", "online_sessions",
            "online_observations", "candidate_pools"} <= owned


def test_cli_export_and_import_bundle(api: TestClient, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    exp = create(api)
    seed_runs(api, exp["id"], 4)
    source_url = str(_engine_of(api).url.render_as_string(hide_password=False))
    target_url = _fresh_sqlite(tmp_path, "cli-target")
    out1, out2 = tmp_path / "one.json", tmp_path / "two.json"

    def run(url: str, *args: str) -> Any:
        monkeypatch.setenv("MIXOPT_DATABASE_URL", url)
        get_settings.cache_clear()
        try:
            return CliRunner().invoke(main, list(args))
        finally:
            get_settings.cache_clear()

    exported = run(source_url, "export", exp["id"], "--out", str(out1))
    assert exported.exit_code == 0, exported.output
    imported = run(target_url, "import-bundle", str(out1))
    assert imported.exit_code == 0, imported.output
    assert imported.stdout.strip() == exp["id"]
    refused = run(target_url, "import-bundle", str(out1))
    assert refused.exit_code == 1 and "already exists" in refused.output and "--new-id" in refused.output
    assert run(target_url, "export", exp["id"], "--out", str(out2)).exit_code == 0
    assert out1.read_bytes() == out2.read_bytes()
    missing = run(target_url, "export", "exp_nope", "--out", str(tmp_path / "three.json"))
    assert missing.exit_code == 1 and "not found" in missing.output and not (tmp_path / "three.json").exists()
    unmigrated = run(f"sqlite:///{tmp_path}/empty.db", "import-bundle", str(out1))
    assert unmigrated.exit_code == 1 and "mixopt migrate" in unmigrated.output


EXTREMES = {"neg_zero": -0.0, "big": 1e20, "huge": 1.7976931348623157e308, "denormal": 5e-324,
            "int_past_64_bits": 2**70, "int_1e20": 10**20, "negative_int": -(2**63)}


@pytest.fixture
def sqlite_api(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(database_url=f"sqlite:///{tmp_path}/source.db", auto_migrate=True, seed=1234)
    with TestClient(create_app(settings)) as client:
        yield client


def test_extreme_numbers_round_trip_sqlite_postgres_sqlite_byte_identically(
        sqlite_api: TestClient, tmp_path: Path, postgres_db_factory: Callable[[], str]) -> None:
    """jsonb stored numbers as numeric: -0.0 came back 0.0 and 1e20 as an integer."""
    exp = create(sqlite_api)
    seed_runs(sqlite_api, exp["id"], 3)
    doc = bundle.export_experiment(_engine_of(sqlite_api), exp["id"])
    doc["experiment"]["hints"] = {"extremes": EXTREMES}
    doc["runs"][0]["metrics"] = {**doc["runs"][0]["metrics"], **{f"x/{k}": v for k, v in EXTREMES.items()}}
    doc["runs"][1]["mixture"] = [-0.0, 1e20, 5e-324, 2**70]
    doc["runs"][2]["cost"] = 1e20
    source = _fresh_sqlite(tmp_path, "source-extremes")
    _, first = _roundtrip(bundle.dumps(doc), source)
    stored = json.loads(first)
    assert _same(stored["experiment"]["hints"]["extremes"], EXTREMES)
    assert _same({k[2:]: v for k, v in stored["runs"][0]["metrics"].items() if k.startswith("x/")}, EXTREMES)
    assert _same(stored["runs"][1]["mixture"], [-0.0, 1e20, 5e-324, 2**70])
    assert _same(stored["runs"][2]["cost"], 1e20)
    for text in ("-0.0", "1e+20", "5e-324", str(2**70), str(10**20)):
        assert text in first

    _, through_pg = _roundtrip(first, _fresh_postgres(postgres_db_factory))
    assert through_pg == first
    _, back = _roundtrip(through_pg, _fresh_sqlite(tmp_path, "back"))
    assert back == first


def _same(got: Any, want: Any) -> bool:
    """Equal with the same types and the same sign of zero, at any depth."""
    if isinstance(want, dict):
        return isinstance(got, dict) and got.keys() == want.keys() and all(_same(got[k], want[k]) for k in want)
    if isinstance(want, list):
        return isinstance(got, list) and len(got) == len(want) and all(map(_same, got, want))
    if isinstance(want, float):
        return type(got) is float and got == want and math.copysign(1, got) == math.copysign(1, want)
    return type(got) is type(want) and got == want


def test_nonfinite_values_stored_earlier_are_exported_as_null_and_listed(
        sqlite_api: TestClient, tmp_path: Path, postgres_db_factory: Callable[[], str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A SQLite bundle holding NaN was not valid JSON, and PostgreSQL refused to import it."""
    exp = create(sqlite_api)
    run_ids = seed_runs(sqlite_api, exp["id"], 2)
    engine = _engine_of(sqlite_api)
    with engine.begin() as conn:  # as stored before non-finite numbers were refused
        conn.execute(sa.text("UPDATE runs SET metrics = :m, cost = :c WHERE id = :id"),
                     {"m": '{"loss/web": NaN, "loss/code": 3.5}', "c": float("inf"), "id": run_ids[0]})
    text = bundle.dumps(bundle.export_experiment(engine, exp["id"]))
    doc = json.loads(text, parse_constant=lambda token: pytest.fail(f"{token} in the bundle"))
    assert doc["runs"][0]["metrics"] == {"loss/web": None, "loss/code": 3.5} and doc["runs"][0]["cost"] is None
    assert doc[bundle.NONFINITE] == [{"at": "runs[0].metrics.loss/web", "value": "NaN"},
                                     {"at": "runs[0].cost", "value": "Infinity"}]

    for url in (_fresh_postgres(postgres_db_factory), _fresh_sqlite(tmp_path, "target")):
        _, again = _roundtrip(text, url)
        restored = json.loads(again)
        assert bundle.NONFINITE not in restored
        assert restored["runs"] == doc["runs"]

    monkeypatch.setenv("MIXOPT_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    get_settings.cache_clear()
    try:
        cli = CliRunner().invoke(main, ["export", exp["id"], "--out", str(tmp_path / "cli.json")])
    finally:
        get_settings.cache_clear()
    assert cli.exit_code == 0, cli.output
    assert "runs[0].metrics.loss/web is stored as NaN" in cli.stderr and "runs[0].cost" in cli.stderr
    assert (tmp_path / "cli.json").read_text(encoding="utf-8") == text


def test_a_bundle_with_a_nonfinite_number_is_refused_and_stores_nothing(sqlite_api: TestClient) -> None:
    exp = create(sqlite_api)
    seed_runs(sqlite_api, exp["id"], 2)
    engine = _engine_of(sqlite_api)
    doc = bundle.export_experiment(engine, exp["id"])
    text = bundle.dumps(doc).replace('"loss/code":', '"loss/code":NaN,"was":', 1)
    with pytest.raises(bundle.BundleError, match="NaN is not a JSON number"):
        bundle.loads(text)
    doc["runs"][1]["metrics"]["loss/web"] = float("-inf")
    with pytest.raises(bundle.BundleError, match=r"runs\[1\]\.metrics\.loss/web: -Infinity"):
        bundle.import_bundle(engine, doc, new_ids=True, name="copy")
    assert len(sqlite_api.get("/v1/experiments").json()["experiments"]) == 1
