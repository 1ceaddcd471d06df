"""Per-experiment mutual exclusion for work that reads pending runs and then adds to them.

Two suggestion requests on one experiment must not both compute from the same pending set, or they could
hand out the same point. PostgreSQL gets a session-level advisory lock (works across API processes and
workers); SQLite deployments are single-process, so a process-local lock per experiment suffices.
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, text

from service.db import without_answer_deadline

_local_locks: dict[str, threading.Lock] = {}
_local_guard = threading.Lock()


def _advisory_key(name: str) -> int:
    """A stable signed 64-bit key for ``pg_advisory_lock`` (crc32 of two halves, so collisions are rare)."""
    raw = name.encode()
    hi, lo = zlib.crc32(raw[: len(raw) // 2] + b"|" + raw), zlib.crc32(raw)
    key = (hi << 32) | lo
    return key - (1 << 64) if key >= (1 << 63) else key


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
    with lock:
        yield
