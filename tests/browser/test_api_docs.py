"""``/docs`` (Swagger UI) and ``/redoc`` render every operation with no network beyond the server itself:
every request to another origin is blocked, as on an air-gapped cluster."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.api.embedded import embedded_server
from service.settings import Settings
from tests.browser.conftest import VIEWPORT

pytestmark = pytest.mark.browser


@dataclass
class OfflineTab:
    """A page that reaches only ``base``; what it tried to fetch elsewhere, and what went wrong in it."""

    page: Any
    base: str
    blocked: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def docs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = f"sqlite:///{tmp_path_factory.mktemp('docs') / 'docs.db'}"
    with embedded_server(Settings(database_url=url, auto_migrate=True)) as base:
        yield base


@pytest.fixture
def offline(browser: Any, docs_server: str) -> Iterator[OfflineTab]:
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(30_000)
    tab = OfflineTab(context.new_page(), docs_server)

    def only_local(route: Any) -> None:
        if route.request.url.startswith(docs_server + "/"):
            route.continue_()
        else:
            tab.blocked.append(route.request.url)
            route.abort()

    context.route("**/*", only_local)
    tab.page.on("pageerror", lambda e: tab.errors.append(f"pageerror: {e}"))
    tab.page.on("console", lambda m: m.type == "error" and tab.errors.append(f"console.error: {m.text}"))
    yield tab
    context.close()


def operation_count(base: str) -> int:
    doc = httpx.get(f"{base}/openapi.json").json()
    return sum(len(item) for item in doc["paths"].values())


def test_swagger_ui_renders_every_operation_offline(offline: OfflineTab) -> None:
    offline.page.goto(f"{offline.base}/docs")
    offline.page.wait_for_selector(".opblock-summary-path")
    paths = offline.page.eval_on_selector_all(".opblock-summary-path", "els => els.map(e => e.dataset.path)")
    assert len(paths) == operation_count(offline.base)
    assert "/v1/experiments/{experiment_id}/suggestions" in paths
    assert offline.page.is_visible(".btn.authorize")  # the Bearer scheme is declared
    assert offline.blocked == [] and offline.errors == []


def test_redoc_renders_every_operation_offline(offline: OfflineTab) -> None:
    offline.page.goto(f"{offline.base}/redoc")
    offline.page.wait_for_selector("[data-section-id*='/operation/']", state="attached")
    sections = offline.page.eval_on_selector_all("[data-section-id*='/operation/']",
                                                 "els => els.map(e => e.dataset.sectionId)")
    assert len(sections) == operation_count(offline.base)
    assert offline.blocked == [] and offline.errors == []


def test_docs_assets_are_served_from_the_package(docs_server: str) -> None:
    static = Path(__file__).resolve().parents[2] / "service" / "api" / "dashboard" / "static"
    for name in ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js"):
        response = httpx.get(f"{docs_server}/dashboard/static/{name}")
        assert response.status_code == 200 and response.content == (static / name).read_bytes(), name
