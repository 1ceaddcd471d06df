"""Admission before work: authentication before the body is read, text that every store and response can
hold, and rate limits keyed on who the caller is rather than on how they spell the header.

Regression tests for the adversarial probe (issue 14: items 1, 3, 4, 10 and 18).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

import service.api.request_body as request_body
from service.api.app import create_app
from service.api.auth import PUBLIC_ROUTES, is_protected
from service.settings import Settings
from service.store.tokens import Tokens
from tests.service.helpers import create, spec, state_of

MIXTURE = {"web": 0.4, "code": 0.3, "papers": 0.2, "math": 0.1}
REPORT = {"mixture": MIXTURE, "fidelity": {"params": 1e6}, "metrics": {"loss/web": 3.0, "loss/code": 3.1}}
JSON = {"content-type": "application/json"}


def raw(body: Any) -> bytes:
    """JSON as a client would send it: ``json.dumps`` writes a lone surrogate as the escape ``\\ud800``."""
    return json.dumps(body).encode()


def error_of(r: Any, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    return r.json()["error"]  # type: ignore[no-any-return]


def secured(database_url: str, **overrides: Any) -> tuple[TestClient, Tokens]:
    settings = Settings(database_url=database_url, auto_migrate=True, seed=1, auth="required", **overrides)
    app = create_app(settings)
    return TestClient(app), Tokens(app.state.mixopt.store.factory)


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


# ------------------------------------------------------------------------------------- text in requests
@pytest.mark.parametrize("bad", ["\ud800", "\udfff", "a\x00b"])
def test_a_lone_surrogate_or_nul_in_the_spec_is_a_422_and_stores_nothing(api: TestClient, bad: str) -> None:
    """It used to be stored (SQLite), answer 500, and break the project's experiment list from then on."""
    create(api, name="kept")
    body = spec(name="poisoned", search={"default_method": bad})
    err = error_of(api.post("/v1/experiments", content=raw(body), headers=JSON), 422)
    assert err["field"] == "search.default_method" and err["code"] == "invalid_input", err
    listed = api.get("/v1/experiments")
    assert listed.status_code == 200, listed.text
    assert [e["name"] for e in listed.json()["experiments"]] == ["kept"]


@pytest.mark.parametrize(("path", "body", "field"), [
    ("runs", {**REPORT, "metrics": {"loss/web": 3.0, "\ud800": 1.0}}, "metrics"),
    ("runs", {**REPORT, "id": "\udc00"}, "id"),
    ("runs", {**REPORT, "mixture": {**MIXTURE, "we\x00b": 0.0}}, "mixture"),
    ("runs:batch", {"runs": [REPORT, {**REPORT, "fidelity": {"\ud83d": 1e6}}]}, "runs[1].fidelity"),
    ("predict", {"mixtures": [{**MIXTURE, "\ud800": 0.0}]}, "mixtures[0]"),
    ("recommendation", {"candidates": [MIXTURE, {"\udbff": 1.0}]}, "candidates[1]"),
    ("suggestions", {"count": 1, "candidates": [{"\ud800": 1.0}]}, "candidates[0]"),
    ("online-sessions", {"method": "doremi", "initial_weights": {"\ud800": 1.0}}, "initial_weights"),
    ("online-sessions", {"method": "doremi", "hyperparameters": {"\ud800": 1.0}}, "hyperparameters"),
])
def test_bad_text_in_keys_and_ids_is_a_422_naming_the_field(api: TestClient, path: str, body: dict[str, Any],
                                                            field: str) -> None:
    exp = create(api)
    before = state_of(api, exp["id"])
    err = error_of(api.post(f"/v1/experiments/{exp['id']}/{path}", content=raw(body), headers=JSON), 422)
    assert err["field"] == field, err
    assert "surrogate" in err["message"] or "NUL" in err["message"], err
    assert state_of(api, exp["id"]) == before


