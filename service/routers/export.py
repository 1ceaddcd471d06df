"""``GET /v1/experiments/{id}:export``: the experiment's bundle (see ``service/store/bundle.py``).

Included before the experiments router: ``/v1/experiments/{experiment_id}`` would otherwise match
``exp_…:export`` as an experiment id.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from service.auth import get_project
from service.request_body import CheckedRoute
from service.state import AppState, get_state
from service.store import bundle

router = APIRouter(prefix="/v1/experiments", tags=["experiments"], route_class=CheckedRoute)
State = Annotated[AppState, Depends(get_state)]
Project = Annotated[str, Depends(get_project)]


@router.get("/{experiment_id}:export", response_class=Response,
            responses={200: {"content": {"application/json": {}},
                             "description": "the bundle; `mixopt import-bundle` restores it"}})
def export_experiment(experiment_id: str, st: State, project: Project) -> Response:
    """Everything stored for one experiment (its spec and every row that belongs to it: runs, fits,
    recommendations, jobs, online sessions) as one JSON bundle, read as one consistent snapshot; for a
    backup or a move to another server (`mixopt import-bundle`).
    """
    exp = st.store.get_experiment(experiment_id, project)  # 404 for another project's experiment
    text = bundle.dumps(bundle.export_experiment(st.store.engine, exp.id))
    return Response(text, media_type="application/json",
                    headers={"content-disposition": f'attachment; filename="{exp.id}.bundle.json"'})
