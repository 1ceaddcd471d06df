"""Prometheus metrics: request latency and run reports counted in-process, the rest read from the database.

Request latency and run reports are observed as they happen. Queue depth, job durations and fit fidelity
are computed from the database when ``/metrics`` is scraped, so they are right whichever process ran the
job (the API's thread pool or a Celery worker) and need no bookkeeping on the hot paths; those families
are database-wide, so every API replica reports the same values (aggregate them with ``max``, not ``sum``).

Each app has its own ``CollectorRegistry``, so several apps in one process (tests) never share counters.
``/metrics`` is served by :class:`MetricsMiddleware` itself, outside the routers and their auth dependency:
public, or behind ``MIXOPT_METRICS_TOKEN`` when that is set.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Iterator
from typing import Any, cast

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from pydantic import SecretStr
from sqlalchemy import ColumnElement, Engine, case, func, select
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.errors import error_body
from service.api.middleware import send_json
from service.errors import ErrorCode
from service.store.models import Experiment, ExperimentState, Fit, Job, JobState

log = logging.getLogger("mixopt.metrics")

METRICS_PATH = "/metrics"
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
JOB_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
#: Fit-fidelity series are exported for at most this many experiments (those refitted most recently), so
#: the series count stays bounded however many experiments the database holds.
MAX_FIDELITY_EXPERIMENTS = 500
#: Route label of requests that matched no route (404s, and requests rejected before routing).
UNMATCHED = "unmatched"


class Metrics:
    """The registry of one app and the instruments its middleware and routers update."""

    def __init__(self, engine: Engine) -> None:
        self.registry = CollectorRegistry()
        self.http_latency = Histogram(
            "mixopt_http_request_duration_seconds", "HTTP request latency, by route template and status",
            ["method", "route", "status"], buckets=HTTP_BUCKETS, registry=self.registry)
        self.runs_reported = Counter(
            "mixopt_runs_reported", "Run reports accepted (each run of a batch counts)", ["endpoint"],
            registry=self.registry)
        self.runs_created = Counter(
            "mixopt_runs_created", "Runs stored for the first time by a report", ["endpoint"],
            registry=self.registry)
        self.registry.register(DatabaseCollector(engine))

    def count_reports(self, endpoint: str, reported: int, created: int) -> None:
        self.runs_reported.labels(endpoint).inc(reported)
        self.runs_created.labels(endpoint).inc(created)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class DatabaseCollector(Collector):
    """Families computed at scrape time with a few grouped queries (indexed on job state)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("mixopt_metrics_database_up", "1 when the scrape could read the database")
        try:
            with self.engine.connect() as conn:
                families = [*self._jobs(conn), self._fidelity(conn)]
        except Exception as exc:  # a scrape must answer even with the database down
            log.warning("metrics scrape could not read the database", extra={"error": str(exc)[:300]})
            up.add_metric([], 0.0)
            yield up
            return
        up.add_metric([], 1.0)
        yield up
        yield from families

    def _jobs(self, conn: Any) -> list[Metric]:
        queued = GaugeMetricFamily("mixopt_jobs_queued", "Jobs waiting for a worker (the queue depth)",
                                   labels=["kind"])
        running = GaugeMetricFamily("mixopt_jobs_running", "Jobs being executed", labels=["kind"])
        active = select(Job.state, Job.kind, func.count()).where(
            Job.state.in_([JobState.queued.value, JobState.running.value])).group_by(Job.state, Job.kind)
        for state, kind, n in conn.execute(active):
            (queued if state == JobState.queued.value else running).add_metric([kind], float(n))
        durations = HistogramMetricFamily(
            "mixopt_job_duration_seconds", "Duration of finished jobs (last attempt), by kind and outcome",
            labels=["kind", "outcome"])
        seconds = _seconds_between(conn.dialect.name, Job.started_at, Job.finished_at)
        if seconds is not None:
            stmt = (select(Job.kind, Job.state, func.count(), func.sum(seconds),
                           *[func.sum(case((seconds <= b, 1), else_=0)) for b in JOB_BUCKETS])
                    .where(Job.state.in_([JobState.succeeded.value, JobState.failed.value]),
                           Job.started_at.is_not(None), Job.finished_at.is_not(None))
                    .group_by(Job.kind, Job.state))
            for kind, state, n, total, *cumulative in conn.execute(stmt):
                buckets = [(_le(b), float(c or 0)) for b, c in zip(JOB_BUCKETS, cumulative, strict=True)]
                durations.add_metric([kind, state], buckets=[*buckets, ("+Inf", float(n))],
                                     sum_value=float(total or 0.0))
        return [queued, running, durations]

    def _fidelity(self, conn: Any) -> Metric:
        family = GaugeMetricFamily(
            "mixopt_fit_cv_spearman", "Cross-validated Spearman of the law selected by the latest refit",
            labels=["experiment_id", "project", "law", "route"])
        latest = (select(func.max(Fit.pk).label("pk"))
                  .join(Experiment, Experiment.id == Fit.experiment_id)
                  .where(Fit.selected.is_(True), Experiment.state == ExperimentState.active.value)
                  .group_by(Fit.experiment_id).order_by(func.max(Fit.pk).desc())
                  .limit(MAX_FIDELITY_EXPERIMENTS).subquery())
        rows = conn.execute(select(Fit.experiment_id, Experiment.project, Fit.law, Fit.scores)
                            .join(latest, Fit.pk == latest.c.pk)
                            .join(Experiment, Experiment.id == Fit.experiment_id))
        for exp_id, project, law, scores in rows:
            for route, s in sorted(((scores or {}).get("cv") or {}).items()):
                rho = (s or {}).get("spearman")
                if isinstance(rho, int | float):
                    family.add_metric([exp_id, project, law, route], float(rho))
        return family


