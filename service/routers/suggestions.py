"""Suggestions, recommendation and prediction: the calls that run a search method."""

from __future__ import annotations

from contextlib import nullcontext
from datetime import UTC, datetime
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, Query, Response
from fastapi.responses import JSONResponse

from mixing.errors import FitError, NotEnoughDataError
from mixing.methods import as_predictive, method_names, resolve_recommender
from mixing.problem import Candidates
from mixing.simplex import SimplexConstraints
from service.auth import get_project
from service.errors import Conflict, InvalidInput, SearchSpaceExhausted
from service.locks import experiment_lock
from service.presenters import RunPresenter, job_out
from service.request_body import CheckedRoute
from service.schemas import (
    JobAccepted,
    PredictedPoint,
    PredictRequest,
    PredictResponse,
    RecommendationOut,
    RecommendationRequest,
    SuggestionRequest,
    SuggestionResponse,
)
from service.state import AppState, get_state
from service.store.fitted_models import current_predictor
from service.store.models import ExperimentState
from service.validation import ReportRules, check_bounds, constraints_from_spec
from workers import tasks
from workers.context import search_context
from workers.refit import READY_KIND

router = APIRouter(prefix="/v1/experiments/{experiment_id}", tags=["optimization"], route_class=CheckedRoute)
State = Annotated[AppState, Depends(get_state)]
Project = Annotated[str, Depends(get_project)]


def _check_method(name: str | None, field: str = "method") -> str:
    name = name or "auto"
    if name not in method_names():
        raise InvalidInput(f"unknown method {name!r}; available: {method_names()}", field=field, code="unknown_method")
    return name


@router.post("/suggestions", status_code=201, response_model=SuggestionResponse,
             responses={200: {"model": SuggestionResponse,
                              "description": "every run returned was already handed to this client_id"},
                        202: {"model": JobAccepted, "description": "still computing; poll the job"}})
def suggest(experiment_id: str, body: SuggestionRequest, response: Response, st: State, project: Project) -> Any:
    """Runs to train next: the client's own pending suggestions first, then the ready queue, then new ones.

    With a ``client_id``, suggestions still pending that were handed to it earlier come back first (a
    retried request never hands out a second batch). A request that pins nothing (no method, fidelity or
    candidates) is then served from the ready queue a re-optimization policy keeps full, when the queue
    holds enough: one UPDATE, no model. Only what is still missing is proposed by a job.
    """
    exp = st.store.get_experiment(experiment_id, project)
    if exp.state != ExperimentState.active.value:
        raise Conflict(f"experiment {exp.id} is archived", field="experiment_id", code="experiment_archived")
    method = _check_method(body.method or (exp.spec.get("search") or {}).get("default_method"))
    fidelity = ReportRules.of(exp.spec).fidelity(body.fidelity, "fidelity", allow_partial=True) \
        if body.fidelity is not None else None
    candidates = _candidates(exp.spec, body) if body.candidates is not None else None
    if candidates is not None and len(candidates.mixtures) == 0:
        raise InvalidInput("candidates must not be empty", field="candidates")
    present = RunPresenter(exp.spec)
    runs = st.store.suggestions_held(exp.id, body.client_id, body.count) if body.client_id else []
    if len(runs) == body.count:
        response.status_code = 200
        return SuggestionResponse(runs=[present.run(r) for r in runs])
    if body.method is None and body.fidelity is None and body.candidates is None:
        runs += st.store.claim_ready(exp.id, READY_KIND, body.count - len(runs), body.client_id)
    if len(runs) == body.count:
        return SuggestionResponse(runs=[present.run(r) for r in runs])
    # A model must run. One request per client at a time from here to the job: a retry sent while the
    # first request is still computing joins the first one's job instead of proposing a second batch.
    job = None
    with experiment_lock(st.store.engine, exp.id, f"client {body.client_id}") if body.client_id \
            else nullcontext():
        if body.client_id:
            job = st.store.inflight_propose_job(exp.id, body.client_id)
            runs = st.store.suggestions_held(exp.id, body.client_id, body.count)  # others' jobs may be done
        joined = job is not None
        if not joined and len(runs) < body.count:
            params: dict[str, Any] = {"count": body.count - len(runs), "method": method, "fidelity": fidelity,
                                      "project": project,
                                      "seed": body.seed if body.seed is not None else st.settings.seed,
                                      "client_id": body.client_id}
            if candidates is not None:
                params["pool"] = st.store.save_pool(exp.id, candidates)
            job = st.store.create_job("propose", exp.id, params)
            st.dispatcher.submit("propose", job.id, project)
    if job is None:  # a request of this client finished proposing while this one waited for the lock
        response.status_code = 200
        return SuggestionResponse(runs=[present.run(r) for r in runs])
    if not st.dispatcher.wait(job.id, st.settings.sync_budget_s):
        return JSONResponse(JobAccepted(job=job_out(st.store.get_job(job.id))).model_dump(mode="json"), 202)
    job = st.store.get_job(job.id)
    if job.state == "failed":
        raise Conflict(f"suggestion failed: {job.error}", code="suggestion_failed", details={"job_id": job.id})
    if joined:  # answer as a retry after that job does: its runs first, then anything still missing
        return suggest(experiment_id, body, response, st, project)
    ids = (job.result or {}).get("run_ids", [])
    if not runs and not ids:
        raise SearchSpaceExhausted("no new run is left to suggest: every feasible point (among the candidates, "
                                   "at this fidelity) is pending or observed", details={"job_id": job.id})
    return SuggestionResponse(runs=[present.run(r) for r in runs]
                              + [present.run(st.store.get_run(exp.id, rid, project)) for rid in ids])


