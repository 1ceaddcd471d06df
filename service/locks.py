"""Per-experiment mutual exclusion for work that reads pending runs and then adds to them.

Two suggestion requests on one experiment must not both compute from the same pending set, or they could
hand out the same point. PostgreSQL gets a session-level advisory lock (works across API processes and
workers). A SQLite file is shared by the API and the child processes that run its jobs, so it gets an
exclusive ``flock`` on a lock file beside the database; an in-memory database lives in one process, where
a thread lock suffices.
"""

from __future__ import annotations

import fcntl
import hashlib
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from service.db import without_answer_deadline

_local_locks: dict[str, threading.Lock] = {}
_local_guard = threading.Lock()


def _advisory_key(name: str) -> int:
    """A stable signed 64-bit key for ``pg_advisory_lock`` (crc32 of two halves, so collisions are rare)."""
    raw = name.encode()
    hi, lo = zlib.crc32(raw[: len(raw) // 2] + b"|" + raw), zlib.crc32(raw)
    key = (hi << 32) | lo
    return key - (1 << 64) if key >= (1 << 63) else key


def lock_file(engine: Engine, name: str) -> Path | None:
    """The file whose ``flock`` is the lock ``name`` on this SQLite file; None for an in-memory database.

    One file per lock name, in ``<database>.locks/`` (names hashed: they hold ids a file name may not).
    """
    database = engine.url.database
    if not database or database == ":memory:":
        return None
    return Path(f"{database}.locks") / f"{hashlib.sha256(name.encode()).hexdigest()[:32]}.lock"


@contextmanager
def experiment_lock(engine: Engine, experiment_id: str, purpose: str = "propose") -> Iterator[None]:
    name = f"{purpose}:{experiment_id}"
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            key = _advisory_key(name)
            with without_answer_deadline(conn):  # waits as long as the holder's model fit takes
                conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
            conn.commit()
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                conn.commit()
        return
    with _local_guard:
        lock = _local_locks.setdefault(name, threading.Lock())
    with lock, _file_lock(lock_file(engine, name)):
        yield


@contextmanager
def _file_lock(path: Path | None) -> Iterator[None]:
    """An exclusive ``flock`` on ``path`` (nothing for None); the kernel drops it if the holder dies."""
    if path is None:
        yield
        return
    path.parent.mkdir(exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def serialize(session: Session, name: str) -> None:
    """Make the rest of ``session``'s transaction exclusive for ``name``, until it commits or rolls back.

    For a read-then-write that a row lock cannot cover (counting rows before adding one). PostgreSQL takes
    a transaction-level advisory lock on ``name``; SQLite takes the database's write lock now instead of at
    the first write, which serializes every writer (SQLite has no finer lock).
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _advisory_key(name)})
    else:
        session.execute(text("UPDATE jobs SET attempts = attempts WHERE 0 = 1"))
