"""The one way the store opens a transaction, and retries one that lost a race."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

T = TypeVar("T")


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session whose work commits on success and rolls back on any error."""
    with factory() as session, session.begin():
        yield session


def is_deadlock(exc: OperationalError) -> bool:
    """PostgreSQL chose this transaction as a deadlock victim (SQLSTATE 40P01): retrying it succeeds."""
    return getattr(exc.orig, "sqlstate", None) == "40P01"


def retry_races(exc: IntegrityError | OperationalError) -> bool:
    """A unique key taken by a concurrent writer, or a deadlock: the next attempt sees the winner's rows."""
    return isinstance(exc, IntegrityError) or is_deadlock(exc)


def only_integrity(exc: IntegrityError | OperationalError) -> bool:
    return isinstance(exc, IntegrityError)


def with_retries(factory: sessionmaker[Session], work: Callable[[Session, int], T], attempts: int = 3,
                 retry: Callable[[IntegrityError | OperationalError], bool] = only_integrity) -> T:
    """``work(session, attempt)`` in a transaction, run again (attempt 1, 2, ...) while it fails with an
    error ``retry`` accepts; the last attempt's error is raised."""
    for attempt in range(attempts):
        try:
            with transaction(factory) as s:
                return work(s, attempt)
        except (IntegrityError, OperationalError) as exc:
            if attempt == attempts - 1 or not retry(exc):
                raise
    raise AssertionError("attempts must be at least 1")
