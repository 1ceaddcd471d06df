"""Authentication and tenancy: tokens, scopes, projects that cannot see each other, open mode on loopback."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from fastapi.testclient import TestClient
from mixopt_client import MixoptClient

from migrations import downgrade, upgrade
from service.api.app import create_app
from service.api.auth import PUBLIC_ROUTES, READ_OPERATIONS, WRITE_OPERATIONS
from service.cli import main
from service.db import make_engine, make_session_factory
from service.schemas import ExperimentCreate
from service.settings import InsecureConfigError, Settings, get_settings, is_loopback
from service.store import Store
from service.store.models import ApiToken
from service.store.tokens import Tokens, split_token
from tests.service.helpers import create, seed_runs, spec

MIXTURE = {"web": 0.4, "code": 0.3, "papers": 0.2, "math": 0.1}
REPORT = {"mixture": MIXTURE, "fidelity": {"params": 1e6}, "metrics": {"loss/web": 3.0, "loss/code": 3.1}}


@dataclass
class Secured:
    """An app that requires tokens, its token store, and a way to get a client acting as one token."""

    app: Any
    tokens: Tokens
    anonymous: TestClient

    def client(self, project: str, *scopes: str, **kwargs: Any) -> TestClient:
        issued = self.tokens.create(project, scopes, **kwargs)
        return TestClient(self.app, headers={"authorization": f"Bearer {issued.token}"})


@contextmanager
def secured_app(database_url: str, **overrides: Any) -> Iterator[Secured]:
    settings = Settings(database_url=database_url, auto_migrate=True, seed=1234, sync_budget_s=30.0,
                        auth="required", **overrides)
    app = create_app(settings)
    with TestClient(app) as anonymous:  # runs the lifespan once; the per-token clients share the app
        yield Secured(app, Tokens(app.state.mixopt.store.factory), anonymous)


@pytest.fixture
def secured(database_url: str) -> Iterator[Secured]:
    with secured_app(database_url) as sec:
        yield sec


@pytest.fixture
def secured_sqlite(tmp_path: Path) -> Iterator[Callable[..., Secured]]:
    """``make(**settings)``: a token-requiring app on a scratch SQLite file, shut down after the test."""
    with ExitStack() as stack:
        url = f"sqlite:///{tmp_path}/auth.db"
        yield lambda **overrides: stack.enter_context(secured_app(url, **overrides))


def assert_unauthenticated(r: Any, says: str) -> None:
    assert r.status_code == 401, r.text
    assert r.headers["www-authenticate"].startswith("Bearer")
    err = r.json()["error"]
    assert err["code"] == "unauthenticated" and says in err["message"], err


# ------------------------------------------------------------------------------------------------ tenancy
def test_projects_cannot_see_each_others_experiments_runs_or_jobs(secured: Secured) -> None:
    a = secured.client("team-a", "write")
    b = secured.client("team-b", "admin")
    exp = create(a, name="shared-name")
    eid = exp["id"]
    run_ids = seed_runs(a, eid, 3)
    job = a.post(f"/v1/experiments/{eid}/refits", json={"laws": ["regmix_linear"]})
    assert job.status_code == 202, job.text
    job_id = job.json()["job"]["id"]
    assert a.get(f"/v1/jobs/{job_id}").status_code == 200
    ses = a.post(f"/v1/experiments/{eid}/online-sessions", json={"method": "aioli"})
    assert ses.status_code == 201, ses.text
    ses_id = ses.json()["id"]

    # The same experiment name is free in another project: uniqueness is per project.
    other = create(b, name="shared-name")
    assert other["id"] != eid

    missing = b.get("/v1/experiments/exp_doesnotexist").json()["error"]
    calls = [
        ("GET", f"/v1/experiments/{eid}", None), ("PATCH", f"/v1/experiments/{eid}", {"name": "stolen"}),
        ("GET", f"/v1/experiments/{eid}/runs", None),
        ("GET", f"/v1/experiments/{eid}/runs/{run_ids[0]}", None),
        ("POST", f"/v1/experiments/{eid}/runs", REPORT),
        ("POST", f"/v1/experiments/{eid}/runs:batch", {"runs": [REPORT]}),
        ("POST", f"/v1/experiments/{eid}/suggestions", {"count": 1}),
        ("GET", f"/v1/experiments/{eid}/recommendation", None),
        ("POST", f"/v1/experiments/{eid}/predict", {"mixtures": [MIXTURE]}),
        ("GET", f"/v1/experiments/{eid}/fits", None), ("GET", f"/v1/experiments/{eid}/history", None),
        ("POST", f"/v1/experiments/{eid}/refits", {}),
        ("GET", f"/v1/experiments/{eid}/reoptimization", None),
        ("PUT", f"/v1/experiments/{eid}/reoptimization", {"every_runs": 5}),
        ("GET", f"/v1/experiments/{eid}/online-sessions", None),
        ("POST", f"/v1/experiments/{eid}/online-sessions", {"method": "aioli"}),
        ("GET", f"/v1/experiments/{eid}/online-sessions/{ses_id}", None),
        ("POST", f"/v1/experiments/{eid}/online-sessions/{ses_id}/observations",
         {"step": 1, "losses": {"web": 3.0, "code": 3.0, "papers": 3.0, "math": 3.0}}),
        ("GET", f"/dashboard/api/experiments/{eid}/overview", None),
        ("GET", f"/dashboard/api/experiments/{eid}/runs.csv", None),
    ]
    for method, path, body in calls:
        r = b.request(method, path, json=body)
        assert r.status_code == 404, (method, path, r.status_code, r.text)
        err = r.json()["error"]
        assert err["code"] == missing["code"] and err.get("field") == missing["field"]
    r = b.get(f"/v1/jobs/{job_id}")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert [e["id"] for e in b.get("/v1/experiments").json()["experiments"]] == [other["id"]]
    summaries = b.get("/dashboard/api/summaries", params={"id": [eid, other["id"]]}).json()["summaries"]
    assert summaries.keys() == {other["id"]}

    # Nothing the other project tried changed anything.
    got = a.get(f"/v1/experiments/{eid}").json()
    assert got["name"] == "shared-name" and got["run_counts"]["completed"] == 3
    assert len(a.get(f"/v1/experiments/{eid}/online-sessions").json()["sessions"]) == 1


# ------------------------------------------------------------------------------------------------- scopes
def test_scopes_are_enforced_and_a_hidden_experiment_stays_404(secured: Secured) -> None:
    writer = secured.client("team-a", "write")
    reader = secured.client("team-a", "read")
    outsider = secured.client("team-b", "read")
    admin = secured.client("team-a", "admin")
    eid = create(writer)["id"]

    assert reader.get(f"/v1/experiments/{eid}").status_code == 200
    assert reader.get(f"/v1/experiments/{eid}/runs").status_code == 200
    r = reader.post(f"/v1/experiments/{eid}/runs", json=REPORT)
    assert r.status_code == 403, r.text
    err = r.json()["error"]
    assert err["code"] == "insufficient_scope" and "'write'" in err["message"]
    assert err["details"] == {"required_scope": "write"}
    assert reader.post("/v1/experiments", json=spec(name="by-reader")).status_code == 403
    assert reader.patch(f"/v1/experiments/{eid}", json={"state": "archived"}).status_code == 403
    assert reader.post(f"/v1/experiments/{eid}/suggestions", json={"count": 1}).status_code == 403
    # predict is a POST that only reads: a read token may call it (409: no data to predict from yet)
    assert reader.post(f"/v1/experiments/{eid}/predict", json={"mixtures": [MIXTURE]}).status_code == 409
    assert reader.post(f"/v1/experiments/{eid}/recommendation", json={"candidates": [MIXTURE]}
                       ).status_code == 409
    # a too-weak token on another project's experiment learns nothing: 404, not 403
    r = outsider.post(f"/v1/experiments/{eid}/runs", json=REPORT)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"

    assert writer.post(f"/v1/experiments/{eid}/runs", json=REPORT).status_code == 201
    policy = {"every_runs": 5}
    r = writer.put(f"/v1/experiments/{eid}/reoptimization", json=policy)
    assert r.status_code == 403 and r.json()["error"]["details"] == {"required_scope": "admin"}
    assert admin.put(f"/v1/experiments/{eid}/reoptimization", json=policy).status_code == 200
    assert reader.get(f"/v1/experiments/{eid}").json()["run_counts"]["completed"] == 1


def test_a_body_that_fails_validation_is_answered_only_after_the_token(secured: Secured) -> None:
    """FastAPI validates the body before dependencies run; a 422 must not reach a caller without a token."""
    writer = secured.client("team-a", "write")
    reader = secured.client("team-a", "read")
    outsider = secured.client("team-b", "write")
    eid = create(writer)["id"]
    url = f"/v1/experiments/{eid}/runs"
    headers = {"content-type": "application/json"}
    for body in (b"{not json", b'{"mixture": "not a dict"}'):
        assert_unauthenticated(secured.anonymous.post(url, content=body, headers=headers), "needs a token")
        assert reader.post(url, content=body, headers=headers).status_code == 403
        # another project's experiment answers exactly like one that does not exist
        missing = outsider.post("/v1/experiments/exp_missing/runs", content=body, headers=headers)
        assert outsider.post(url, content=body, headers=headers).json() == missing.json()
        r = writer.post(url, content=body, headers=headers)
        assert r.status_code == 422 and r.json()["error"]["field"] in ("body", "mixture"), r.text
    assert_unauthenticated(secured.anonymous.post("/v1/experiments", content=b"[", headers=headers),
                           "needs a token")


def test_every_route_is_classified(secured_sqlite: Callable[..., Secured]) -> None:
    """A new route must be put in a scope list on purpose (unlisted non-GET routes need admin)."""
    sec = secured_sqlite()
    ops = {(m.upper(), path) for path, item in sec.app.openapi()["paths"].items() for m in item}
    unlisted = {op for op in ops - WRITE_OPERATIONS - READ_OPERATIONS - PUBLIC_ROUTES if op[0] != "GET"}
    assert unlisted == {("PUT", "/v1/experiments/{experiment_id}/reoptimization")}, unlisted
    assert ops >= WRITE_OPERATIONS | READ_OPERATIONS  # no stale entries


# ---------------------------------------------------------------------------------------- bad tokens
def test_missing_malformed_unknown_revoked_and_expired_tokens_are_401(
        secured_sqlite: Callable[..., Secured]) -> None:
    sec = secured_sqlite(auth_cache_s=0.0)
    assert_unauthenticated(sec.anonymous.get("/v1/experiments"), "needs a token")
    assert_unauthenticated(sec.anonymous.get("/v1/experiments", headers={"authorization": "Basic dTpw"}),
                           "malformed")
    assert_unauthenticated(sec.anonymous.get("/v1/experiments", headers={"authorization": "Bearer nonsense"}),
                           "malformed")
    good = sec.tokens.create("team-a", ["read"])
    prefix, _ = split_token(good.token) or ("", "")
    forged = f"mxo_{prefix}_{'A' * 43}"
    def list_with(token: str) -> Any:
        return sec.anonymous.get("/v1/experiments", headers={"authorization": f"Bearer {token}"})

    assert_unauthenticated(list_with(forged), "unknown token")
    assert list_with(good.token).status_code == 200
    sec.tokens.revoke(good.row.id)
    assert_unauthenticated(list_with(good.token), "revoked")
    expired = sec.tokens.create("team-a", ["admin"], expires_in=timedelta(seconds=-1))
    assert_unauthenticated(list_with(expired.token), "expired")
    # public routes stay public
    for path in ("/healthz", "/readyz", "/openapi.json", "/docs", "/redoc", "/dashboard", "/dashboard/static/api.js"):
        assert sec.anonymous.get(path).status_code == 200, path


def test_revocation_takes_effect_within_the_cache_window(secured_sqlite: Callable[..., Secured]
                                                         ) -> None:
    sec = secured_sqlite(auth_cache_s=0.3)
    issued = sec.tokens.create("team-a", ["read"])
    headers = {"authorization": f"Bearer {issued.token}"}
    assert sec.anonymous.get("/v1/experiments", headers=headers).status_code == 200
    sec.tokens.revoke(issued.row.id)
    time.sleep(0.4)
    assert_unauthenticated(sec.anonymous.get("/v1/experiments", headers=headers), "revoked")


def test_token_lookups_are_cached_and_last_used_is_written_sparingly(
        secured_sqlite: Callable[..., Secured]) -> None:
    sec = secured_sqlite(auth_cache_s=3600.0, token_touch_interval_s=3600.0)
    issued = sec.tokens.create("team-a", ["read"])
    headers = {"authorization": f"Bearer {issued.token}"}
    assert sec.anonymous.get("/v1/experiments", headers=headers).status_code == 200
    first = sec.tokens.find(issued.row.prefix)
    assert first is not None and first.last_used_at is not None
    factory = sec.tokens.factory
    with factory() as s, s.begin():
        s.execute(sa.update(ApiToken).where(ApiToken.id == issued.row.id).values(last_used_at=None))
    sec.tokens.revoke(issued.row.id)
    # Within the cache window the process neither re-reads the row nor writes last_used_at again.
    for _ in range(3):
        assert sec.anonymous.get("/v1/experiments", headers=headers).status_code == 200
    again = sec.tokens.find(issued.row.prefix)
    assert again is not None and again.last_used_at is None


def test_secrets_are_stored_only_as_hashes(database_url: str) -> None:
    upgrade(database_url)
    engine = make_engine(database_url)
    tokens = Tokens(make_session_factory(engine))
    issued = tokens.create("team-a", ["read", "write"], name="trainer")
    prefix, secret = split_token(issued.token) or ("", "")
    assert issued.token == f"mxo_{prefix}_{secret}" and len(secret) >= 43
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT * FROM api_tokens")).mappings().one()
    assert secret not in repr(dict(row)) and issued.token not in repr(dict(row))
    assert row["secret_sha256"] == hashlib.sha256(secret.encode()).hexdigest()
    assert row["prefix"] == prefix and row["project"] == "team-a" and row["name"] == "trainer"
    engine.dispose()


# ------------------------------------------------------------------------------------- open mode, binding
def test_open_mode_on_loopback_needs_no_token(api: TestClient) -> None:
    exp = create(api)
    assert api.get(f"/v1/experiments/{exp['id']}").status_code == 200
    # a token is ignored, not checked, when the API runs open (the dashboard may send one)
    r = api.post(f"/v1/experiments/{exp['id']}/runs", json=REPORT,
                 headers={"authorization": "Bearer whatever"})
    assert r.status_code == 201, r.text
    assert api.put(f"/v1/experiments/{exp['id']}/reoptimization", json={"every_runs": 3}).status_code == 200


def test_open_mode_says_so_loudly(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="mixopt.api"):
        create_app(Settings(database_url=f"sqlite:///{tmp_path}/open.db"))
    assert any(r.levelno == logging.WARNING and "auth disabled" in r.getMessage()
               and "127.0.0.1:8000" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.9.8.7", True), ("::1", True), ("[::1]", True), ("localhost", True),
    ("0.0.0.0", False), ("::", False), ("10.0.0.5", False), ("example.com", False), ("", False)])
def test_loopback_detection(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_auto_requires_auth_off_loopback_and_off_is_refused_there(tmp_path: Path) -> None:
    assert Settings(host="0.0.0.0").auth_enabled() and Settings(auth="required").auth_enabled()
    assert not Settings(host="127.0.0.1").auth_enabled() and not Settings(auth="off").auth_enabled()
    with pytest.raises(InsecureConfigError, match="loopback"):
        Settings(host="0.0.0.0", auth="off").auth_enabled()
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path}/bind.db", host="0.0.0.0"))
    with TestClient(app) as client:
        assert_unauthenticated(client.get("/v1/experiments"), "needs a token")


def test_serve_refuses_an_open_api_on_a_public_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIXOPT_AUTH", "off")
    monkeypatch.setenv("MIXOPT_HOST", "127.0.0.1")  # restored afterwards: serve passes --host on through it
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(main, ["serve", "--host", "0.0.0.0"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code != 0
    assert "only allowed on a loopback address" in result.output and "0.0.0.0" in result.output


def test_client_sends_mixopt_token_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIXOPT_TOKEN", "mxo_0123456789ab_" + "x" * 43)
    with MixoptClient("http://127.0.0.1:1") as mx:
        assert mx.http.headers["authorization"] == "Bearer mxo_0123456789ab_" + "x" * 43
    with MixoptClient("http://127.0.0.1:1", token="explicit") as mx:
        assert mx.http.headers["authorization"] == "Bearer explicit"


# --------------------------------------------------------------------------------------------------- CLI
def test_token_cli_create_list_revoke_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path}/cli.db"
    monkeypatch.setenv("MIXOPT_DATABASE_URL", url)
    get_settings.cache_clear()
    runner = CliRunner()
    try:
        made = runner.invoke(main, ["token", "create", "--project", "vision", "--scopes", "read,write",
                                    "--name", "trainer", "--expires-days", "30"])
        assert made.exit_code == 0, made.output
        token = made.stdout.strip().splitlines()[-1]
        parts = split_token(token)
        assert parts is not None
        listed = runner.invoke(main, ["token", "list", "--project", "vision"])
        assert listed.exit_code == 0, listed.output
        assert parts[0] in listed.output and "trainer" in listed.output and "read,write" in listed.output
        assert parts[1] not in listed.output and "active" in listed.output
        assert runner.invoke(main, ["token", "list", "--project", "other"]).output.count("\n") == 1  # header

        app = create_app(Settings(database_url=url, auth="required", auth_cache_s=0.0))
        with TestClient(app, headers={"authorization": f"Bearer {token}"}) as client:
            exp = create(client, name="from-cli-token")
            token_id = listed.output.splitlines()[1].split()[0]
            revoked = runner.invoke(main, ["token", "revoke", token_id])
            assert revoked.exit_code == 0, revoked.output
            assert_unauthenticated(client.get(f"/v1/experiments/{exp['id']}"), "revoked")
        assert "revoked" in runner.invoke(main, ["token", "list"]).output
        bad = runner.invoke(main, ["token", "create", "--project", "vision", "--scopes", "superuser"])
        assert bad.exit_code != 0 and "unknown scope" in bad.output
        assert runner.invoke(main, ["token", "revoke", "tok_nope"]).exit_code != 0
    finally:
        get_settings.cache_clear()


# ---------------------------------------------------------------------------------------------- migration
def test_migration_assigns_existing_experiments_to_the_default_project(database_url: str) -> None:
    upgrade(database_url, "0003")
    engine = make_engine(database_url)
    store = Store(engine, make_session_factory(engine))
    old = store.create_experiment(ExperimentCreate(**spec(name="before-auth")))
    legacy = store.create_experiment(ExperimentCreate(**spec(name="odd-row")), project="legacy")
    # The run goes in through the schema as it is at 0003 (reflected): today's models have later columns.
    runs = sa.Table("runs", sa.MetaData(), autoload_with=engine)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(runs.insert().values(id="run_before_auth", experiment_id=old.id, mixture=list(MIXTURE.values()),
                                          fidelity=[1e6], state="completed", metrics=REPORT["metrics"],
                                          method="external", created_at=now, updated_at=now))
    engine.dispose()

    upgrade(database_url)
    engine = sa.create_engine(database_url)
    with engine.connect() as conn:
        projects = set(conn.execute(sa.text("SELECT name FROM projects")).scalars())
        rows = dict(conn.execute(sa.text("SELECT id, project FROM experiments")).all())
        n_runs = conn.execute(sa.text("SELECT count(*) FROM runs")).scalar()
    assert projects == {"default", "legacy"}
    assert rows == {old.id: "default", legacy.id: "legacy"}
    assert n_runs == 1  # rebuilding the table on SQLite must not cascade-delete its runs
    fks = sa.inspect(engine).get_foreign_keys("experiments")
    assert [(fk["referred_table"], fk["referred_columns"]) for fk in fks] == [("projects", ["name"])]
    engine.dispose()

    with TestClient(create_app(Settings(database_url=database_url, auto_migrate=True))) as client:
        got = client.get(f"/v1/experiments/{old.id}")
        assert got.status_code == 200 and got.json()["run_counts"]["completed"] == 1
        assert client.get(f"/v1/experiments/{legacy.id}").status_code == 404  # not the open mode's project

    downgrade(database_url, "0003")
    engine = sa.create_engine(database_url)
    assert "projects" not in sa.inspect(engine).get_table_names()
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM experiments")).scalar() == 2
        assert conn.execute(sa.text("SELECT count(*) FROM runs")).scalar() == 1
    engine.dispose()