def _candidates(spec: dict[str, Any], body: SuggestionRequest) -> Candidates:
    """Validated pool as arrays in domain and axis order; NaN where a candidate gives no fidelity (the
    method chooses). Filled row by row: lists of Python floats cost ~15 times the array."""
    rules = ReportRules.of(spec)
    constraints = constraints_from_spec(spec)
    given = body.candidates or []
    mixtures = np.empty((len(given), len(rules.domains)))
    fidelities = np.full((len(given), len(rules.axes)), np.nan)
    for i, c in enumerate(given):
        mixtures[i] = _feasible_mixture(rules, constraints, c.mixture, f"candidates[{i}].mixture")
        if c.fidelity is not None:
            fidelities[i] = rules.fidelity(c.fidelity, f"candidates[{i}].fidelity")
    return Candidates(mixtures=mixtures, fidelities=fidelities)


@router.get("/recommendation", response_model=RecommendationOut)
def recommendation(experiment_id: str, st: State, project: Project,
                   refresh: Annotated[bool, Query(description="recompute even if data is unchanged")] = False,
                   ) -> RecommendationOut:
    """The best mixture at the target fidelity, with its predicted objective and 90% interval, the method
    and the number of runs it used. Recomputed when the data changed since the stored one (or with
    `refresh=true`); 409 `not_enough_data` before there are enough runs.
    """
    exp = st.store.get_experiment(experiment_id, project)
    prop = st.store.latest_recommendation(exp.id)
    if refresh or prop is None or prop.data_version != st.store.get_experiment(exp.id, project).data_version:
        with experiment_lock(st.store.engine, exp.id, "recommend"):
            prop = st.store.latest_recommendation(exp.id)
            current = st.store.get_experiment(exp.id, project).data_version
            if refresh or prop is None or prop.data_version != current:
                try:
                    tasks.recommend(st.store, exp.id, project, seed=st.settings.seed)
                except NotEnoughDataError as exc:
                    raise Conflict(f"no recommendation yet: {exc}", code="not_enough_data") from exc
                prop = st.store.latest_recommendation(exp.id)
    assert prop is not None
    return _recommendation_out(exp.spec, prop.payload, prop.method, prop.n_runs, prop.data_version,
                               prop.created_at)


