"""Persisted online-mixing sessions: the store side of DoReMi/Aioli over the API.

Each observation is applied under a lock on its session and stored with the directive it produced, so a
restarted trainer resumes where it was, and a retried post of the same step returns the same answer.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Protocol

import numpy as np
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mixing import online
from mixing.online import OnlineInputError
from service.errors import ErrorCode
from service.locks import experiment_lock
from service.spec import parse_spec, spec_of
from service.store import Store
from service.store.errors import InvalidRecord, RecordConflict, RecordNotFound
from service.store.models import Experiment, OnlineObservation, OnlineSession, new_id, utcnow
from service.store.paging import page
from service.store.session import transaction


class SessionRequest(Protocol):
    """A new session: the method, its settings, and optionally starting weights and reference losses by
    domain; ``client_session_id`` makes a repeat return the existing session."""

    @property
    def method(self) -> str: ...
    @property
    def hyperparameters(self) -> dict[str, Any]: ...
    @property
    def initial_weights(self) -> Mapping[str, float] | None: ...
    @property
    def reference_losses(self) -> Mapping[str, float] | None: ...
    @property
    def client_session_id(self) -> str | None: ...


class Observation(Protocol):
    """One step's losses by domain, of the ``train`` or ``validation`` split."""

    @property
    def step(self) -> int: ...
    @property
    def losses(self) -> Mapping[str, float]: ...
    @property
    def split(self) -> str: ...


def _domains(exp: Experiment) -> list[str]:
    return spec_of(exp).domain_names


def _vector(domains: list[str], values: Mapping[str, float], field: str) -> np.ndarray:
    unknown = sorted(set(values) - set(domains))
    if unknown:
        raise InvalidRecord(f"unknown domain {unknown[0]!r}; the session's domains are {domains[:20]}",
                           field=f"{field}.{unknown[0]}", code=ErrorCode.domain_mismatch)
    missing = [d for d in domains if d not in values]
    if missing:
        raise InvalidRecord(f"missing value for domain {missing[0]!r}", field=f"{field}.{missing[0]}",
                           code=ErrorCode.domain_mismatch)
    return np.array([values[d] for d in domains], dtype=np.float64)


_ERROR_CODES: dict[type[OnlineInputError], ErrorCode] = {
    online.StepOrderError: ErrorCode.step_not_increasing,
    online.DomainMismatchError: ErrorCode.domain_mismatch,
    online.NonFiniteValueError: ErrorCode.non_finite,
    online.HyperparameterError: ErrorCode.invalid_hyperparameter,
    online.InvalidWeightsError: ErrorCode.invalid_weights,
    online.UnknownMethodError: ErrorCode.unknown_method,
}


def _input_error(exc: OnlineInputError) -> InvalidRecord:
    return InvalidRecord(str(exc), field=exc.field, code=_ERROR_CODES.get(type(exc), ErrorCode.invalid_input))