def _seconds_between(dialect: str, start: Any, end: Any) -> ColumnElement[float] | None:
    """``end - start`` in seconds as SQL, for the dialects mixopt runs on (None elsewhere)."""
    if dialect == "postgresql":
        return cast(ColumnElement[float], func.extract("epoch", end - start))
    if dialect == "sqlite":
        return (func.julianday(end) - func.julianday(start)) * 86400.0
    return None


def _le(bound: float) -> str:
    return repr(float(bound))


class MetricsMiddleware:
    """Observes every request's latency under its route template, and answers ``GET /metrics``.

    The route label is the matched route's path template (``/v1/experiments/{experiment_id}/runs``), never
    the raw path, so the number of series is bounded by the number of routes.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics, token: SecretStr | None) -> None:
        self.app = app
        self.metrics = metrics
        self.expected = None if token is None else f"Bearer {token.get_secret_value()}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope.get("path") == METRICS_PATH and scope.get("method") in ("GET", "HEAD"):
            await self._serve(scope, send)
            return
        t0 = time.perf_counter()
        status = 500  # what the client sees if the app fails before starting a response

        async def observing_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observing_send)
        finally:
            route = getattr(scope.get("route"), "path", None) or UNMATCHED
            self.metrics.http_latency.labels(scope.get("method", ""), route, str(status)).observe(
                time.perf_counter() - t0)

    async def _serve(self, scope: Scope, send: Send) -> None:
        if self.expected is not None:
            given = dict(scope.get("headers") or ()).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                await send_json(send, 401, error_body(ErrorCode.unauthenticated, "/metrics needs 'Authorization: "
                                                      "Bearer <MIXOPT_METRICS_TOKEN>'"),
                                headers=[(b"www-authenticate", b"Bearer")])
                return
        body = await run_in_threadpool(self.metrics.render)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", CONTENT_TYPE_LATEST.encode()),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": b"" if scope.get("method") == "HEAD" else body})
