"""A small synchronous client for training orchestrators.

Retries are safe because every run report carries a ``client_run_id``: a report that reached the server
before the connection dropped is returned, not duplicated, when it is sent again. Resources come back as
the service's JSON objects (dicts), except suggestions, which are :class:`Suggestion` records.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from mixopt_client.errors import JobFailedError, RetryableError, error_from_response

if TYPE_CHECKING:
    import pandas

#: Mixtures whose weights sum to within this of 1 are rescaled by the client before sending (e.g. rows
#: rounded to 3 decimals in a CSV); the server itself accepts only sums within 1e-6.
CLIENT_RENORMALISE_TOLERANCE = 1e-2

#: Answers worth sending again after a pause: rate limited, or the service or a proxy briefly unavailable.
RETRY_STATUS = frozenset({429, 502, 503, 504})
#: Longest pause between two tries, whatever ``Retry-After`` asks for.
MAX_RETRY_DELAY_S = 5.0
#: Job states after which a job never changes again.
FINAL_JOB_STATES = frozenset({"succeeded", "failed"})

#: Called with each state of a job that :meth:`MixoptClient.wait` polls (the ``GET /v1/jobs/{id}`` object).
ProgressCallback = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class Suggestion:
    """A run to train: report it with ``report(experiment_id, run_id=s.id, metrics=...)``."""

    id: str
    mixture: dict[str, float]
    fidelity: dict[str, float]
    method: str | None
    predicted: dict[str, Any] | None


def renormalise(mixture: Mapping[str, float], tolerance: float = CLIENT_RENORMALISE_TOLERANCE) -> dict[str, float]:
    """Rescale weights to sum to exactly 1 when they are off by rounding only (within ``tolerance``)."""
    total = sum(mixture.values())
    if total > 0 and abs(total - 1.0) <= tolerance:
        return {k: v / total for k, v in mixture.items()}
    return dict(mixture)


def stderr_progress(job: Mapping[str, Any]) -> None:
    """A :data:`ProgressCallback` that keeps one line on stderr up to date: ``job <id> (refit): running 40%``.

    The line is rewritten in place and ended with a newline once the job is final.
    """
    line = f"job {job['id']} ({job.get('kind', '?')}): {job['state']} {100 * float(job.get('progress') or 0):.0f}%"
    end = "\n" if job["state"] in FINAL_JOB_STATES else ""
    print(f"\r{line}", end=end, file=sys.stderr, flush=True)


class MixoptClient:
    """Synchronous client. ``base_url`` like ``http://127.0.0.1:8000``; ``token`` defaults to MIXOPT_TOKEN.

    Every error answer raises a :class:`~mixopt_client.errors.MixoptError` subclass; connection errors that
    outlast the retries raise httpx's ``TransportError``.
    """

    def __init__(self, base_url: str, token: str | None = None, timeout_s: float = 60.0, retries: int = 5,
                 transport: httpx.BaseTransport | None = None) -> None:
        token = token if token is not None else os.environ.get("MIXOPT_TOKEN") or None
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout_s, headers=headers,
                                 transport=transport)
        self.retries = retries

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> MixoptClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------------- transport
    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send with retries on connection errors and 429/5xx-unavailable answers.

        The pause doubles from 0.2 s (at most :data:`MAX_RETRY_DELAY_S`), or is what ``Retry-After`` asks.
        """
        delay = 0.2
        for attempt in range(self.retries + 1):
            pause = delay
            try:
                resp = self.http.request(method, path, **kwargs)
            except httpx.TransportError:
                if attempt == self.retries:
                    raise
            else:
                if resp.status_code < 400:
                    return resp
                error = error_from_response(resp)
                if resp.status_code not in RETRY_STATUS or attempt == self.retries:
                    raise error
                if isinstance(error, RetryableError) and error.retry_after is not None:
                    pause = error.retry_after
            time.sleep(min(pause, MAX_RETRY_DELAY_S))
            delay = min(delay * 2, MAX_RETRY_DELAY_S)
        raise AssertionError("unreachable")

    # -------------------------------------------------------------------------------------- resources
    def create_experiment(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        return self.request("POST", "/v1/experiments", json=dict(spec)).json()

    def get_experiment(self, experiment_id: str) -> dict[str, Any]:
        return self.request("GET", f"/v1/experiments/{experiment_id}").json()

    def find_experiment(self, name: str) -> dict[str, Any] | None:
        """The experiment called exactly ``name`` in the token's project, or None."""
        for exp in self.iter_experiments(q=name):
            if exp["name"] == name:
                return exp
        return None

    def iter_experiments(self, **filters: Any) -> Iterator[dict[str, Any]]:
        """Every experiment matching ``filters`` (``state``, ``q``), fetching pages as needed."""
        token = None
        while True:
            params = {k: v for k, v in {**filters, "page_token": token}.items() if v is not None}
            page = self.request("GET", "/v1/experiments", params=params).json()
            yield from page["experiments"]
            token = page.get("next_page_token")
            if not token:
                return

    def suggest(self, experiment_id: str, count: int = 1, *, method: str | None = None,
                fidelity: Mapping[str, float] | None = None, candidates: Sequence[Mapping[str, Any]] | None = None,
                client_id: str | None = None, seed: int | None = None, poll_s: float = 0.5, wait_s: float = 600.0,
                on_progress: ProgressCallback | None = None) -> list[Suggestion]:
        """Ask for ``count`` runs; waits for the job (see :meth:`wait`) when the service answers 202.

        With ``client_id`` (this trainer's name) a repeated call returns the runs still pending for it
        instead of new ones. Without one, the call names itself (``call-<random>``), so that the client's
        own retry after a lost response gets the same runs back rather than a second batch.
        """
        client_id = client_id or f"call-{uuid.uuid4().hex[:16]}"
        body = _with_options({"count": count, "client_id": client_id}, method=method, seed=seed)
        if fidelity:
            body["fidelity"] = dict(fidelity)
        if candidates is not None:
            body["candidates"] = list(candidates)
        resp = self.request("POST", f"/v1/experiments/{experiment_id}/suggestions", json=body)
        if resp.status_code == 202:
            self.wait(resp.json()["job"], poll_s=poll_s, timeout_s=wait_s, on_progress=on_progress)
            # The job made the runs still missing; asking again returns all of them, now held for us.
            runs = self.request("POST", f"/v1/experiments/{experiment_id}/suggestions", json=body).json()["runs"]
        else:
            runs = resp.json()["runs"]
        return [Suggestion(r["id"], r["mixture"], r["fidelity"], r.get("method"), r.get("predicted")) for r in runs]

    def wait(self, job: str | Mapping[str, Any], *, poll_s: float = 0.5, timeout_s: float = 600.0,
             on_progress: ProgressCallback | None = None) -> dict[str, Any]:
        """Poll a job until it is final; return its last state, or raise :class:`JobFailedError`.

        ``job`` is a job id, a job object, or a 202 answer holding one (``{"job": {...}}``). ``on_progress``
        sees every polled state, the final one included (:func:`stderr_progress` prints a line).
        Raises ``TimeoutError`` when the job is still running after ``timeout_s``.
        """
        job_id = job if isinstance(job, str) else str((job.get("job") or job)["id"])
        deadline = time.monotonic() + timeout_s
        while True:
            state = self.request("GET", f"/v1/jobs/{job_id}").json()
            if on_progress is not None:
                on_progress(state)
            if state["state"] == "succeeded":
                return state
            if state["state"] == "failed":
                raise JobFailedError(state)
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {state['state']} after {timeout_s}s")
            time.sleep(poll_s)

    def report(self, experiment_id: str, *, metrics: Mapping[str, float], mixture: Mapping[str, float] | None = None,
               fidelity: Mapping[str, float] | None = None, cost: float | None = None, state: str = "completed",
               run_id: str | None = None, client_run_id: str | None = None) -> dict[str, Any]:
        """Report a run's results. A ``client_run_id`` is generated when none is given, so retries are safe."""
        body: dict[str, Any] = {"metrics": dict(metrics), "state": state,
                                "client_run_id": client_run_id or (None if run_id else uuid.uuid4().hex)}
        if run_id:
            body["id"] = run_id
        if mixture is not None:
            body["mixture"] = renormalise(mixture)
        if fidelity is not None:
            body["fidelity"] = dict(fidelity)
        if cost is not None:
            body["cost"] = cost
        return self.request("POST", f"/v1/experiments/{experiment_id}/runs",
                            json={k: v for k, v in body.items() if v is not None}).json()

    def import_runs(self, experiment_id: str, runs: Sequence[Mapping[str, Any]], chunk: int = 10_000
                    ) -> dict[str, int]:
        """Batch-import runs (each a report body); mixtures are renormalised like :meth:`report`."""
        totals = {"created": 0, "existing": 0, "updated": 0}
        for i in range(0, len(runs), chunk):
            part = [{**r, "mixture": renormalise(r["mixture"])} if "mixture" in r else dict(r)
                    for r in runs[i : i + chunk]]
            out = self.request("POST", f"/v1/experiments/{experiment_id}/runs:batch", json={"runs": part}).json()
            for k in totals:
                totals[k] += out[k]
        return totals

    def get_run(self, experiment_id: str, run_id: str) -> dict[str, Any]:
        return self.request("GET", f"/v1/experiments/{experiment_id}/runs/{run_id}").json()

    def list_runs(self, experiment_id: str, state: Sequence[str] = (), page_size: int = 1000) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        token = None
        while True:
            params: dict[str, Any] = {"page_size": page_size, "state": list(state)}
            if token:
                params["page_token"] = token
            page = self.request("GET", f"/v1/experiments/{experiment_id}/runs", params=params).json()
            out.extend(page["runs"])
            token = page.get("next_page_token")
            if not token:
                return out

    def runs_frame(self, experiment_id: str, state: Sequence[str] = ()) -> pandas.DataFrame:
        """The experiment's runs as a pandas DataFrame, one row per run, indexed by run id.

        Columns: ``state``, ``method``, ``objective``, ``cost``; ``mixture.<domain>`` in the experiment's
        domain order; ``fidelity.<axis>`` in its axis order; ``metrics.<name>`` for every metric any run
        reported (NaN where a run did not); ``created_at`` and ``completed_at`` as UTC timestamps.
        Needs pandas (``pip install 'mixopt-client[pandas]'``).
        """
        try:
            import pandas as pd
        except ImportError as exc:
            raise ImportError("MixoptClient.runs_frame needs pandas, an optional dependency of mixopt-client: "
                              "pip install 'mixopt-client[pandas]' (or pip install pandas)") from exc
        exp = self.get_experiment(experiment_id)
        runs = self.list_runs(experiment_id, state=state)
        domains = [d["name"] for d in exp["domains"]]
        axes = [f["name"] for f in exp["fidelities"]]
        metrics = sorted({m for r in runs for m in r["metrics"]})
        columns = ["state", "method", "objective", "cost", *(f"mixture.{d}" for d in domains),
                   *(f"fidelity.{a}" for a in axes), *(f"metrics.{m}" for m in metrics), "created_at",
                   "completed_at"]
        rows = [[r["state"], r.get("method"), r.get("objective"), r.get("cost"),
                 *(r["mixture"].get(d) for d in domains), *(r["fidelity"].get(a) for a in axes),
                 *(r["metrics"].get(m) for m in metrics), r["created_at"], r.get("completed_at")] for r in runs]
        frame = pd.DataFrame(rows, columns=columns, index=pd.Index([r["id"] for r in runs], name="id"))
        numeric = [c for c in columns if c.startswith(("mixture.", "fidelity.", "metrics.")) or c in
                   ("objective", "cost")]
        frame[numeric] = frame[numeric].astype("float64")
        for column in ("created_at", "completed_at"):
            frame[column] = pd.to_datetime(frame[column], utc=True, format="ISO8601")
        return frame

    def recommendation(self, experiment_id: str, refresh: bool = False) -> dict[str, Any]:
        return self.request("GET", f"/v1/experiments/{experiment_id}/recommendation",
                            params={"refresh": "true"} if refresh else None).json()

    def cmr(self, experiment_id: str) -> dict[str, Any]:
        """The critical mixture ratio of a continual-pretraining experiment, with its interval and the losses
        predicted there (``GET /v1/experiments/{id}/cmr``)."""
        return self.request("GET", f"/v1/experiments/{experiment_id}/cmr").json()

    def transfer(self, experiment_id: str, source_experiment_id: str, weight: float = 1.0) -> dict[str, Any]:
        """Bring the completed runs of ``source_experiment_id`` into ``experiment_id`` as a warm start
        (``POST /v1/experiments/{id}/transfers``): how many came in and, by reason, how many did not. The
        server makes it idempotent, so a retry adds nothing."""
        return self.request("POST", f"/v1/experiments/{experiment_id}/transfers",
                            json={"experiment_id": source_experiment_id, "weight": weight}).json()

    def list_transferred_runs(self, experiment_id: str, source_experiment_id: str | None = None,
                              page_size: int = 1000) -> list[dict[str, Any]]:
        """Every run brought in from other experiments (all pages), optionally from one source only."""
        out: list[dict[str, Any]] = []
        params: dict[str, Any] = {"page_size": page_size}
        if source_experiment_id is not None:
            params["source_experiment_id"] = source_experiment_id
        while True:
            page = self.request("GET", f"/v1/experiments/{experiment_id}/transferred-runs", params=params).json()
            out.extend(page["runs"])
            if not page.get("next_page_token"):
                return out
            params["page_token"] = page["next_page_token"]

    def recommendation_among(self, experiment_id: str, candidates: Sequence[Mapping[str, float]], *,
                             method: str | None = None, seed: int | None = None) -> dict[str, Any]:
        """The best of ``candidates`` at the target fidelity for the current data (computed, not stored)."""
        body: dict[str, Any] = {"candidates": [renormalise(m) for m in candidates]}
        return self.request("POST", f"/v1/experiments/{experiment_id}/recommendation",
                            json=_with_options(body, method=method, seed=seed)).json()

    def pareto(self, experiment_id: str, *, method: str = "law", candidates: int | None = None,
               seed: int | None = None) -> dict[str, Any]:
        """The predicted trade-off front at the target fidelity, with the observed runs (computed, not stored)."""
        params = _with_options({"method": method}, candidates=candidates, seed=seed)
        return self.request("GET", f"/v1/experiments/{experiment_id}/pareto", params=params).json()

    def predict(self, experiment_id: str, mixtures: Sequence[Mapping[str, float]],
                fidelity: Mapping[str, float] | None = None, *, method: str | None = None,
                seed: int | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"mixtures": [renormalise(m) for m in mixtures]}
        if fidelity:
            body["fidelity"] = dict(fidelity)
        return self.request("POST", f"/v1/experiments/{experiment_id}/predict",
                            json=_with_options(body, method=method, seed=seed)).json()


def _with_options(body: dict[str, Any], **options: Any) -> dict[str, Any]:
    """``body`` plus the options that are set (the service applies its defaults to the rest)."""
    return {**body, **{k: v for k, v in options.items() if v is not None}}
