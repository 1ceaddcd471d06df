"""Reports written the fast way: one round trip for the common ``POST /runs``, COPY for ``/runs:batch``.

Through the ORM one report cost BEGIN, an experiment read, a run lookup, the write, the ``data_version``
UPDATE and COMMIT — six round trips — and most of a millisecond of statement building. The two common
reports get one conditional statement each instead:

* a new run (a fresh ``client_run_id``, or none): an INSERT conditional on the experiment (this
  project's, active) and on the ``client_run_id`` being new;
* a result for a suggested or running run, naming it by ``id`` and nothing else to check (no mixture,
  fidelity or client_run_id): an UPDATE conditional on the run still being pending.

On PostgreSQL the version bump rides in the same statement, run in autocommit, so a write and its bump
commit together or not at all. Anything else writes nothing — a retry, a run already final, an archived or
unknown experiment — and the caller falls back to the general path, which tells those cases apart and
answers them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Boolean, Engine, Integer, Row, TextClause, bindparam, insert, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from service.store.models import PENDING_STATES, ExperimentState, JsonType, Run, UTCDateTime

#: SQL literals of the states the statements test.
_ACTIVE = f"'{ExperimentState.active.value}'"
_PENDING = ", ".join(f"'{state.value}'" for state in PENDING_STATES)

_INSERT_NEW = f"""
    INSERT INTO runs (id, experiment_id, mixture, fidelity, state, metrics, cost, method, client_run_id, error,
                      created_at, updated_at, heartbeat_at, completed_at)
    SELECT :id, e.id, :mixture, :fidelity, :state, :metrics, :cost, 'external', :client_run_id, :error,
           :now, :now, :now, :completed_at
    FROM experiments e WHERE e.id = :experiment_id AND e.project = :project AND e.state = {_ACTIVE}
    ON CONFLICT (experiment_id, client_run_id) DO NOTHING
    RETURNING pk"""

#: Every column of a run, as the ORM would load it, with the types that decode them (from the model, so
#: a column added there is returned here too).
_RUN_COLUMNS: dict[str, Any] = {c.name: c.type for c in Run.__table__.columns}

#: What ``reports._advance`` does to a pending run, as SQL. ``{merge}`` adds the reported metrics to the
#: stored ones (reported keys win), in the dialect's JSON.
_ADVANCE_PENDING = f"""
    UPDATE runs SET state = :state, metrics = {{merge}}, cost = COALESCE(:cost, cost),
        error = COALESCE(:error, error), heartbeat_at = :now, updated_at = :now,
        completed_at = CASE WHEN :final THEN :now ELSE completed_at END
    WHERE id = :run_id AND experiment_id = :experiment_id AND state IN ({_PENDING})
      AND EXISTS (SELECT 1 FROM experiments e
                  WHERE e.id = :experiment_id AND e.project = :project AND e.state = {_ACTIVE})
    RETURNING {", ".join(_RUN_COLUMNS)}"""
_MERGE = {"postgresql": "metrics || :metrics", "sqlite": "json_patch(metrics, :metrics)"}

_BUMP = "UPDATE experiments SET data_version = data_version + 1, updated_at = :now WHERE id = :experiment_id"

#: Parameters that need a type's bind processing (JSON encoding, UTC tagging) on the way in.
_TYPES: dict[str, Any] = {"mixture": JsonType, "fidelity": JsonType, "metrics": JsonType,
                          "now": UTCDateTime(), "completed_at": UTCDateTime(), "final": Boolean()}


def _typed(sql: str, returns: dict[str, Any]) -> TextClause:
    clause = text(sql).bindparams(*(bindparam(name, type_=t) for name, t in _TYPES.items() if f":{name}" in sql))
    return clause.columns(**returns)  # type: ignore[return-value]


class _WriteWithBump:
    """One DML statement whose RETURNING row, if there is one, bumps the experiment's data version in the
    same commit.

    PostgreSQL: a single statement in autocommit. A data-modifying CTE runs exactly once whether or not the
    outer query reads it, and the bump sees the write's RETURNING rows, so it fires only with a write.
    Elsewhere (SQLite: no DML in CTEs, and no network round trips to save): two statements, one transaction.
    """

    def __init__(self, engine: Engine, dml: str, returns: dict[str, Any]) -> None:
        self._single = engine.dialect.name == "postgresql"
        self._engine: Engine
        if self._single:
            self._engine = engine.execution_options(isolation_level="AUTOCOMMIT")
            self._statement = _typed(f"WITH w AS ({dml}\n), bump AS (\n    {_BUMP} AND EXISTS (SELECT 1 FROM w)\n)\n"
                                     "SELECT * FROM w", returns)
        else:
            self._engine = engine
            self._statement = _typed(dml, returns)
            self._bump = _typed(_BUMP, {})

    def __call__(self, params: dict[str, Any]) -> Row[Any] | None:
        if self._single:
            with self._engine.connect() as conn:
                row = conn.execute(self._statement, params).first()
                conn.commit()
            return row
        with self._engine.begin() as conn:
            row = conn.execute(self._statement, params).first()
            if row is not None:
                conn.execute(self._bump, {"experiment_id": params["experiment_id"], "now": params["now"]})
        return row


class NewRunInsert:
    """Inserts one new run and bumps its experiment's data version, or does nothing and says so."""

    def __init__(self, engine: Engine) -> None:
        self._write = _WriteWithBump(engine, _INSERT_NEW, {"pk": Integer()})

    def __call__(self, row: dict[str, Any], project: str, now: datetime) -> int | None:
        """The new run's pk, or None when nothing was written (the general path must decide)."""
        written = self._write({**row, "project": project, "now": now})
        return None if written is None else int(written.pk)


