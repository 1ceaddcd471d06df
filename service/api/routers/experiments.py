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
    `warm_start` brings in the completed runs of earlier experiments of the project (README: Warm start);
    a source that is not there is a 404 naming `warm_start[i].experiment_id`, and nothing is stored.
    """
    exp, transfers = st.store.create_warm_started(body, project, body.warm_start)
    return experiment_out(exp, {}, sum(t.transferred for t in transfers), transfers if body.warm_start else None)


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
    ids = [e.id for e in rows]
    counts, transferred = st.store.run_counts(ids), st.store.transferred_counts(ids)
    return ExperimentList(experiments=[experiment_out(e, counts[e.id], transferred[e.id]) for e in rows],
                          next_page_token=token)


@router.get("/{experiment_id}", response_model=ExperimentOut)
def get_experiment(exp: ExperimentDep, st: State) -> ExperimentOut:
    """One experiment: its spec, state, run counts and data version."""
    return experiment_out(exp, st.store.run_counts([exp.id])[exp.id], st.store.transferred_counts([exp.id])[exp.id])


@router.patch("/{experiment_id}", response_model=ExperimentOut)
def patch_experiment(experiment_id: str, body: ExperimentPatch, st: State, project: Project) -> ExperimentOut:
    """Change an experiment's name, state (archive or reopen), budget, search settings or metadata.
    Domains, objective and fidelity axes cannot change: runs are stored against them.
    """
    exp = st.store.patch_experiment(experiment_id, body, project)
    return experiment_out(exp, st.store.run_counts([exp.id])[exp.id], st.store.transferred_counts([exp.id])[exp.id])
