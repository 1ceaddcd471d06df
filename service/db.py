"""Engine and session factory, with the per-dialect settings that make SQLite safe for a web service and
the timeouts that keep a PostgreSQL server that stops answering from hanging the requests waiting on it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.errors import _WaitTimeout
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker

from service.settings import Settings, get_settings


@dataclass(frozen=True)
class DbTimeouts:
    """How long a request waits on PostgreSQL before it answers 503 ``database_unavailable``."""

    #: Opening a connection (PostgreSQL's ``connect_timeout``: whole seconds, at least 2).
    connect_s: int
    #: The server's answer to one exchange (a statement, its rows, a COPY block, a commit).
    statement_s: float
    #: A free connection from the pool, when every one is in use.
    pool_s: float

    @classmethod
    def of(cls, settings: Settings) -> DbTimeouts:
        return cls(settings.db_connect_timeout_s, settings.db_statement_timeout_s, settings.db_pool_timeout_s)


class _AnsweringConnection(psycopg.Connection[Any]):
    """A psycopg connection that gives up on a server that does not answer within ``answer_within_s``.

    Every exchange with the server goes through :meth:`wait`. A server that accepted the connection but
    stopped answering (stopped, overloaded, or behind a network that swallows packets without resetting
    the connection) would otherwise hold the waiting thread for minutes, until TCP gives up. Past the
    limit the connection is closed, so SQLAlchemy takes the error for a disconnect and drops it from the
    pool, and the API answers 503.
    """

    answer_within_s: float | None = None

    def wait(self, gen: Any, interval: float = 0.1, timeout: float | None = None) -> Any:
        limit = self.answer_within_s if timeout is None else timeout
        try:
            return super().wait(gen, interval=interval, timeout=limit)
        except _WaitTimeout as exc:
            if timeout is not None:
                raise
            self.close()
            raise psycopg.OperationalError(f"the database did not answer within {limit:g} s") from exc


@contextmanager
def without_answer_deadline(conn: Connection) -> Iterator[None]:
    """Lift the answer deadline of ``conn``'s connection for statements that wait on purpose, such as
    ``pg_advisory_lock`` behind another request's model fit."""
    driver = conn.connection.driver_connection
    if not isinstance(driver, _AnsweringConnection):
        yield
        return
    saved, driver.answer_within_s = driver.answer_within_s, None
    try:
        yield
    finally:
        driver.answer_within_s = saved


def make_engine(url: str, pool_size: int = 10, timeouts: DbTimeouts | None = None) -> Engine:
    """An engine for ``url``; SQLite gets WAL, a busy timeout and enforced foreign keys.

    ``pool_size`` is the number of PostgreSQL connections kept (``MIXOPT_DB_POOL_SIZE`` for the API);
    ``timeouts`` (PostgreSQL's; default: the ``MIXOPT_DB_*_TIMEOUT_S`` settings) bound every wait on the
    server. A SQLite file cannot stop answering: its requests wait only for each other, as long as that takes.
    """
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    limits = timeouts or DbTimeouts.of(get_settings())
    # Multi-row INSERTs of 5,000 rows: a 10,000-run batch import is two statements instead of ten.
    engine = create_engine(url, pool_pre_ping=True, pool_size=pool_size, max_overflow=10,
                           pool_timeout=limits.pool_s, insertmanyvalues_page_size=5000,
                           connect_args={"connect_timeout": limits.connect_s})

    @event.listens_for(engine, "do_connect")
    def _answering(_dialect: Any, _record: Any, cargs: Any, cparams: Any) -> _AnsweringConnection:
        conn = _AnsweringConnection.connect(*cargs, **cparams)
        conn.answer_within_s = limits.statement_s
        return conn

    return engine


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


class ReadinessProbe:
    """Whether the database answers and its schema is migrated, within ``deadline_s`` whatever happens.

    The check runs on a thread of its own, never the request thread pool, which requests stuck on a
    database that stopped answering can fill. One check runs at a time; probes arriving meanwhile share
    it, so a long outage never piles up checks. Past the deadline the answer is "not ready".
    """

    def __init__(self, engine: Engine, deadline_s: float) -> None:
        self._engine = engine
        self._deadline_s = deadline_s
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="readiness")
        self._running: Future[str | None] | None = None

    def _schema_version(self) -> str | None:
        with self._engine.connect() as conn:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()

    async def check(self) -> tuple[bool, dict[str, str | None]]:
        """``(ready, details)``: ``{"database": dialect, "schema": version}``, or ``{"database": reason}``."""
        if self._running is None or self._running.done():
            self._running = self._executor.submit(self._schema_version)
        try:
            version = await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(self._running)),
                                             self._deadline_s)
        except TimeoutError:
            return False, {"database": f"no answer within {self._deadline_s:g} s"}
        except Exception as exc:  # any failure here means "not ready", reported, never raised
            return False, {"database": type(exc).__name__}
        return True, {"database": self._engine.dialect.name, "schema": version}

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
