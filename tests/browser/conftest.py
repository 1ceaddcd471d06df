"""Browser fixtures: a live server seeded with the RegMix runs, and headless Chromium driven by Playwright.

Chromium is Debian's package (``/usr/bin/chromium``, or ``MIXOPT_CHROMIUM``); Playwright only drives it.
Without it the tests skip locally and FAIL under CI=true (see ``tests.conftest.require``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from mixopt_client import MixoptClient

from service.api.embedded import embedded_server
from service.settings import Settings
from tests.browser.seed import seed_regmix, store_recommendation
from tests.conftest import REGMIX_DATA, require

CHROMIUM = Path(os.environ.get("MIXOPT_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1400, "height": 1000}


@dataclass
class Live:
    url: str
    client: MixoptClient
    exp: dict[str, Any]


@dataclass
class Tab:
    """A page plus everything that went wrong in it and every URL it requested."""

    page: Any
    base: str
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def goto(self, path: str, ready: str) -> None:
        """Open ``path`` and wait until ``ready`` (a selector) is visible."""
        self.page.goto(self.base + path)
        self.page.wait_for_selector(ready, state="visible")


def launch_chromium(playwright: Any) -> Any:
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    require(CHROMIUM.exists() and os.access(CHROMIUM, os.X_OK), f"Chromium not found at {CHROMIUM}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require(False, "the playwright Python package is not installed")
    with sync_playwright() as p:
        b = launch_chromium(p)
        yield b
        b.close()


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """One server for the session: 512 RegMix runs at 1M and 256 at 60M, with a stored recommendation.

    Tests that add runs or models use small experiments of their own, so this one stays as seeded.
    """
    require((REGMIX_DATA / "train_mixture_1m.csv").exists(), f"RegMix data not found at {REGMIX_DATA}")
    database_url = f"sqlite:///{tmp_path_factory.mktemp('dashboard') / 'dash.db'}"
    with embedded_server(Settings(database_url=database_url, seed=0, sync_budget_s=60.0)) as url, \
            MixoptClient(url) as client:
        exp = seed_regmix(client, REGMIX_DATA)
        store_recommendation(database_url, exp["id"])
        yield Live(url, client, client.get_experiment(exp["id"]))


@pytest.fixture
def tab(browser: Any, live: Live) -> Iterator[Tab]:
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    context.set_default_timeout(15_000)
    page = context.new_page()
    t = Tab(page, live.url)
    page.on("console", lambda m: m.type == "error" and t.errors.append(f"console.error: {m.text}"))
    page.on("pageerror", lambda e: t.errors.append(f"pageerror: {e}"))
    page.on("request", lambda r: t.requests.append(r.url))
    yield t
    context.close()
    assert t.errors == [], t.errors
