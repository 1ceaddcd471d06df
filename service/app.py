"""The FastAPI application factory."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response

from migrations import upgrade
from service.db import make_engine, make_session_factory
from service.errors import install_error_handlers
from service.logs import request_id_var
from service.routers import experiments, runs, suggestions, system
from service.settings import Settings, get_settings
from service.state import AppState
from service.store import Store
from workers.dispatch import InProcessDispatcher

log = logging.getLogger("mixopt.api")


def build_state(settings: Settings) -> AppState:
    if settings.is_sqlite or settings.auto_migrate:
        upgrade(settings.database_url)
    engine = make_engine(settings.database_url)
    store = Store(engine, make_session_factory(engine))
    dispatcher = InProcessDispatcher(store, settings.inprocess_workers)
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

    @app.middleware("http")
    async def request_id(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        rid = request.headers.get("x-request-id") or uuid.uuid4().hex[:16]
        token = request_id_var.set(rid)
        t0 = time.perf_counter()
        try:
            response = await call_next(request)
        finally:
            request_id_var.reset(token)
        response.headers["x-request-id"] = rid
        log.debug("request", extra={"method": request.method, "path": request.url.path,
                                    "status": response.status_code, "ms": round(1000 * (time.perf_counter() - t0), 2),
                                    "request_id": rid})
        return response

    for r in (experiments.router, runs.router, suggestions.router, system.router):
        app.include_router(r)
    return app
