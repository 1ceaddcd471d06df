"""Runs: report one, import a batch, list and read."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from service.api.deps import PageSize, Project, State
from service.api.presenters import RunPresenter
from service.api.request_body import CheckedRoute
from service.errors import ErrorCode, InvalidInput
from service.schemas import BatchResult, RunBatch, RunList, RunOut, RunReport, RunStateName
from service.spec import spec_of
from service.store.models import Experiment
from service.validation import ReportRules

router = APIRouter(prefix="/v1/experiments/{experiment_id}", tags=["runs"], route_class=CheckedRoute)


@router.post("/runs", status_code=201, response_model=RunOut,
             responses={200: {"description": "an earlier report with this client_run_id or run id, returned"}})
def report_run(experiment_id: str, body: RunReport, response: Response, st: State, project: Project) -> RunOut:
    """Report one run: a suggested run by `id`, or one trained elsewhere with its `mixture` and `fidelity`.
    201 for a new run; 200 with the stored run when this `client_run_id` (or run `id`) was already
    reported, so a retry never adds a second run.
    """
    run, created, spec = st.store.report_run(experiment_id, body, project)
    st.metrics.count_reports("report", reported=1, created=int(created))
    if not created:
        response.status_code = 200
    return RunPresenter(spec).run(run)


@router.post("/runs:batch", response_model=BatchResult)
def import_runs(experiment_id: str, body: RunBatch, st: State, project: Project) -> BatchResult:
    """Import up to `MIXOPT_MAX_BATCH_RUNS` runs at once, all or nothing: one invalid run rejects the batch
    (422 naming `runs[i]`) and stores none. Idempotent per `client_run_id`.
    """
    if len(body.runs) > st.settings.max_batch_runs:
        raise InvalidInput(f"at most {st.settings.max_batch_runs} runs per batch", field="runs",
                           code=ErrorCode.batch_too_large)
    created, existing, updated, ids = st.store.report_batch(experiment_id, body.runs, project)
    st.metrics.count_reports("batch", reported=len(ids), created=created)
    return BatchResult(created=created, existing=existing, updated=updated, run_ids=ids)


@router.get("/runs", response_model=RunList)
def list_runs(experiment_id: str, st: State, project: Project, page_size: PageSize,
              state: Annotated[list[RunStateName] | None, Query()] = None,
              fidelity: Annotated[list[str] | None, Query(description="axis=value, repeatable")] = None,
              page_token: str | None = None) -> RunList:
    """The experiment's runs, oldest first, paged; filter by `state` (repeatable) and by exact fidelity
    (`fidelity=params=1e6`, repeatable).
    """
    exp = st.store.get_experiment(experiment_id, project)
    rows, token = st.store.list_runs(exp, page_size, page_token, state or (), fidelity_filter(exp, fidelity))
    present = RunPresenter(spec_of(exp))
    return RunList(runs=[present.run(r) for r in rows], next_page_token=token)


def fidelity_filter(exp: Experiment, fidelity: list[str] | None) -> list[float] | None:
    """The ``fidelity=axis=value`` query items as the experiment's fidelity vector, or None when absent.

    Shared by every listing of runs (the API and the dashboard's CSV), so both refuse the same filters.
    """
    if not fidelity:
        return None
    given: dict[str, float] = {}
    for item in fidelity:
        name, sep, value = item.partition("=")
        try:
            given[name] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise InvalidInput(f"expected axis=value, got {item!r}", field="fidelity", code=ErrorCode.invalid_fidelity)
    return ReportRules.of(spec_of(exp)).fidelity(given, "fidelity", allow_partial=False)


@router.get("/runs/{run_id}", response_model=RunOut)
def get_run(experiment_id: str, run_id: str, st: State, project: Project) -> RunOut:
    """One run: its mixture, fidelity, state, metrics, objective, cost and the prediction it was suggested with."""
    run = st.store.get_run(experiment_id, run_id, project)
    return RunPresenter(spec_of(st.store.get_experiment(experiment_id, project))).run(run)