def test_online_observations_with_a_bad_key_are_a_422(api: TestClient) -> None:
    exp = create(api)
    session = api.post(f"/v1/experiments/{exp['id']}/online-sessions", json={"method": "stratified"}).json()
    url = f"/v1/experiments/{exp['id']}/online-sessions/{session['id']}/observations"
    err = error_of(api.post(url, content=raw({"step": 1, "losses": {"\ud800": 2.0}}), headers=JSON), 422)
    assert err["field"] == "losses", err


def test_cesu_encoded_surrogate_bytes_are_refused_too(api: TestClient) -> None:
    """Python's JSON decoder turns the bytes ED A0 80 into a lone surrogate, not a decoding error."""
    body = raw(spec(name="cesu")).replace(b'"cesu"', b'"ce\xed\xa0\x80su"')
    err = error_of(api.post("/v1/experiments", content=body, headers=JSON), 422)
    assert err["field"] == "name", err


def test_nul_in_a_query_is_a_422_and_in_an_id_a_404(api: TestClient) -> None:
    """``q=%00`` matched every experiment on SQLite; an id with NUL was a 422 on PostgreSQL."""
    exp = create(api)
    err = error_of(api.get("/v1/experiments", params={"q": "\x00"}), 422)
    assert err["field"] == "q", err
    assert error_of(api.get("/v1/experiments/exp%00x"), 404)["field"] == "experiment_id"
    assert error_of(api.get(f"/v1/experiments/{exp['id']}/runs/run%00"), 404)["field"] == "run_id"


def test_ordinary_unicode_and_escapes_pass(api: TestClient) -> None:
    exp = create(api, name="données \u00e9t\u00e9 😀", metadata={"note": "tab\tand \\u0000 as text"})
    assert api.get(f"/v1/experiments/{exp['id']}").json()["name"] == "données été 😀"


