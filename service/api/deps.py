"""What a route is given: the process-wide objects of one API instance (built once at start-up), the
caller's project and the experiment a path names. Every router takes these aliases from here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from service.api.auth import Authenticator, get_project
from service.api.metrics import Metrics
from service.db import ReadinessProbe
from service.models import Experiment
from service.operations.dispatch import Dispatcher
from service.settings import Settings
from service.store import Store


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
