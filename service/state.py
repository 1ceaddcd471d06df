"""Process-wide objects of one API instance, built once at start-up and reached through dependencies."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from service.settings import Settings
from service.store import Store
from workers.dispatch import Dispatcher


@dataclass
class AppState:
    settings: Settings
    store: Store
    dispatcher: Dispatcher


def get_state(request: Request) -> AppState:
    return request.app.state.mixopt  # type: ignore[no-any-return]


def get_project() -> str:
    """The caller's project; one shared project until token auth assigns one per team."""
    return "default"