@router.post("/recommendation", response_model=RecommendationOut)
def recommendation_among(experiment_id: str, body: RecommendationRequest, st: State, project: Project
                         ) -> RecommendationOut:
    """The best of the given mixtures at the target fidelity, for a caller who can only train those.

    Computed for the current data and not stored: the experiment's own recommendation (GET) stays the
    one over the whole constrained simplex.
    """
    exp = st.store.get_experiment(experiment_id, project)
    method_name = _check_method(body.method)
    rules = ReportRules.of(exp.spec)
    constraints = constraints_from_spec(exp.spec)
    candidates = np.array([_feasible_mixture(rules, constraints, m, f"candidates[{i}]")
                           for i, m in enumerate(body.candidates)])
    seed = body.seed if body.seed is not None else st.settings.seed
    try:
        rec, data_version, payload = tasks.compute_recommendation(st.store, exp, method_name, seed, candidates)
    except NotEnoughDataError as exc:
        raise Conflict(f"no recommendation yet: {exc}", code="not_enough_data") from exc
    return _recommendation_out(exp.spec, payload, rec.method, rec.n_runs, data_version, datetime.now(UTC))


def _feasible_mixture(rules: ReportRules, constraints: SimplexConstraints, given: dict[str, float],
                      field: str) -> list[float]:
    """A candidate mixture in domain order, valid and within the experiment's bounds (else a 422 on ``field``)."""
    vec = rules.mixture(given, field)
    check_bounds(constraints, rules.domains, vec, field)
    return vec


def _recommendation_out(spec: dict[str, Any], payload: dict[str, Any], method: str, n_runs: int,
                        data_version: int, created_at: datetime) -> RecommendationOut:
    present = RunPresenter(spec)
    return RecommendationOut(mixture=present.mixture(payload["mixture"]),
                             fidelity=present.fidelity(payload["fidelity"]), predicted=payload["predicted"],
                             method=method, n_runs=n_runs, data_version=data_version,
                             details=payload.get("details", {}), created_at=created_at)


@router.post("/predict", response_model=PredictResponse)
def predict(experiment_id: str, body: PredictRequest, st: State, project: Project) -> PredictResponse:
    """Predicted objective (with an interval where the model gives one) and per-metric values for the
    given mixtures, optionally at a `fidelity`. Uses the method's own model where it has one, RegMix
    otherwise; 409 `not_enough_data` before there are enough runs.

    The model is the one stored for the current runs when there is one (a refit stores the default one),
    else it is fitted now and stored for the next call: see :mod:`service.store.fitted_models` for the rule.
    """
    exp = st.store.get_experiment(experiment_id, project)
    method_name = _check_method(body.method)
    rules = ReportRules.of(exp.spec)
    x = np.array([rules.mixture(m, f"mixtures[{i}]") for i, m in enumerate(body.mixtures)])
    fid = np.asarray(rules.fidelity(body.fidelity, "fidelity", allow_partial=True)) \
        if body.fidelity is not None else None
    seed = body.seed if body.seed is not None else st.settings.seed
    ctx, snap = search_context(st.store, exp, seed)
    method = as_predictive(resolve_recommender(method_name, ctx))
    try:
        predictor = current_predictor(st.store, exp.id, method, ctx, snap.data_version, fid, seed)
    except NotEnoughDataError as exc:
        raise Conflict(f"cannot predict yet: {exc}", code="not_enough_data") from exc
    metrics, objective, halfwidth = predictor.predict(x)
    if not all(np.isfinite(a).all() for a in (metrics, objective, halfwidth)):  # never served as NaN
        raise FitError(f"the {method.name} model predicts non-finite values for these mixtures")
    names = exp.spec["objective"]["metrics"] if metrics.shape[1] else []  # objective-only models: none
    points = [PredictedPoint(objective=float(o), lower=float(o - h), upper=float(o + h),
                             metrics={n: float(v) for n, v in zip(names, row, strict=True)})
              for o, h, row in zip(objective, halfwidth, metrics, strict=True)]
    return PredictResponse(predictions=points, method=method.name, n_runs=ctx.observations.n)
