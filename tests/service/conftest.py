"""Fixtures of the service tests that talk to a real server over HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from service.api.embedded import embedded_server
from service.settings import Settings


@pytest.fixture
def live(settings: Settings) -> Iterator[str]:
    """The base URL of a server on ``settings`` (SQLite or PostgreSQL) in this process, over real HTTP."""
    with embedded_server(settings) as url:
        yield url
