"""The FastAPI application factory."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from migrations import upgrade
from service import dashboard
from service.db import make_engine, make_session_factory
from service.errors import install_error_handlers
from service.middleware import RequestContextMiddleware
from service.routers import experiments, history, online, runs, suggestions, system
from service.settings import Settings, get_settings
from service.state import AppState
from service.store import Store
from workers.dispatch import CeleryDispatcher, Dispatcher, InProcessDispatcher

log = logging.getLogger("mixopt.api")


def build_state(settings: Settings) -> AppState:
    if settings.is_sqlite or settings.auto_migrate:
        upgrade(settings.database_url)
    engine = make_engine(settings.database_url)
    store = Store(engine, make_session_factory(engine))
    dispatcher: Dispatcher = (CeleryDispatcher(store, settings) if settings.broker_url
                              else InProcessDispatcher(store, settings.inprocess_workers))
    return AppState(settings=settings, store=store, dispatcher=dispatcher)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    state = build_state(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        log.info("mixopt api ready", extra={"database": state.store.engine.dialect.name,
                                            "jobs": type(state.dispatcher).__name__})
        yield
        state.dispatcher.close()
        state.store.engine.dispose()

    app = FastAPI(title="mixopt", version="0.1.0", lifespan=lifespan,
                  description="Data-mixture optimization for language-model pretraining.")
    app.state.mixopt = state
    install_error_handlers(app)

    app.add_middleware(RequestContextMiddleware)

    routers = (experiments.router, runs.router, suggestions.router, online.router, history.router, system.router,
               dashboard.router)
    for r in routers:
        app.include_router(r)
    return app
