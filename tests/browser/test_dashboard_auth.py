"""The dashboard against a server that requires tokens: it asks for one, and shows only that project."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mixopt_client import MixoptClient

from service.api.embedded import embedded_server
from service.db import make_engine, make_session_factory
from service.settings import Settings
from service.store.tokens import Tokens
from tests.browser.conftest import VIEWPORT
from tests.service.helpers import spec

pytestmark = pytest.mark.browser

ROWS = "[data-testid=experiments-table] tbody tr"


@dataclass
class Secured:
    url: str
    token_a: str
    exp_a: dict[str, Any]
    exp_b: dict[str, Any]


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[Secured]:
    database_url = f"sqlite:///{tmp_path}/auth.db"
    with embedded_server(Settings(database_url=database_url, auth="required", seed=0)) as url:
        engine = make_engine(database_url)
        tokens = Tokens(make_session_factory(engine))
        token_a = tokens.create("team-a", ["write"]).token
        token_b = tokens.create("team-b", ["write"]).token
        engine.dispose()
        with MixoptClient(url, token=token_a) as a, MixoptClient(url, token=token_b) as b:
            yield Secured(url, token_a, a.create_experiment(spec(name="alpha-runs")),
                          b.create_experiment(spec(name="beta-runs")))


def enter_token(page: Any, token: str) -> None:
    page.click("[data-testid=enter-token]")
    page.fill("[data-testid=token-input]", token)
    page.press("[data-testid=token-input]", "Enter")


def test_dashboard_asks_for_a_token_and_shows_only_its_project(browser: Any, secured: Secured) -> None:
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(15_000)
    page = context.new_page()
    crashes: list[str] = []
    page.on("pageerror", lambda e: crashes.append(str(e)))
    try:
        page.goto(f"{secured.url}/dashboard")
        page.wait_for_selector("[data-testid=empty] >> text=401 unauthenticated")
        enter_token(page, secured.token_a)
        page.wait_for_selector(ROWS)
        names = page.locator(f"{ROWS} a.name").all_inner_texts()
        assert names == ["alpha-runs"], names

        # the token is kept; the other project's experiment is "not found", like a missing one
        page.goto(f"{secured.url}/dashboard/experiments/{secured.exp_b['id']}")
        page.wait_for_selector("[data-testid=empty] >> text=Experiment not found.")

        # a fresh browser without a token can enter one on the experiment page itself
        page.evaluate("localStorage.clear()")
        page.goto(f"{secured.url}/dashboard/experiments/{secured.exp_a['id']}")
        page.wait_for_selector("[data-testid=empty] >> text=401 unauthenticated")
        enter_token(page, secured.token_a)
        page.wait_for_selector("h1 >> text=alpha-runs")
    finally:
        context.close()
    assert crashes == []
