"""Experiments: create, list, read and update."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from service.api.deps import ExperimentDep, PageSize, Project, State
from service.api.presenters import experiment_out
from service.api.request_body import CheckedRoute
from service.schemas import ExperimentCreate, ExperimentList, ExperimentOut, ExperimentPatch

router = APIRouter(prefix="/v1/experiments", tags=["experiments"], route_class=CheckedRoute)


@router.post("", status_code=201, response_model=ExperimentOut)
def create_experiment(body: ExperimentCreate, st: State, project: Project) -> ExperimentOut:
    """Create an experiment: its domains (with priors and bounds), objective, fidelity axes, budget
    and search settings. The name is unique within the token's project (409 `duplicate_name`).
    """
    exp = st.store.create_experiment(body, project)
    return experiment_out(exp, {})


@router.get("", response_model=ExperimentList)
def list_experiments(st: State, project: Project,
                     page_size: PageSize,
                     page_token: str | None = None,
                     state: Annotated[str | None, Query(pattern="^(active|archived)$")] = None,
                     q: Annotated[str | None, Query(max_length=200, description="name contains")] = None,
                     ) -> ExperimentList:
    """The project's experiments, oldest first, paged (`page_size`, `next_page_token`); filter by `state`
    or by a substring `q` of the name. Each carries its run counts.
    """
    rows, token = st.store.list_experiments(project, page_size, page_token, state, q)
    counts = st.store.run_counts([e.id for e in rows])
    return ExperimentList(experiments=[experiment_out(e, counts[e.id]) for e in rows], next_page_token=token)


@router.get("/{experiment_id}", response_model=ExperimentOut)
def get_experiment(exp: ExperimentDep, st: State) -> ExperimentOut:
    """One experiment: its spec, state, run counts and data version."""
    return experiment_out(exp, st.store.run_counts([exp.id])[exp.id])


@router.patch("/{experiment_id}", response_model=ExperimentOut)
def patch_experiment(experiment_id: str, body: ExperimentPatch, st: State, project: Project) -> ExperimentOut:
    """Change an experiment's name, state (archive or reopen), budget, search settings or metadata.
    Domains, objective and fidelity axes cannot change: runs are stored against them.
    """
    exp = st.store.patch_experiment(experiment_id, body, project)
    return experiment_out(exp, st.store.run_counts([exp.id])[exp.id])
