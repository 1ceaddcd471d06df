"""Process-wide objects of one API instance, built once at start-up and reached through dependencies."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from service.auth import Authenticator
from service.db import ReadinessProbe
from service.metrics import Metrics
from service.settings import Settings
from service.store import Store
from workers.dispatch import Dispatcher


@dataclass
class AppState:
    settings: Settings
    store: Store
    dispatcher: Dispatcher
    #: None when the API runs open (auth off, or ``auto`` on a loopback address).
    authenticator: Authenticator | None
    metrics: Metrics
    readiness: ReadinessProbe


async def get_state(request: Request) -> AppState:
    """Async on purpose: FastAPI runs a plain ``def`` dependency in the thread pool, a hop per request."""
    return request.app.state.mixopt  # type: ignore[no-any-return]
