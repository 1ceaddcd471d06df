"""``GET /v1/experiments/{id}:export``: the experiment's bundle (see ``service/store/bundle.py``).

Included before the experiments router: ``/v1/experiments/{experiment_id}`` would otherwise match
``exp_…:export`` as an experiment id.
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from service.api.deps import ExperimentDep, State
from service.api.request_body import CheckedRoute
from service.store import bundle

router = APIRouter(prefix="/v1/experiments", tags=["experiments"], route_class=CheckedRoute)


@router.get("/{experiment_id}:export", response_class=Response,
            responses={200: {"content": {"application/json": {}},
                             "description": "the bundle; `mixopt import-bundle` restores it"}})
def export_experiment(exp: ExperimentDep, st: State) -> Response:
    """Everything stored for one experiment (its spec and every row that belongs to it: runs, fits,
    recommendations, jobs, online sessions) as one JSON bundle, read as one consistent snapshot; for a
    backup or a move to another server (`mixopt import-bundle`).
    """
    text = bundle.dumps(bundle.export_experiment(st.store.engine, exp.id))
    return Response(text, media_type="application/json",
                    headers={"content-disposition": f'attachment; filename="{exp.id}.bundle.json"'})
