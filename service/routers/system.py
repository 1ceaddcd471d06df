"""Jobs and health endpoints."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from sqlalchemy import text

from service.auth import get_project
from service.presenters import job_out
from service.schemas import JobOut
from service.state import AppState, get_state

router = APIRouter(tags=["system"])
State = Annotated[AppState, Depends(get_state)]
Project = Annotated[str, Depends(get_project)]


@router.get("/v1/jobs/{job_id}", response_model=JobOut)
def get_job(job_id: str, st: State, project: Project) -> JobOut:
    """A background job's state (`queued`, `running`, `succeeded`, `failed`), progress in [0, 1], and its
    result or error.
    """
    return job_out(st.store.get_job(job_id, project))


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(st: State) -> JSONResponse:
    """Readiness: the database answers and its schema is migrated."""
    try:
        with st.store.engine.connect() as conn:
            version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except Exception as exc:  # any failure here means "not ready", reported, never raised
        return JSONResponse({"status": "unavailable", "database": type(exc).__name__}, status_code=503)
    return JSONResponse({"status": "ready", "database": st.store.engine.dialect.name, "schema": version})
