"""Online mixing during a training run: sessions and their observations."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from service.api.deps import PageSize, Project, State
from service.api.request_body import CheckedRoute
from service.schemas_online import (
    DirectiveOut,
    ObservationIn,
    ObservationOut,
    OnlineSessionCreate,
    OnlineSessionDetail,
    OnlineSessionList,
    OnlineSessionOut,
    ProbeOut,
    TrajectoryPoint,
)
from service.spec import spec_of
from service.store.models import OnlineSession
from service.store.online import OnlineSessions, current_directive

router = APIRouter(prefix="/v1/experiments/{experiment_id}/online-sessions", tags=["online"], route_class=CheckedRoute)


def _named(domains: list[str], values: list[float]) -> dict[str, float]:
    return dict(zip(domains, values, strict=True))


def directive_out(domains: list[str], d: dict[str, Any]) -> DirectiveOut:
    probe = d.get("probe")
    return DirectiveOut(
        weights=_named(domains, d["weights"]), mixture=_named(domains, d["mixture"]), phase=d["phase"],
        train_steps=d["train_steps"], next_observation_step=d["next_observation_step"],
        probe=None if probe is None else ProbeOut(**{**probe, "domain": domains[probe["domain"]],
                                                     "weights": _named(domains, probe["weights"])}),
    )


def session_out(domains: list[str], ses: OnlineSession) -> OnlineSessionOut:
    return OnlineSessionOut(id=ses.id, experiment_id=ses.experiment_id, method=ses.method, domains=domains,
                            hyperparameters=ses.hyperparameters, last_step=ses.last_step,
                            directive=directive_out(domains, current_directive(ses)),
                            created_at=ses.created_at, updated_at=ses.updated_at)


@router.post("", status_code=201, response_model=OnlineSessionOut)
def create_session(experiment_id: str, body: OnlineSessionCreate, response: Response, st: State,
                   project: Project) -> OnlineSessionOut:
    """Start an online-mixing session for one training run (DoReMi, Aioli or a baseline); 201, or 200
    with the existing session when its `client_session_id` was already used.
    """
    ses, created = OnlineSessions(st.store).create(experiment_id, body, project)
    if not created:
        response.status_code = 200
    return session_out(spec_of(st.store.get_experiment(experiment_id, project)).domain_names, ses)


@router.get("", response_model=OnlineSessionList)
def list_sessions(experiment_id: str, st: State, project: Project, page_size: PageSize,
                  page_token: str | None = None) -> OnlineSessionList:
    """The experiment's online-mixing sessions, paged."""
    exp, rows, token = OnlineSessions(st.store).list(experiment_id, project, page_size, page_token)
    domains = spec_of(exp).domain_names
    return OnlineSessionList(sessions=[session_out(domains, s) for s in rows], next_page_token=token)


@router.get("/{session_id}", response_model=OnlineSessionDetail)
def get_session(experiment_id: str, session_id: str, st: State, project: Project) -> OnlineSessionDetail:
    """One online-mixing session with its current directive and its trajectory (losses, weights and
    mixture at each observed step).
    """
    sessions = OnlineSessions(st.store)
    exp, ses = sessions.get(experiment_id, session_id, project)
    domains = spec_of(exp).domain_names
    points = [TrajectoryPoint(step=o.step, split=o.split, losses=_named(domains, o.losses),
                              weights=_named(domains, o.directive["weights"]),
                              mixture=_named(domains, o.directive["mixture"]), phase=o.directive["phase"])
              for o in sessions.trajectory(ses.id)]
    return OnlineSessionDetail(**session_out(domains, ses).model_dump(), trajectory=points)


@router.post("/{session_id}/observations", response_model=ObservationOut)
def post_observation(experiment_id: str, session_id: str, body: ObservationIn, st: State,
                     project: Project) -> ObservationOut:
    """Post the per-domain losses at a training step; the answer is the directive for the next steps
    (domain weights and sampling mixture). A step posted again with the same losses gets the same
    answer; with other losses, 409 `step_conflict`.
    """
    domains, directive = OnlineSessions(st.store).observe(experiment_id, session_id, body, project)
    return ObservationOut(session_id=session_id, step=body.step, directive=directive_out(domains, directive))
