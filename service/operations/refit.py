"""Refit and re-optimize: the slow background work that keeps an experiment's model current.

``refit`` fits every mixing law on the experiment's completed runs, measures each one's fidelity by
cross-validation, stores the results as Fit records, remembers the selected law, recomputes the
recommendation and stores the model that predictions use by default (see :mod:`service.store.fitted_models`).
``reoptimize`` does the same, then tops up the experiment's ready queue of suggestions
(runs left ``suggested`` for trainers to pick up). Both are job operations
(:func:`~service.operations.jobs.job_operation`): the in-process dispatcher and Celery workers run this
very code.

Concurrency rules: refits of one experiment are serialised by a database lock; a refit whose data is
already fitted is skipped; and a refit overtaken by newer data is never stored over the newer fits
(:meth:`Store.apply_refit` checks the data version in the same transaction that writes).
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Callable
from typing import Any

from mixing.errors import NotEnoughDataError
from mixing.evaluation import LAW_FAILURES, EvaluationReport, compare_transfer, evaluate_laws
from mixing.laws import make_law
from mixing.methods import as_predictive, resolve_recommender
from mixing.methods.base import SearchContext
from mixing.methods.common import nearest_fidelity_rows
from mixing.transfer import MIN_OWN_RUNS
from service.jsonable import to_jsonable
from service.locks import experiment_lock
from service.operations.context import search_context
from service.operations.jobs import JobResult, job_operation
from service.operations.kinds import JobKind
from service.operations.proposing import propose
from service.operations.recommend import recommend
from service.store import Store
from service.store.fitted_models import current_predictor
from service.store.models import Experiment, Fit, Job, new_id

log = logging.getLogger("mixopt.refit")

#: Cross-validation folds of the fidelity report.
FOLDS = 5
#: Runs the scored fidelity level needs (as the law method's quick selection): a 5-fold CV trains on 80%.
SCORED_LEVEL_MIN_RUNS = 8
#: Report keys stored in Fit columns of their own rather than in ``scores``.
_FIT_COLUMNS = ("name", "params", "n_runs", "duration_s", "device")
_DONE = re.compile(r"\((\d+)/(\d+)\)\s*$")

Progress = Callable[[float], None]


@job_operation
def refit(store: Store, job: Job) -> JobResult:
    """Refit all laws, store the fidelity report as Fit records, refresh the recommendation."""
    return _refit(store, job, ready_queue=False)


@job_operation
def reoptimize(store: Store, job: Job) -> JobResult:
    """``refit``, then keep ``params["ready_suggestions"]`` suggested runs waiting for trainers."""
    return _refit(store, job, ready_queue=True)


def _refit(store: Store, job: Job, ready_queue: bool) -> JobResult:
    params = job.params
    method, seed = params.get("method") or "auto", params.get("seed")
    t0 = time.perf_counter()

    def progress(x: float) -> None:
        store.set_job_progress(job.id, x)

    exp = store.get_experiment(job.experiment_id or "", params.get("project", "default"))
    outcome = refit_experiment(store, exp, job.id, bool(params.get("force")), progress, params.get("laws"))
    progress(0.8)
    result: dict[str, Any] = {
        "refit": outcome,
        "recommendation": refresh_recommendation(store, exp, method, seed, job.id,
                                                 refitted=outcome["status"] == "applied"),
    }
    progress(0.85)
    result["model"] = store_default_model(store, exp, seed)
    if ready_queue:
        progress(0.9)
        target = int(params.get("ready_suggestions") or 0)
        result["ready_run_ids"] = top_up_ready_queue(store, exp, target, method, seed, job.id)
    result["duration_s"] = time.perf_counter() - t0
    log.info("refitted", extra={"job_id": job.id, "experiment_id": exp.id, "status": outcome["status"],
                                "duration_s": round(result["duration_s"], 3)})
    return result


def refit_experiment(store: Store, exp: Experiment, job_id: str | None, force: bool = False,
                     progress: Progress | None = None, laws: list[str] | None = None) -> dict[str, Any]:
    """Fit and score every law (or ``laws``) on the current completed runs and store the Fit records.

    Returns ``{"status": ...}``: ``applied``, ``up_to_date`` (the newest fits already cover these runs;
    ``force`` refits anyway), ``not_enough_data`` or ``overtaken`` (newer fits were stored meanwhile).
    """
    with experiment_lock(store.engine, exp.id, "refit"):
        ctx, snap = search_context(store, exp)
        n = ctx.observations.n
        newest = store.latest_fits(exp.id)
        # Completed runs are final, so the same count means the same training data.
        if newest and not force and newest[0].n_runs == n and newest[0].data_version <= snap.data_version:
            return {"status": "up_to_date", "data_version": newest[0].data_version, "n_runs": n}
        if progress is not None:
            progress(0.1)
        try:
            report = evaluate(ctx, laws, _fold_progress(progress) if progress is not None else None)
        except NotEnoughDataError as exc:
            return {"status": "not_enough_data", "reason": str(exc), "n_runs": n}
        fits = fit_records(report, n, job_id)
        applied = store.apply_refit(exp.id, fits, snap.data_version, report.hints())
    return {"status": "applied" if applied else "overtaken", "data_version": snap.data_version, "n_runs": n,
            "selected_law": report.selected, "laws": [f.law for f in fits], "fit_s": report.duration_s}


def evaluate(ctx: SearchContext, laws: list[str] | None = None,
             progress: Callable[[str], None] | None = None) -> EvaluationReport:
    """The law engine's cross-validated fidelity report on the context's completed runs.

    The runs are presented as the law method fits them: every run with normalised fidelity coordinates
    when several fidelities were observed, plain mixtures otherwise. With several fidelities the laws
    are scored where the law method predicts from data: at the observed level nearest the target (with
    enough runs), fidelity-blind laws fitted on that level only, fidelity-aware ones on every run.
    """
    obs, problem = ctx.observations, ctx.problem
    multi = problem.fidelity.n_axes > 0 and len(obs.distinct_fidelities()) > 1
    fidelity = problem.fidelity.normalise(obs.fidelities) if multi else None
    score_rows = nearest_fidelity_rows(problem, obs, problem.fidelity.target, SCORED_LEVEL_MIN_RUNS) \
        if multi else None
    report = evaluate_laws(laws, obs.mixtures, fidelity, obs.metrics, problem.metric_weights,
                           goal_sign=problem.sign, folds=FOLDS, progress=progress, score_rows=score_rows)
    if ctx.transfers is not None and report.selected is not None:
        entry = report.law(report.selected)
        with contextlib.suppress(*LAW_FAILURES):  # too few complete runs, or a fold the law cannot fit
            report.transfer = compare_transfer(
                make_law(report.selected, **entry.params), obs.mixtures, fidelity, obs.metrics,
                problem.metric_weights, ctx.transfers, goal_sign=problem.sign, folds=FOLDS,
                prior_rows=nearest_fidelity_rows(problem, obs, problem.fidelity.target, MIN_OWN_RUNS))
    return report


def _fold_progress(progress: Progress, every_s: float = 0.5) -> Callable[[str], None]:
    """Turn the engine's "... (done/total)" messages into job progress between 0.1 and 0.7, at most
    every ``every_s`` seconds (each update is a database write)."""
    last = [0.0]

    def update(message: str) -> None:
        match = _DONE.search(message)
        now = time.monotonic()
        if match is None or now - last[0] < every_s:
            return
        last[0] = now
        progress(0.1 + 0.6 * int(match[1]) / max(int(match[2]), 1))

    return update


def fit_records(report: EvaluationReport, n_runs: int, job_id: str | None) -> list[Fit]:
    """One Fit per law of a fidelity report: its parameters, scores (or why it was skipped) and timing.

    The selected law's scores also hold its out-of-fold predictions, ``oof: {"observed": [...],
    "predicted": [...]}`` (one entry per scored run), which the dashboard plots against the observations.
    """
    selected = report.selected
    out = []
    for entry in report.to_dict()["laws"]:
        name = str(entry["name"])
        scores = {k: v for k, v in entry.items() if k not in _FIT_COLUMNS}
        if name == selected:
            scores["oof"] = report.out_of_fold(name)
            if report.transfer is not None:
                scores["transfer"] = report.transfer.to_dict()
        out.append(Fit(id=new_id("fit"), job_id=job_id, law=name, selected=name == selected, n_runs=n_runs,
                       data_version=0, scores=to_jsonable(scores),
                       params=to_jsonable(entry.get("params") or {}),
                       duration_s=float(entry.get("duration_s") or 0.0),
                       device=str(entry.get("device") or "cpu")))
    return out


def refresh_recommendation(store: Store, exp: Experiment, method: str, seed: int | None,
                           job_id: str | None, refitted: bool) -> dict[str, Any] | None:
    """Recompute the recommendation unless the stored one already reflects the current data and model.

    After a refit that changed the fits, only a recommendation made by this same job (a redelivery) counts
    as current; otherwise any recommendation of the current data version does.
    """
    with experiment_lock(store.engine, exp.id, "recommend"):
        current = store.get_experiment(exp.id, exp.project).data_version
        latest = store.latest_recommendation(exp.id)
        current_model = not refitted or (latest is not None and latest.job_id == job_id)
        if latest is not None and latest.data_version == current and current_model:
            return {"proposal_id": latest.id, "method": latest.method, "data_version": current}
        if store.run_counts([exp.id])[exp.id].get("completed", 0) == 0:
            return None
        return recommend(store, exp.id, exp.project, method_name=method, seed=seed, job_id=job_id)


def store_default_model(store: Store, exp: Experiment, seed: int | None) -> dict[str, Any]:
    """Make sure the model ``POST /predict`` uses by default (method ``auto``, target fidelity) is stored for
    the current runs and hints, fitting it if it is not (rule: :mod:`service.store.fitted_models`).

    Returns ``{"method", "data_version"}``, or ``{"status": "not_enough_data"}`` when nothing can be fitted.
    """
    ctx, snap = search_context(store, store.get_experiment(exp.id, exp.project), seed)  # hints as refitted
    method = as_predictive(resolve_recommender("auto", ctx))
    try:
        current_predictor(store, exp.id, method, ctx, snap.data_version, None, seed)
    except NotEnoughDataError:
        return {"status": "not_enough_data"}
    return {"method": method.name, "data_version": snap.data_version}


def top_up_ready_queue(store: Store, exp: Experiment, target: int, method: str, seed: int | None,
                       parent_job_id: str) -> list[str]:
    """Propose enough runs that ``target`` suggested runs from the ready queue are waiting; their ids."""
    missing = target - store.ready_queue_size(exp.id, JobKind.propose_ready)
    if missing <= 0:
        return []
    params = {"count": missing, "method": method, "project": exp.project, "seed": seed,
              "parent_job_id": parent_job_id, "ready_queue": True}
    child = store.create_job(JobKind.propose_ready, exp.id, params)
    result = propose(store, child.id) or {}
    return list(result.get("run_ids", []))

