"""Jobs and health endpoints."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from service.api.deps import Project, State
from service.api.presenters import job_out
from service.api.request_body import CheckedRoute
from service.schemas import JobOut

router = APIRouter(tags=["system"], route_class=CheckedRoute)


@router.get("/v1/jobs/{job_id}", response_model=JobOut)
def get_job(job_id: str, st: State, project: Project) -> JobOut:
    """A background job's state (`queued`, `running`, `succeeded`, `failed`), progress in [0, 1], and its
    result or error.
    """
    return job_out(st.store.get_job(job_id, project))


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness: the process answers. Async and touching nothing, so neither a database that stopped
    answering nor a request thread pool full of requests waiting on it can delay the answer."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(st: State) -> JSONResponse:
    """Readiness: the database answers and its schema is migrated; 503 when it does not answer in time."""
    ready, details = await st.readiness.check()
    if not ready:
        return JSONResponse({"status": "unavailable", **details}, status_code=503)
    return JSONResponse({"status": "ready", **details})
