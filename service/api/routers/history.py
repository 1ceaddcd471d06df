"""Fits, refits and scheduled re-optimization: how an experiment's model moved as data arrived.

``POST /refits`` queues a refit (every law, cross-validated) and answers 202 with the job; at most one
refit per experiment is queued or running, so a second request gets the active job back. ``/history``
lists each refit with the law it selected and the recommendation computed right after it.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field, model_validator

from service.api.deps import ExperimentDep, PageSize, Project, State
from service.api.presenters import RunPresenter, job_out
from service.api.request_body import CheckedRoute
from service.errors import NotFound
from service.operations.reoptimize import queue_refit
from service.schemas import JobAccepted, PredictionOut, Strict
from service.spec import spec_of
from service.store.models import Fit, Proposal, ReoptPolicy
from service.validation import check_laws, check_method

router = APIRouter(prefix="/v1/experiments/{experiment_id}", tags=["fits"], route_class=CheckedRoute)


class FitOut(BaseModel):
    id: str
    law: str
    selected: bool
    n_runs: int
    data_version: int
    scores: dict[str, Any]
    params: dict[str, Any]
    duration_s: float
    device: str
    job_id: str | None
    created_at: datetime


class FitList(BaseModel):
    fits: list[FitOut]
    next_page_token: str | None = None


class RecommendationPoint(BaseModel):
    mixture: dict[str, float]
    fidelity: dict[str, float]
    predicted: PredictionOut | None
    method: str
    n_runs: int
    data_version: int
    job_id: str | None
    created_at: datetime


class RefitEntry(BaseModel):
    job_id: str | None
    data_version: int
    n_runs: int
    selected_law: str | None
    duration_s: float
    device: str
    laws: list[FitOut]
    recommendation: RecommendationPoint | None = Field(description="computed by the same job, right after it")
    created_at: datetime


class History(BaseModel):
    refits: list[RefitEntry] = Field(description="oldest first")
    recommendations: list[RecommendationPoint] = Field(description="every recommendation, oldest first")


class RefitRequest(Strict):
    force: bool = Field(default=False, description="refit even if the newest fits already cover every run")
    method: str | None = Field(default=None, description="method for the refreshed recommendation")
    laws: list[str] | None = Field(default=None, min_length=1, max_length=64,
                                   description="laws to score (default: MIXOPT_REFIT_LAWS, else all)")


class PolicyIn(Strict):
    enabled: bool = True
    every_runs: Annotated[int, Field(ge=1, le=1_000_000)] | None = Field(
        default=None, description="refit after this many new completed runs")
    every_minutes: Annotated[float, Field(gt=0, le=525_600, allow_inf_nan=False)] | None = Field(
        default=None, description="refit this often while runs keep completing")
    ready_suggestions: Annotated[int, Field(ge=0, le=1000)] = Field(
        default=0, description="suggested runs to keep waiting for trainers after each re-optimization")
    method: str = "auto"

    @model_validator(mode="after")
    def _has_trigger(self) -> PolicyIn:
        if self.enabled and self.every_runs is None and self.every_minutes is None:
            raise ValueError("an enabled policy needs every_runs, every_minutes or both")
        return self


class PolicyOut(PolicyIn):
    last_completed: int = Field(description="completed runs when the last scheduled refit was queued")
    last_enqueued_at: datetime | None
    last_job_id: str | None
    updated_at: datetime


@router.get("/fits", response_model=FitList)
def list_fits(experiment_id: str, st: State, project: Project, page_size: PageSize,
              latest: Annotated[bool, Query(description="only the newest refit's fits")] = False,
              page_token: str | None = None) -> FitList:
    """The stored law-fidelity reports: for each mixing law of each refit, cross-validated and held-out
    Spearman, MAE, R² and top-k hit; the law the recommendation used is marked `selected`.
    """
    exp = st.store.get_experiment(experiment_id, project)
    if latest:
        return FitList(fits=[_fit_out(f) for f in st.store.latest_fits(exp.id)])
    fits, token = st.store.list_fits(exp.id, page_size, page_token)
    return FitList(fits=[_fit_out(f) for f in fits], next_page_token=token)


@router.get("/history", response_model=History)
def history(experiment_id: str, st: State, project: Project,
            limit: Annotated[int, Query(ge=1, le=1000, description="newest refits to include")] = 200,
            ) -> History:
    """How the fits and the recommendation moved as data arrived: the newest `limit` refits with their
    laws and recommendation, and every stored recommendation.
    """
    exp = st.store.get_experiment(experiment_id, project)
    present = RunPresenter(spec_of(exp))
    recs = st.store.proposals(exp.id, "recommendation", limit=limit * 4)[::-1]
    rec_by_job = {p.job_id: p for p in recs if p.job_id}
    groups: dict[tuple[str | None, int], list[Fit]] = defaultdict(list)
    for fit in st.store.recent_fits(exp.id, limit * 64):
        groups[(fit.job_id, fit.data_version)].append(fit)
    refits = []
    for (job_id, version), fits in list(groups.items())[-limit:]:
        selected = next((f.law for f in fits if f.selected), None)
        rec = rec_by_job.get(job_id) if job_id else None
        refits.append(RefitEntry(job_id=job_id, data_version=version, n_runs=fits[0].n_runs,
                                 selected_law=selected, duration_s=max(f.duration_s for f in fits),
                                 device=fits[0].device,
                                 laws=[_fit_out(f) for f in fits],
                                 recommendation=_rec_out(rec, present) if rec else None,
                                 created_at=fits[0].created_at))
    return History(refits=refits, recommendations=[_rec_out(p, present) for p in recs])


@router.post("/refits", status_code=202, response_model=JobAccepted)
def request_refit(experiment_id: str, st: State, project: Project, body: RefitRequest | None = None
                  ) -> JobAccepted:
    """Queue a refit of every law (or `laws`) and a refreshed recommendation; 202 with the job to poll
    (`GET /v1/jobs/{job_id}`). A refit already queued or running for the experiment is returned instead
    of a second one.
    """
    exp = st.store.get_experiment(experiment_id, project)
    body = body or RefitRequest()
    job = queue_refit(st.store, st.dispatcher, exp, force=body.force,
                      method=check_method(body.method or "auto"),
                      laws=check_laws(body.laws or st.settings.refit_law_list), seed=st.settings.seed)
    return JobAccepted(job=job_out(job))


@router.get("/reoptimization", response_model=PolicyOut)
def get_policy(exp: ExperimentDep, st: State) -> PolicyOut:
    """The experiment's scheduled re-optimization policy (404 until one is PUT) and when it last fired."""
    policy = st.store.get_policy(exp.id)
    if policy is None:
        raise NotFound("this experiment has no re-optimization policy; PUT one", field="experiment_id")
    return _policy_out(policy)


