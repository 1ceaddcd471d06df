"""What a route is given: the process-wide objects of one API instance (built once at start-up), the
caller's project, the experiment a path names and the page size of a list. Every router takes these
aliases from here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query, Request

from service.api.auth import Authenticator, get_project
from service.api.metrics import Metrics
from service.db import ReadinessProbe
from service.errors import ErrorCode, InvalidInput
from service.operations.dispatch import Dispatcher
from service.settings import Settings
from service.store import Store
from service.store.models import Experiment


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


State = Annotated[AppState, Depends(get_state)]
Project = Annotated[str, Depends(get_project)]


def get_experiment(experiment_id: str, st: State, project: Project) -> Experiment:
    """The experiment the path names, in the caller's project (404 otherwise).

    For routes without a body or query parameters: FastAPI runs a dependency before it validates the
    route's own body and query, so a route with either reads the experiment itself, and a malformed
    request is a 422 whether or not the experiment exists.
    """
    return st.store.get_experiment(experiment_id, project)


ExperimentDep = Annotated[Experiment, Depends(get_experiment)]


DEFAULT_PAGE_SIZE = 100
Size = Annotated[int | None, Query(ge=1, description="items per page (default 100), at most "
                                                    "MIXOPT_MAX_PAGE_SIZE (1000 unless set)")]


async def page_size(request: Request, page_size: Size = None) -> int:
    """The ``page_size`` of a list, capped by ``MIXOPT_MAX_PAGE_SIZE``.

    A dependency rather than ``Query(le=...)``: the cap is a setting, read per app, and a too-large page is
    refused with the same error shape and field name as a bad ``page_token``. Async, like every cheap
    dependency here: a plain ``def`` would cost a thread-pool hop per request.
    """
    limit = request.app.state.mixopt.settings.max_page_size
    if page_size is None:
        return min(DEFAULT_PAGE_SIZE, limit)
    if page_size > limit:
        raise InvalidInput(f"page_size is at most {limit}; follow next_page_token for more",
                           field="page_size", code=ErrorCode.page_size_too_large)
    return page_size


PageSize = Annotated[int, Depends(page_size)]
