"""``POST /suggestions``: held runs first, then the ready queue, then a propose job for what is missing.

The protocol, per attempt:

1. with a ``client_id``, suggestions still pending that were handed to that client earlier come back
   first, so a retried request never hands out a second batch;
2. a request that pins nothing (no method, fidelity or candidates) is then served from the ready queue a
   re-optimization policy keeps full: one UPDATE, no model;
3. what is still missing is proposed by a job, created under a per-client lock: a retry sent while the
   first request is still computing joins the first one's job instead of proposing a second batch. A
   request that joined waits for that job, then answers as a retry after it would (another attempt).
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from mixing.problem import Candidates
from service.errors import Conflict, ErrorCode, InvalidInput, SearchSpaceExhausted
from service.locks import experiment_lock
from service.operations.dispatch import Dispatcher
from service.operations.kinds import JobKind
from service.schemas import SuggestionRequest
from service.spec import spec_of
from service.store import Store
from service.store.models import Experiment, ExperimentState, Job, JobState, Run
from service.validation import ReportRules, candidate_pool, check_method


class Served(StrEnum):
    """How a suggestion request was answered."""

    #: Every run returned was already handed to this client (HTTP 200).
    held = "held"
    #: Runs handed out now, from the ready queue or a finished job (HTTP 201).
    new = "new"
    #: The job is still computing: poll it (HTTP 202).
    pending = "pending"


@dataclass(frozen=True)
class Suggestions:
    served: Served
    runs: list[Run]
    #: The job to poll when ``pending``.
    job: Job | None = None


@dataclass(frozen=True)
class _Ask:
    """A suggestion request checked against the experiment."""

    count: int
    client_id: str | None
    method: str
    fidelity: list[float] | None
    candidates: Candidates | None
    seed: int | None
    #: Nothing pinned (method, fidelity, candidates): the ready queue may serve it.
    unpinned: bool


def suggest(store: Store, dispatcher: Dispatcher, exp: Experiment, body: SuggestionRequest, seed: int | None,
            wait_s: float) -> Suggestions:
    """Runs to train next for ``body`` (see the module docstring); waits up to ``wait_s`` for a job."""
    ask = _checked(exp, body, seed)
    while True:
        answer = _attempt(store, dispatcher, exp, ask, wait_s)
        if answer is not None:
            return answer


def _checked(exp: Experiment, body: SuggestionRequest, seed: int | None) -> _Ask:
    if exp.state != ExperimentState.active.value:
        raise Conflict(f"experiment {exp.id} is archived", field="experiment_id", code=ErrorCode.experiment_archived)
    spec = spec_of(exp)
    method = check_method(body.method or spec.search.default_method or "auto")
    fidelity = ReportRules.of(spec).fidelity(body.fidelity, "fidelity", allow_partial=True) \
        if body.fidelity is not None else None
    candidates = candidate_pool(spec, body.candidates) if body.candidates is not None else None
    if candidates is not None and len(candidates.mixtures) == 0:
        raise InvalidInput("candidates must not be empty", field="candidates")
    return _Ask(count=body.count, client_id=body.client_id, method=method, fidelity=fidelity,
                candidates=candidates, seed=body.seed if body.seed is not None else seed,
                unpinned=body.method is None and body.fidelity is None and body.candidates is None)


def _attempt(store: Store, dispatcher: Dispatcher, exp: Experiment, ask: _Ask, wait_s: float
             ) -> Suggestions | None:
    """One pass of the protocol; None when this request joined another's job, which has now finished."""
    runs = store.suggestions_held(exp.id, ask.client_id, ask.count) if ask.client_id else []
    if len(runs) == ask.count:
        return Suggestions(Served.held, runs)
    if ask.unpinned:
        runs += store.claim_ready(exp.id, JobKind.propose_ready, ask.count - len(runs), ask.client_id)
    if len(runs) == ask.count:
        return Suggestions(Served.new, runs)
    job = None
    with experiment_lock(store.engine, exp.id, f"client {ask.client_id}") if ask.client_id else nullcontext():
        if ask.client_id:
            job = store.inflight_propose_job(exp.id, ask.client_id)
            runs = store.suggestions_held(exp.id, ask.client_id, ask.count)  # others' jobs may be done
        joined = job is not None
        if not joined and len(runs) < ask.count:
            job = store.create_job(JobKind.propose, exp.id, _job_params(store, exp, ask, ask.count - len(runs)))
            dispatcher.submit(JobKind.propose, job.id, exp.project)
    if job is None:  # a request of this client finished proposing while this one waited for the lock
        return Suggestions(Served.held, runs)
    if not dispatcher.wait(job.id, wait_s):
        return Suggestions(Served.pending, [], store.get_job(job.id))
    job = store.get_job(job.id)
    if job.state == JobState.failed:
        raise Conflict(f"suggestion failed: {job.error}", code=ErrorCode.suggestion_failed,
                       details={"job_id": job.id})
    if joined:
        return None
    ids = (job.result or {}).get("run_ids", [])
    if not runs and not ids:
        raise SearchSpaceExhausted("no new run is left to suggest: every feasible point (among the candidates, "
                                   "at this fidelity) is pending or observed", details={"job_id": job.id})
    return Suggestions(Served.new, runs + [store.get_run(exp.id, rid, exp.project) for rid in ids])


def _job_params(store: Store, exp: Experiment, ask: _Ask, count: int) -> dict[str, Any]:
    params: dict[str, Any] = {"count": count, "method": ask.method, "fidelity": ask.fidelity,
                              "project": exp.project, "seed": ask.seed, "client_id": ask.client_id}
    if ask.candidates is not None:
        params["pool"] = store.save_pool(exp.id, ask.candidates)
    return params
