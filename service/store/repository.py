"""What every aggregate of the store shares: the engine and the session factory it works through."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from sqlalchemy import ARRAY, ColumnElement, Engine, String, any_, bindparam
from sqlalchemy.orm import Session, sessionmaker


class Repository:
    """Base of the per-aggregate classes that :class:`service.store.Store` combines."""

    def __init__(self, engine: Engine, factory: sessionmaker[Session]) -> None:
        self.engine = engine
        self.factory = factory


T = TypeVar("T")


def chunks(items: Sequence[T], size: int) -> Iterable[Sequence[T]]:
    """``items`` in slices of at most ``size``: SQLite builds before 3.32 take 999 parameters."""
    for i in range(0, len(items), size):
        yield items[i : i + size]


def any_of(s: Session, column: Any, values: Sequence[str]) -> Iterable[ColumnElement[bool]]:
    """Conditions that together match ``column`` against every value, one query each.

    PostgreSQL gets one array parameter (``= ANY(:values)``): rendering and converting a 10,000-item
    ``IN`` list cost more than running the query. SQLite builds before 3.32 take 999 parameters, so it
    gets ``IN`` lists of 900.
    """
    if s.get_bind().dialect.name == "postgresql":
        if values:
            yield column == any_(bindparam("values", list(values), type_=ARRAY(String)))
        return
    for chunk in chunks(values, 900):
        yield column.in_(chunk)
