"""The dashboard: three HTML pages, their static scripts, and a few presentational JSON endpoints.

Pages are thin shells; their scripts read the public ``/v1`` API. The ``/dashboard/api`` endpoints only
reshape stored data for drawing (downsampled curves, table summaries, a CSV rendering of the runs list),
never compute a model and never change state, so opening a dashboard costs the service a few queries.
"""

from __future__ import annotations

import csv
import html
import io
import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from pathlib import Path
from string import Template
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, StreamingResponse

from service.api.dashboard.overview import build_overview, utc
from service.api.dashboard.progress import MAX_POINTS
from service.api.dashboard.schemas import Overview, Summary, SummaryList
from service.api.deps import Project, State
from service.api.presenters import RunPresenter
from service.api.request_body import CheckedRoute
from service.api.routers.runs import fidelity_filter
from service.errors import InvalidInput, NotFound
from service.schemas import RunStateName
from service.spec import spec_of
from service.store.errors import RecordNotFound
from service.store.models import Experiment, Run

router = APIRouter(prefix="/dashboard", include_in_schema=False, route_class=CheckedRoute)

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
PAGE = Template((HERE / "templates" / "page.html").read_text(encoding="utf-8"))
#: Served by name only: a fixed set read at import, so no request path ever reaches the file system.
STATIC_FILES = {p.name: p for p in STATIC.iterdir() if p.is_file()}
MEDIA_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml", ".txt": "text/plain"}
#: Everything the pages load comes from this origin; a stray CDN reference would fail loudly.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
MAX_SUMMARIES = 100


# ------------------------------------------------------------------------------------------------ pages
def _page(request: Request, page: str, title: str, experiment_id: str = "") -> HTMLResponse:
    root = request.scope.get("root_path", "").rstrip("/")
    body = PAGE.substitute(page=page, title=html.escape(title), experiment_id=html.escape(experiment_id),
                           root=html.escape(root))
    return HTMLResponse(body, headers={"content-security-policy": CSP, "cache-control": "no-cache"})


@router.get("", response_class=HTMLResponse)
def experiments_page(request: Request) -> HTMLResponse:
    return _page(request, "experiments", "Experiments")


@router.get("/experiments/{experiment_id}", response_class=HTMLResponse)
def experiment_page(request: Request, experiment_id: str) -> HTMLResponse:
    return _page(request, "experiment", "Experiment", experiment_id)


@router.get("/compare", response_class=HTMLResponse)
def compare_page(request: Request) -> HTMLResponse:
    return _page(request, "compare", "Compare mixtures")


@router.get("/static/{name}")
def static_file(name: str) -> FileResponse:
    path = STATIC_FILES.get(name)
    if path is None:
        raise NotFound(f"no dashboard file {name!r}", field="name")
    return FileResponse(path, media_type=MEDIA_TYPES.get(path.suffix, "application/octet-stream"),
                        headers={"cache-control": "no-cache"})


# ------------------------------------------------------------------------------------ presentational API
@router.get("/api/summaries", response_model=SummaryList)
def summaries(st: State, project: Project, id: Annotated[list[str], Query()]) -> SummaryList:  # noqa: A002
    """Best observed and latest recommended objective per experiment, for the experiments table."""
    if len(id) > MAX_SUMMARIES:
        raise InvalidInput(f"at most {MAX_SUMMARIES} ids per request", field="id")
    out: dict[str, Summary] = {}
    for exp_id in dict.fromkeys(id):
        try:
            exp = st.store.get_experiment(exp_id, project)
        except RecordNotFound:
            continue  # the table asked for a row that no longer exists in this project: nothing to show
        out[exp_id] = build_overview(st, exp, MAX_POINTS).summary
    return SummaryList(summaries=out)


