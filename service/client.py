"""A small typed Python client for training orchestrators.

Retries are safe because every run report carries a ``client_run_id``: a report that reached the server
before the connection dropped is returned, not duplicated, when it is sent again.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from service.settings import get_settings

#: Mixtures whose weights sum to within this of 1 are rescaled by the client before sending (e.g. rows
#: rounded to 3 decimals in a CSV); the server itself accepts only sums within 1e-6.
CLIENT_RENORMALISE_TOLERANCE = 1e-2

RETRY_STATUS = {429, 502, 503, 504}


class MixoptError(Exception):
    """An error answer from the service, with its code and the field it names."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(f"{status} {code}: {message}" + (f" (field {field})" if field else ""))
        self.status = status
        self.code = code
        self.message = message
        self.field = field


@dataclass(frozen=True)
class Suggestion:
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


class MixoptClient:
    """Synchronous client. ``base_url`` like ``http://127.0.0.1:8000``; ``token`` defaults to MIXOPT_TOKEN."""

    def __init__(self, base_url: str, token: str | None = None, timeout_s: float = 60.0, retries: int = 5,
                 transport: httpx.BaseTransport | None = None) -> None:
        if token is None:
            configured = get_settings().token
            token = configured.get_secret_value() if configured is not None else None
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
        """Send with retries on connection errors and 429/5xx-unavailable answers (exponential backoff)."""
        delay = 0.2
        for attempt in range(self.retries + 1):
            try:
                resp = self.http.request(method, path, **kwargs)
            except httpx.TransportError:
                if attempt == self.retries:
                    raise
            else:
                if resp.status_code not in RETRY_STATUS or attempt == self.retries:
                    return self._check(resp)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
        raise AssertionError("unreachable")

    @staticmethod
    def _check(resp: httpx.Response) -> httpx.Response:
        if resp.status_code >= 400:
            try:
                err = resp.json().get("error", {})
            except ValueError:
                err = {}
            raise MixoptError(resp.status_code, err.get("code", "http_error"), err.get("message", resp.text[:200]),
                              err.get("field"))
        return resp

    # -------------------------------------------------------------------------------------- resources
    def create_experiment(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        return self.request("POST", "/v1/experiments", json=dict(spec)).json()

    def get_experiment(self, experiment_id: str) -> dict[str, Any]:
        return self.request("GET", f"/v1/experiments/{experiment_id}").json()

    def find_experiment(self, name: str) -> dict[str, Any] | None:
        for exp in self.iter_experiments(q=name):
            if exp["name"] == name:
                return exp
        return None

    def iter_experiments(self, **filters: Any) -> Iterator[dict[str, Any]]:
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
                client_id: str | None = None, seed: int | None = None, poll_s: float = 0.5, wait_s: float = 600.0
                ) -> list[Suggestion]:
        """Ask for ``count`` runs; waits for the job when the service answers 202.

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
            self.wait_job(resp.json()["job"]["id"], poll_s, wait_s)
            # The job made the runs still missing; asking again returns all of them, now held for us.
            runs = self.request("POST", f"/v1/experiments/{experiment_id}/suggestions", json=body).json()["runs"]
        else:
            runs = resp.json()["runs"]
        return [Suggestion(r["id"], r["mixture"], r["fidelity"], r.get("method"), r.get("predicted")) for r in runs]

    def wait_job(self, job_id: str, poll_s: float = 0.5, wait_s: float = 600.0) -> dict[str, Any]:
        deadline = time.monotonic() + wait_s
        while True:
            job = self.request("GET", f"/v1/jobs/{job_id}").json()
            if job["state"] == "succeeded":
                return job
            if job["state"] == "failed":
                raise MixoptError(409, "job_failed", job.get("error") or "job failed")
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job['state']} after {wait_s}s")
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

    def recommendation(self, experiment_id: str, refresh: bool = False) -> dict[str, Any]:
        return self.request("GET", f"/v1/experiments/{experiment_id}/recommendation",
                            params={"refresh": "true"} if refresh else None).json()

    def recommendation_among(self, experiment_id: str, candidates: Sequence[Mapping[str, float]], *,
                             method: str | None = None, seed: int | None = None) -> dict[str, Any]:
        """The best of ``candidates`` at the target fidelity for the current data (computed, not stored)."""
        body: dict[str, Any] = {"candidates": [renormalise(m) for m in candidates]}
        return self.request("POST", f"/v1/experiments/{experiment_id}/recommendation",
                            json=_with_options(body, method=method, seed=seed)).json()

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