@router.put("/reoptimization", response_model=PolicyOut)
def put_policy(experiment_id: str, body: PolicyIn, st: State, project: Project) -> PolicyOut:
    """Set the scheduled re-optimization policy: refit after `every_runs` new completed runs and/or every
    `every_minutes`, optionally keeping a ready queue of suggestions.
    """
    exp = st.store.get_experiment(experiment_id, project)
    values = body.model_dump()
    values["method"] = check_method(body.method)
    return _policy_out(st.store.put_policy(exp.id, values))


def _fit_out(f: Fit) -> FitOut:
    return FitOut(id=f.id, law=f.law, selected=f.selected, n_runs=f.n_runs, data_version=f.data_version,
                  scores=f.scores or {}, params=f.params or {}, duration_s=f.duration_s, device=f.device,
                  job_id=f.job_id, created_at=f.created_at)


def _rec_out(p: Proposal, present: RunPresenter) -> RecommendationPoint:
    payload = p.payload or {}
    pred = payload.get("predicted")
    return RecommendationPoint(mixture=present.mixture(payload.get("mixture", [])),
                               fidelity=present.fidelity(payload.get("fidelity", [])),
                               predicted=PredictionOut(**pred) if pred else None, method=p.method,
                               n_runs=p.n_runs, data_version=p.data_version, job_id=p.job_id,
                               created_at=p.created_at)


def _policy_out(p: ReoptPolicy) -> PolicyOut:
    return PolicyOut(enabled=p.enabled, every_runs=p.every_runs, every_minutes=p.every_minutes,
                     ready_suggestions=p.ready_suggestions, method=p.method, last_completed=p.last_completed,
                     last_enqueued_at=p.last_enqueued_at, last_job_id=p.last_job_id, updated_at=p.updated_at)