@router.get("/api/experiments/{experiment_id}/overview", response_model=Overview)
def overview(experiment_id: str, st: State, project: Project,
             max_points: Annotated[int, Query(ge=2, le=5000)] = MAX_POINTS) -> Overview:
    """The summary plus best-so-far curves per fidelity against cumulative cost, thinned server-side."""
    return build_overview(st, st.store.get_experiment(experiment_id, project), max_points)


@router.get("/api/experiments/{experiment_id}/runs.csv")
def runs_csv(experiment_id: str, st: State, project: Project,
             state: Annotated[list[RunStateName] | None, Query()] = None,
             fidelity: Annotated[list[str] | None, Query(description="axis=value, repeatable")] = None,
             ) -> StreamingResponse:
    """The runs list, with the same filters as ``GET /v1/experiments/{id}/runs``, as one CSV file.

    Streamed a page of runs at a time, so memory stays at one page whatever the number of runs. The
    experiment and the filters are checked before the first byte, so a bad request still gets its 4xx.
    """
    exp = st.store.get_experiment(experiment_id, project)
    fid = fidelity_filter(exp, fidelity)
    states = state or ()

    def pages() -> Iterator[list[Run]]:
        token: str | None = None
        while True:
            runs, token = st.store.list_runs(exp, st.settings.max_page_size, token, states, fid)
            yield runs
            if not token:
                return

    filename = re.sub(r"[^A-Za-z0-9._-]+", "_", exp.name) + "-runs.csv"
    return StreamingResponse(csv_lines(exp, pages), media_type="text/csv; charset=utf-8",
                             headers={"content-disposition": f'attachment; filename="{filename}"'})


def csv_lines(exp: Experiment, pages: Callable[[], Iterable[list[Run]]]) -> Iterator[str]:
    """The header, then one chunk of rows per page of runs: one row per run.

    ``pages`` is read twice, a page at a time: once to count the runs reporting each metric, then for
    the rows. The objective's metrics, and every metric that at least half of the runs reported, have a
    column each; the others a run reported go into its ``other_metrics`` cell as one JSON object
    (``{"name": value}``, keys sorted). So the empty cells are at most twice the values reported and
    the file stays linear in the data however many distinct metric names the runs use (a column for
    every name made each row as wide as all runs' names together).
    """
    present = RunPresenter(spec_of(exp))
    reported: Counter[str] = Counter()
    n_runs = 0
    for page in pages():
        n_runs += len(page)
        for run in page:
            reported.update((run.metrics or {}).keys())
    objective = set(present.metrics)
    metrics = [*present.metrics, *sorted(m for m, k in reported.items() if m not in objective and 2 * k >= n_runs)]
    columns = set(metrics)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["id", "state", "method", *(f"fidelity.{a}" for a in present.axes),
                *(f"mixture.{d}" for d in present.domains), "objective",
                *(f"metric.{m}" for m in metrics), "other_metrics",
                "cost", "predicted", "predicted_lower", "predicted_upper", "client_run_id", "created_at",
                "completed_at", "error"])
    yield _drain(buf)
    for page in pages():
        for run in page:
            r = present.run(run)
            pred = r.predicted
            other = {m: v for m, v in sorted(r.metrics.items()) if m not in columns}
            w.writerow([r.id, r.state, r.method, *(r.fidelity.get(a) for a in present.axes),
                        *(r.mixture.get(d) for d in present.domains), r.objective,
                        *(r.metrics.get(m) for m in metrics),
                        json.dumps(other, separators=(",", ":"), ensure_ascii=False) if other else None,
                        r.cost, pred.value if pred else None, pred.lower if pred else None,
                        pred.upper if pred else None, r.client_run_id, _iso(r.created_at),
                        _iso(r.completed_at), r.error])
        yield _drain(buf)


def _drain(buf: io.StringIO) -> str:
    text = buf.getvalue()
    buf.seek(0)
    buf.truncate()
    return text


def _iso(t: datetime | None) -> str | None:
    return None if t is None else utc(t).isoformat()
