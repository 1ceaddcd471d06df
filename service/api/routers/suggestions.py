"""Suggestions, recommendation and prediction: the calls that run a search method."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse

from service.api.deps import Project, State
from service.api.presenters import RunPresenter, job_out
from service.api.request_body import CheckedRoute
from service.operations.pareto import pareto_front
from service.operations.predict import predict as predict_mixtures
from service.operations.recommend import RecommendationResult, current_recommendation, recommend_among
from service.operations.suggest import Served
from service.operations.suggest import suggest as suggest_runs
from service.schemas import (
    JobAccepted,
    ObservedPointOut,
    ParetoAxisOut,
    ParetoOut,
    ParetoPointOut,
    PredictedPoint,
    PredictRequest,
    PredictResponse,
    RecommendationOut,
    RecommendationRequest,
    SuggestionRequest,
    SuggestionResponse,
)
from service.spec import ExperimentSpec, spec_of
from service.validation import ReportRules, check_method, constraints_from_spec, feasible_mixture

router = APIRouter(prefix="/v1/experiments/{experiment_id}", tags=["optimization"], route_class=CheckedRoute)

_STATUS = {Served.held: 200, Served.new: 201}


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
    out = suggest_runs(st.store, st.dispatcher, exp, body, st.settings.seed, st.settings.sync_budget_s)
    if out.served is Served.pending:
        assert out.job is not None
        return JSONResponse(JobAccepted(job=job_out(out.job)).model_dump(mode="json"), 202)
    response.status_code = _STATUS[out.served]
    present = RunPresenter(spec_of(exp))
    return SuggestionResponse(runs=[present.run(r) for r in out.runs])


@router.get("/recommendation", response_model=RecommendationOut)
def recommendation(experiment_id: str, st: State, project: Project,
                   refresh: Annotated[bool, Query(description="recompute even if data is unchanged")] = False,
                   ) -> RecommendationOut:
    """The best mixture at the target fidelity, with its predicted objective and 90% interval, the method
    and the number of runs it used. Recomputed when the data changed since the stored one (or with
    `refresh=true`); 409 `not_enough_data` before there are enough runs.
    """
    exp = st.store.get_experiment(experiment_id, project)
    return _recommendation_out(spec_of(exp), current_recommendation(st.store, exp, st.settings.seed, refresh))


@router.post("/recommendation", response_model=RecommendationOut)
def recommendation_among(experiment_id: str, body: RecommendationRequest, st: State, project: Project
                         ) -> RecommendationOut:
    """The best of the given mixtures at the target fidelity, for a caller who can only train those.

    Computed for the current data and not stored: the experiment's own recommendation (GET) stays the
    one over the whole constrained simplex.
    """
    exp = st.store.get_experiment(experiment_id, project)
    method_name = check_method(body.method or "auto")
    spec = spec_of(exp)
    rules = ReportRules.of(spec)
    constraints = constraints_from_spec(spec)
    candidates = np.array([feasible_mixture(rules, constraints, m, f"candidates[{i}]")
                           for i, m in enumerate(body.candidates)])
    seed = body.seed if body.seed is not None else st.settings.seed
    return _recommendation_out(spec, recommend_among(st.store, exp, method_name, seed, candidates))


def _recommendation_out(spec: ExperimentSpec, rec: RecommendationResult) -> RecommendationOut:
    present = RunPresenter(spec)
    return RecommendationOut(mixture=present.mixture(rec.payload["mixture"]),
                             fidelity=present.fidelity(rec.payload["fidelity"]),
                             predicted=rec.payload["predicted"], method=rec.method, n_runs=rec.n_runs,
                             data_version=rec.data_version, details=rec.payload.get("details", {}),
                             constraints=rec.payload.get("outcomes", []), created_at=rec.created_at)


@router.get("/pareto", response_model=ParetoOut)
def pareto(experiment_id: str, st: State, project: Project,
           method: Annotated[Literal["law", "regmix", "bo"], Query(description="the models of the axes")] = "law",
           candidates: Annotated[int, Query(ge=100, le=100_000, description="mixtures sampled")] = 20_000,
           seed: Annotated[int | None, Query(ge=0, lt=2**63, description="fixed seed: same data, same front")] = None,
           ) -> ParetoOut:
    """The predicted trade-off front at the target fidelity: the objective against each metric an outcome
    constraint or a trade-off names (without either, the objective's own metrics), over a sample of feasible
    mixtures, with 90% intervals and each point's probability of meeting the constraints; and the completed
    runs on the same axes, marked where no other run dominates them. Computed now, not stored; 409
    `not_enough_data` before the model can fit.
    """
    exp = st.store.get_experiment(experiment_id, project)
    out = pareto_front(st.store, exp, method, candidates, seed if seed is not None else st.settings.seed)
    present = RunPresenter(spec_of(exp))
    f = out.front
    return ParetoOut(
        axes=[ParetoAxisOut(name=a.name, goal="minimize" if a.minimize else "maximize", bound=a.bound)
              for a in f.axes],
        front=[ParetoPointOut(mixture=present.mixture(w.tolist()), values=v.tolist(), lower=lo.tolist(),
                              upper=hi.tolist(), feasibility=float(p))
               for w, v, lo, hi, p in zip(f.mixtures, f.values, f.lower, f.upper, f.feasibility, strict=True)],
        observed=[ObservedPointOut(run_id=r, values=v.tolist(), on_front=bool(on))
                  for r, v, on in zip(out.run_ids, f.observed, f.observed_front, strict=True)
                  if np.all(np.isfinite(v))],
        method=out.method, n_candidates=out.n_candidates, n_runs=out.n_runs, data_version=out.data_version)


@router.post("/predict", response_model=PredictResponse)
def predict(experiment_id: str, body: PredictRequest, st: State, project: Project) -> PredictResponse:
    """Predicted objective (with an interval where the model gives one) and per-metric values for the
    given mixtures, optionally at a `fidelity`. Uses the method's own model where it has one, RegMix
    otherwise; 409 `not_enough_data` before there are enough runs.

    The model is the one stored for the current runs when there is one (a refit stores the default one),
    else it is fitted now and stored for the next call: see :mod:`service.store.fitted_models` for the rule.
    """
    exp = st.store.get_experiment(experiment_id, project)
    method_name = check_method(body.method or "auto")
    spec = spec_of(exp)
    rules = ReportRules.of(spec)
    x = np.array([rules.mixture(m, f"mixtures[{i}]") for i, m in enumerate(body.mixtures)])
    fid = np.asarray(rules.fidelity(body.fidelity, "fidelity", allow_partial=True)) \
        if body.fidelity is not None else None
    seed = body.seed if body.seed is not None else st.settings.seed
    out = predict_mixtures(st.store, exp, method_name, x, fid, seed)
    names = spec.model_metrics if out.metrics.shape[1] else []  # objective-only models: none
    points = [PredictedPoint(objective=float(o), lower=float(o - h), upper=float(o + h),
                             metrics={n: float(v) for n, v in zip(names, row, strict=True)})
              for o, h, row in zip(out.objective, out.halfwidth, out.metrics, strict=True)]
    return PredictResponse(predictions=points, method=out.method, n_runs=out.n_runs)