class PendingRunAdvance:
    """Applies a report to a suggested or running run named by id, or does nothing and says so."""

    def __init__(self, engine: Engine) -> None:
        self._write = _WriteWithBump(engine, _ADVANCE_PENDING.format(merge=_MERGE[engine.dialect.name]),
                                     _RUN_COLUMNS)

    def __call__(self, experiment_id: str, project: str, run_id: str, state: str, final: bool,
                 metrics: dict[str, float], cost: float | None, error: str | None, now: datetime) -> Run | None:
        """The run as stored after the report (detached), or None when nothing was written."""
        written = self._write({"experiment_id": experiment_id, "project": project, "run_id": run_id,
                               "state": state, "final": final, "metrics": metrics, "cost": cost, "error": error,
                               "now": now})
        return None if written is None else Run(**written._asdict())


#: The columns of a reported run, in COPY order, with their PostgreSQL types.
_COPY_COLUMNS = (
    ("id", "varchar"), ("experiment_id", "varchar"), ("mixture", "jsonb"), ("fidelity", "jsonb"),
    ("state", "varchar"), ("metrics", "jsonb"), ("cost", "float8"), ("method", "varchar"),
    ("prediction", "jsonb"), ("client_run_id", "varchar"), ("proposal_id", "varchar"), ("error", "text"),
    ("created_at", "timestamptz"), ("updated_at", "timestamptz"), ("heartbeat_at", "timestamptz"),
    ("completed_at", "timestamptz"),
)
#: INSERT statements with ``ON CONFLICT``, per dialect.
#: The dialects' INSERT constructs (both have ``on_conflict_do_nothing``; the generic one does not).
_DIALECT_INSERT: dict[str, Callable[[Any], postgresql.Insert | sqlite.Insert]] = {
    "postgresql": postgresql.insert, "sqlite": sqlite.insert}
_COPY = f"COPY runs ({', '.join(c for c, _ in _COPY_COLUMNS)}) FROM STDIN"


def insert_runs(session: Session, rows: list[dict[str, Any]], skip_taken: bool = False) -> set[str]:
    """Many new runs inside ``session``'s transaction; returns the client_run_ids of rows not written.

    By default through COPY on PostgreSQL: a 10,000-run batch is one stream instead of 10,000 pipelined
    INSERTs with SQLAlchemy's JSON processing for each row. A row whose client_run_id is already taken (a
    concurrent report of it committed first) fails the whole statement, as an ``IntegrityError`` like an
    INSERT's, and nothing is skipped.

    With ``skip_taken`` (a retry after such a failure) such rows are skipped instead, with ``INSERT .. ON
    CONFLICT DO NOTHING``, which waits for a concurrent writer of the same id to finish rather than failing;
    their client_run_ids are returned so the caller can apply them to the runs that hold those ids.
    """
    conn = session.connection()
    if skip_taken:
        stmt = (_DIALECT_INSERT[conn.dialect.name](Run)
                .on_conflict_do_nothing(index_elements=["experiment_id", "client_run_id"])
                .returning(Run.client_run_id))
        written = set(conn.execute(stmt, rows).scalars())
        return {r["client_run_id"] for r in rows if r["client_run_id"] is not None} - written
    if conn.dialect.name != "postgresql":
        conn.execute(insert(Run), rows)
        return set()
    driver = conn.connection.driver_connection
    assert driver is not None
    # JSON columns go as text that the server parses, encoded by orjson: json.dumps spends ~7 us on a
    # 17-float mixture, orjson 0.4 us. Reported values are validated finite, so orjson's NaN-to-null
    # never applies.
    encode = [(c, t == "jsonb") for c, t in _COPY_COLUMNS]
    dbapi_error = conn.dialect.loaded_dbapi.Error
    try:
        with driver.cursor() as cur, cur.copy(_COPY) as copy:
            copy.set_types(["text" if t == "jsonb" else t for _, t in _COPY_COLUMNS])
            for row in rows:
                copy.write_row([orjson.dumps(row[c]).decode() if is_json and row[c] is not None else row[c]
                                for c, is_json in encode])
    except dbapi_error as exc:
        # The driver's own exception, raised outside SQLAlchemy: wrapped as SQLAlchemy wraps a statement's
        # (IntegrityError, OperationalError, ...), so callers and the error handlers see one kind.
        raise DBAPIError.instance(_COPY, None, exc, dbapi_error, dialect=conn.dialect) from exc
    return set()
