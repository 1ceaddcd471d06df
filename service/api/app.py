"""The FastAPI application factory."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from starlette.middleware.cors import CORSMiddleware

from migrations import upgrade
from service.api import dashboard
from service.api.auth import AuthenticationMiddleware, Authenticator, authorize
from service.api.deps import AppState
from service.api.errors import install_error_handlers
from service.api.limits import BodySizeLimitMiddleware, RateLimitMiddleware
from service.api.metrics import Metrics, MetricsMiddleware
from service.api.middleware import RequestContextMiddleware
from service.api.openapi import install_docs, install_openapi
from service.api.routers import continual, experiments, export, history, online, runs, suggestions, system, transfers
from service.api.throttle import TokenBuckets
from service.composition import DispatcherFactory, default_dispatcher
from service.db import DbTimeouts, ReadinessProbe, make_engine, make_session_factory
from service.settings import Settings, get_settings
from service.store import Store
from service.store.tokens import Tokens

log = logging.getLogger("mixopt.api")


def build_state(settings: Settings, dispatcher: DispatcherFactory) -> AppState:
    if settings.migrates_at_start:
        upgrade(settings.database_url)
    engine = make_engine(settings.database_url, settings.db_pool_size, DbTimeouts.of(settings))
    store = Store(engine, make_session_factory(engine))
    authenticator = None
    if settings.auth_enabled():
        authenticator = Authenticator(Tokens(store.factory), settings.auth_cache_s,
                                      settings.token_touch_interval_s)
    else:
        log.warning(f"auth disabled: anyone who can reach http://{settings.host}:{settings.port} can read and "
                    "change every experiment; bind a non-loopback address only with tokens "
                    "(mixopt token create)", extra={"auth": settings.auth, "host": settings.host})
    return AppState(settings=settings, store=store, dispatcher=dispatcher(store, settings),
                    authenticator=authenticator, metrics=Metrics(engine),
                    readiness=ReadinessProbe(engine, settings.readiness_timeout_s))


def create_app(settings: Settings | None = None, dispatcher: DispatcherFactory | None = None) -> FastAPI:
    """The API for ``settings`` (default: from the environment), its jobs run by ``dispatcher`` (default:
    :func:`service.composition.default_dispatcher`: in-process, or the broker's backend)."""
    settings = settings or get_settings()
    state = build_state(settings, dispatcher or default_dispatcher(settings))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        engine = state.store.engine
        # Everything imported and built so far (torch and BoTorch included: millions of objects) lives as
        # long as the process. Frozen, the collector stops traversing it on every full collection, which
        # otherwise cost a 10,000-run batch import a third of its time and put spikes into report p99.
        gc.freeze()
        log.info("mixopt api ready", extra={"database": engine.dialect.name,
                                            "url": engine.url.render_as_string(hide_password=True),
                                            "jobs": type(state.dispatcher).__name__})
        yield
        state.dispatcher.close()
        state.readiness.close()
        state.store.engine.dispose()

    app = FastAPI(title="mixopt", version="0.1.0", lifespan=lifespan,
                  description="Data-mixture optimization for language-model pretraining.",
                  dependencies=[Depends(authorize)], docs_url=None, redoc_url=None)
    app.state.mixopt = state
    install_error_handlers(app, authorize)
    install_openapi(app)
    install_docs(app)

    # Outermost last: metrics see every response (500s and rejections included), the request id is set
    # before anything can fail, and CORS headers reach rate-limit and size rejections too. Authentication
    # comes before the rate limit (keyed on the token it finds) and the body limit (larger for a caller).
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes,
                       anonymous_max_bytes=settings.anonymous_max_body_bytes)
    if settings.rate_limit_per_s > 0:
        app.add_middleware(RateLimitMiddleware, rate_per_s=settings.rate_limit_per_s,
                           burst=settings.rate_limit_burst)
    app.add_middleware(AuthenticationMiddleware, authenticator=state.authenticator,
                       failures=TokenBuckets(settings.auth_failure_rate_per_s, settings.auth_failure_burst))
    if settings.cors_origin_list:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origin_list, allow_methods=["*"],
                           allow_headers=["*"],
                           expose_headers=["x-request-id", "retry-after", "server-timing"])
    app.add_middleware(RequestContextMiddleware)
    app.add_middleware(MetricsMiddleware, metrics=state.metrics, token=settings.metrics_token)

    # export before experiments: /v1/experiments/{experiment_id} would also match "<id>:export".
    routers = (export.router, experiments.router, runs.router, transfers.router, suggestions.router, online.router,
               history.router, continual.router, system.router, dashboard.router)
    for r in routers:
        app.include_router(r)
    return app