def test_large_bodies_are_decoded_off_the_event_loop(api: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    decoded_on_loop: list[bool] = []
    loads = json.loads

    def recording_loads(body: bytes) -> Any:
        try:
            asyncio.get_running_loop()
            decoded_on_loop.append(True)
        except RuntimeError:
            decoded_on_loop.append(False)
        return loads(body)

    monkeypatch.setattr(request_body, "json", SimpleNamespace(loads=recording_loads))
    exp = create(api)
    small = api.post(f"/v1/experiments/{exp['id']}/runs", json=REPORT)
    runs = [{**REPORT, "client_run_id": f"r{i}"} for i in range(600)]
    big = raw({"runs": runs})
    assert len(big) > request_body.OFF_LOOP_BYTES
    large = api.post(f"/v1/experiments/{exp['id']}/runs:batch", content=big, headers=JSON)
    assert small.status_code == 201 and large.status_code == 200, large.text
    assert decoded_on_loop[-2:] == [True, False]


# ------------------------------------------------------------------------ authentication before the body
def test_unauthenticated_requests_are_answered_before_the_body_is_read(tmp_path: Path) -> None:
    """A 60 MiB body without a token used to be read and decoded (10 s of event loop, 1.5 GB) for its 401."""
    client, _ = secured(f"sqlite:///{tmp_path}/a.db")
    reads: list[str] = []

    async def receive() -> dict[str, Any]:
        reads.append("body")
        return {"type": "http.request", "body": b"{}", "more_body": False}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": "/v1/experiments", "raw_path": b"/v1/experiments", "query_string": b"",
             "root_path": "", "headers": [(b"content-type", b"application/json"),
                                          (b"content-length", str(60 * 2**20).encode())],
             "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000), "state": {}}
    with client:
        client.portal.call(client.app, scope, receive, send)  # type: ignore[union-attr]
    start = sent[0]
    assert start["status"] == 401 and (b"connection", b"close") in start["headers"]
    assert reads == [], "the body of an unauthenticated request was read"


def test_a_request_without_a_caller_may_send_only_a_small_body(tmp_path: Path) -> None:
    client, tokens = secured(f"sqlite:///{tmp_path}/a.db", anonymous_max_body_bytes=1024)
    token = tokens.create("team", ["write"]).token
    body = raw(spec(name="x" * 100, metadata={"pad": "p" * 4000}))
    with client:
        assert error_of(client.post("/v1/experiments", content=body, headers=JSON), 401)
        assert error_of(client.post("/dashboard", content=body, headers=JSON), 413)
        assert client.post("/v1/experiments", content=body, headers={**JSON, **bearer(token)}).status_code == 201


def test_every_route_that_is_not_public_is_authenticated_on_its_path(tmp_path: Path) -> None:
    """The middleware decides on the raw path; a route outside its prefixes would be refused, not opened."""
    client, _ = secured(f"sqlite:///{tmp_path}/a.db")
    included = [getattr(r, "original_router", None) for r in client.app.routes]
    routes = {(method, route.path) for router in included if router is not None for route in router.routes
              if isinstance(route, APIRoute) for method in route.methods}
    private = {path for method, path in routes if (method, path) not in PUBLIC_ROUTES and method != "HEAD"}
    assert private and all(is_protected(path) for path in private), sorted(p for p in private
                                                                           if not is_protected(p))
    assert not any(is_protected(path) for _, path in PUBLIC_ROUTES)


# ------------------------------------------------------------------------------------------- rate limits
def test_the_rate_limit_keys_on_the_token_not_on_the_header_spelling(tmp_path: Path) -> None:
    """Varying case or spaces in ``Authorization`` let 150 of 150 requests through a 5/s limit."""
    client, tokens = secured(f"sqlite:///{tmp_path}/a.db", rate_limit_per_s=0.01, rate_limit_burst=3)
    alice = tokens.create("team", ["read"]).token
    bob = tokens.create("team", ["read"]).token
    spellings = [f"Bearer {alice}", f"bearer {alice}", f"BEARER  {alice}", f"Bearer {alice} "]
    with client:
        codes = [client.get("/v1/experiments", headers={"authorization": h}).status_code for h in spellings]
        assert codes == [200, 200, 200, 429], codes
        r = client.get("/v1/experiments", headers=bearer(alice))
        assert error_of(r, 429)["code"] == "rate_limited" and int(r.headers["retry-after"]) >= 1
        assert alice not in r.text
        assert client.get("/v1/experiments", headers=bearer(bob)).status_code == 200, "another token"
        assert all(client.get("/healthz").status_code == 200 for _ in range(10)), "probes are never throttled"


def test_failed_authentications_are_throttled_per_address_without_lookups(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Well-formed unknown tokens were never throttled, and each cost a database lookup."""
    client, tokens = secured(f"sqlite:///{tmp_path}/a.db", auth_failure_rate_per_s=0.01, auth_failure_burst=5)
    good = tokens.create("team", ["read"]).token
    authenticator = client.app.state.mixopt.authenticator  # type: ignore[attr-defined]
    lookups: list[str] = []
    find = authenticator.tokens.find

    def counting_find(prefix: str) -> Any:
        lookups.append(prefix)
        return find(prefix)

    monkeypatch.setattr(authenticator.tokens, "find", counting_find)
    with client:
        unknown = [bearer(f"mxo_{i:012x}_{'A' * 43}") for i in range(20)]
        codes = [client.get("/v1/experiments", headers=h).status_code for h in unknown]
        assert codes == [401] * 5 + [429] * 15, codes
        assert len(lookups) == 5, "a throttled address still caused token lookups"
        assert client.get("/v1/experiments", headers=bearer(good)).status_code == 429, \
            "the address is throttled until its bucket refills"


@pytest.fixture
def open_api(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(database_url=f"sqlite:///{tmp_path}/o.db", seed=1,
                                        rate_limit_per_s=0.01, rate_limit_burst=3))) as client:
        yield client


def test_an_open_api_ignores_the_header_and_limits_by_address(open_api: TestClient) -> None:
    headers = [bearer(f"mxo_{i:012x}_{'A' * 43}") for i in range(4)]
    assert [open_api.get("/v1/experiments", headers=h).status_code for h in headers] == [200, 200, 200, 429]
