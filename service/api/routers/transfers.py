"""Warm starts: bring an earlier experiment's completed runs into this one, and list what came in."""

from __future__ import annotations

from fastapi import APIRouter

from service.api.deps import PageSize, Project, State
from service.api.presenters import RunPresenter, transfer_result
from service.api.request_body import CheckedRoute
from service.schemas import TransferIn, TransferredRunList, TransferResult
from service.spec import spec_of
from service.store.transfers import TransferSource

router = APIRouter(prefix="/v1/experiments/{experiment_id}", tags=["runs"], route_class=CheckedRoute)


@router.post("/transfers", response_model=TransferResult)
def add_transfer(experiment_id: str, body: TransferIn, st: State, project: Project) -> TransferResult:
    """Bring the completed runs of `experiment_id` (body) into this experiment, marked with their source
    and never counted as its own (README: Warm start). Idempotent: the same source again adds no run and
    only sets its `weight`. Says how many came in and, by reason, how many did not.
    """
    counts, = st.store.add_transfers(experiment_id, [TransferSource(body.experiment_id, body.weight,
                                                                    "experiment_id")], project)
    return transfer_result(counts)


@router.get("/transferred-runs", response_model=TransferredRunList)
def list_transferred_runs(experiment_id: str, st: State, project: Project, page_size: PageSize,
                          source_experiment_id: str | None = None, page_token: str | None = None
                          ) -> TransferredRunList:
    """The runs brought in from other experiments, oldest first, paged; filter by `source_experiment_id`."""
    exp = st.store.get_experiment(experiment_id, project)
    rows, token = st.store.list_transferred_runs(exp, page_size, page_token, source_experiment_id)
    present = RunPresenter(spec_of(exp))
    return TransferredRunList(runs=[present.transferred(r) for r in rows], next_page_token=token)
