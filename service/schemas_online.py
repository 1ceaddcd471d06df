"""Request and response bodies of the online-mixing endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from service.schemas import MAX_WEIGHT, ClientKey, Finite, Metric, Strict, within

OnlineMethod = Literal["doremi", "aioli", "stratified", "static"]


class OnlineSessionCreate(Strict):
    method: OnlineMethod
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    initial_weights: dict[str, Annotated[Finite, within(0, MAX_WEIGHT)]] | None = Field(
        default=None, description="domain -> weight (rescaled to sum to 1)")
    reference_losses: dict[str, Metric] | None = Field(default=None, description="DoReMi: reference model's "
                                                                                "per-domain losses")
    client_session_id: ClientKey | None = Field(
        default=None, description="idempotency key: a repeat returns the existing session")


class ObservationIn(Strict):
    step: Annotated[int, Field(ge=0, lt=2**31)]  # the database column is a 32-bit integer
    losses: dict[str, Metric]
    split: Literal["train", "validation"] = "train"


class ProbeOut(BaseModel):
    domain: str
    steps: int
    weights: dict[str, float]
    index: int
    count: int


class DirectiveOut(BaseModel):
    weights: dict[str, float]
    mixture: dict[str, float]
    phase: str
    train_steps: int
    next_observation_step: int | None
    probe: ProbeOut | None


class TrajectoryPoint(BaseModel):
    step: int
    split: str
    losses: dict[str, float]
    weights: dict[str, float]
    mixture: dict[str, float]
    phase: str


class OnlineSessionOut(BaseModel):
    id: str
    experiment_id: str
    method: str
    domains: list[str]
    hyperparameters: dict[str, Any]
    last_step: int | None
    directive: DirectiveOut
    created_at: datetime
    updated_at: datetime


class OnlineSessionDetail(OnlineSessionOut):
    trajectory: list[TrajectoryPoint]


class OnlineSessionList(BaseModel):
    sessions: list[OnlineSessionOut]
    next_page_token: str | None = None


class ObservationOut(BaseModel):
    session_id: str
    step: int
    directive: DirectiveOut