class OnlineSessions:
    def __init__(self, store: Store) -> None:
        self.store = store

    def create(self, experiment_id: str, body: SessionRequest, project: str) -> tuple[OnlineSession, bool]:
        exp = self.store.get_experiment(experiment_id, project)
        if body.client_session_id:
            found = self._by_client_id(exp.id, body.client_session_id)
            if found is not None:
                return found, False
        domains = _domains(exp)
        weights = _vector(domains, body.initial_weights, "initial_weights") if body.initial_weights else None
        if weights is not None and abs(weights.sum() - 1.0) > 1e-6:
            raise InvalidRecord(f"initial weights sum to {weights.sum():.9g}, not 1", field="initial_weights",
                               code=ErrorCode.invalid_mixture)
        reference = _vector(domains, body.reference_losses, "reference_losses") if body.reference_losses else None
        try:
            state, _ = online.start(body.method, len(domains), body.hyperparameters, weights, reference)
        except OnlineInputError as exc:
            raise _input_error(exc) from exc
        session = OnlineSession(id=new_id("ses"), experiment_id=exp.id, client_session_id=body.client_session_id,
                                method=body.method, hyperparameters=state["hyperparameters"], state=state)
        try:
            with transaction(self.store.factory) as s:
                s.add(session)
        except IntegrityError:
            found = self._by_client_id(exp.id, body.client_session_id or "")
            if found is None:
                raise
            return found, False
        return session, True

    def _by_client_id(self, exp_id: str, client_id: str) -> OnlineSession | None:
        with self.store.factory() as s:
            return s.scalar(select(OnlineSession).where(OnlineSession.experiment_id == exp_id,
                                                        OnlineSession.client_session_id == client_id))

    def get(self, experiment_id: str, session_id: str, project: str) -> tuple[Experiment, OnlineSession]:
        exp = self.store.get_experiment(experiment_id, project)
        with self.store.factory() as s:
            ses = s.scalar(select(OnlineSession).where(OnlineSession.id == session_id,
                                                       OnlineSession.experiment_id == exp.id))
        if ses is None:
            raise RecordNotFound(f"online session {session_id!r} not found", field="session_id")
        return exp, ses

    def list(self, experiment_id: str, project: str, page_size: int, page_token: str | None
             ) -> tuple[Experiment, list[OnlineSession], str | None]:
        exp = self.store.get_experiment(experiment_id, project)
        with self.store.factory() as s:
            rows, token = page(s, select(OnlineSession).where(OnlineSession.experiment_id == exp.id),
                               OnlineSession.pk, page_size, page_token)
        return exp, rows, token

    def trajectory(self, session_id: str) -> builtins.list[OnlineObservation]:
        with self.store.factory() as s:
            return list(s.scalars(select(OnlineObservation).where(OnlineObservation.session_id == session_id)
                                  .order_by(OnlineObservation.step)))

    def observe(self, experiment_id: str, session_id: str, body: Observation, project: str
                ) -> tuple[builtins.list[str], dict[str, Any]]:
        """Apply one observation; returns (session domains, directive). One locked transaction, hot path."""
        with self._locked(session_id) as s:
            row = s.execute(
                select(OnlineSession, Experiment.spec)
                .join(Experiment, Experiment.id == OnlineSession.experiment_id)
                .where(OnlineSession.id == session_id, Experiment.id == experiment_id, Experiment.project == project)
                .with_for_update(of=OnlineSession)
            ).first()
            if row is None:
                self.store.get_experiment(experiment_id, project)
                raise RecordNotFound(f"online session {session_id!r} not found", field="session_id")
            ses, spec = row
            domains = parse_spec(spec).domain_names
            losses = _vector(domains, body.losses, "losses")
            if ses.last_step is not None and body.step <= ses.last_step:
                repeat = s.scalar(select(OnlineObservation).where(OnlineObservation.session_id == session_id,
                                                                  OnlineObservation.step == body.step))
                if repeat is not None:
                    if not np.array_equal(repeat.losses, losses) or repeat.split != body.split:
                        raise RecordConflict(f"step {body.step} was already reported with other losses", field="step",
                                       code=ErrorCode.step_conflict)
                    return domains, repeat.directive
            try:
                state, directive = online.observe(ses.state, body.step, losses)
            except OnlineInputError as exc:
                raise _input_error(exc) from exc
            out = directive.to_dict()
            s.add(OnlineObservation(session_id=session_id, step=body.step, split=body.split,
                                    losses=losses.tolist(), directive=out))
            ses.state = state
            ses.last_step = body.step
            ses.updated_at = utcnow()
        return domains, out

    @contextmanager
    def _locked(self, session_id: str) -> Iterator[Session]:
        """Row lock on PostgreSQL; SQLite (one process) also needs a process lock to serialise read-then-write."""
        if self.store.engine.dialect.name == "sqlite":
            with experiment_lock(self.store.engine, session_id, "online"), transaction(self.store.factory) as s:
                yield s
        else:
            with transaction(self.store.factory) as s:
                yield s


def current_directive(ses: OnlineSession) -> dict[str, Any]:
    return online.directive(ses.state).to_dict()
