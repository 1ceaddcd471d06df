"""Keyset pagination, the one way every list of the store is paged.

A page token is the opaque text ``base64("pk:<last primary key served>")``; the next page is the rows with
a greater ``pk``, in ``pk`` order, so a page never repeats or skips a row that was there when the first
page was read, whatever is inserted meanwhile.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Protocol, TypeVar

from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute, Session

from service.errors import ErrorCode
from service.store.errors import InvalidRecord


class Keyed(Protocol):
    pk: int


R = TypeVar("R", bound=Keyed)


def encode_page_token(pk: int) -> str:
    return base64.urlsafe_b64encode(f"pk:{pk}".encode()).decode().rstrip("=")


def decode_page_token(token: str | None) -> int | None:
    """The primary key a token continues after; None for the first page. A token this store did not
    issue is refused (:class:`InvalidRecord`, code ``invalid_page_token``)."""
    if not token:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        pk = int(raw[3:]) if raw.startswith("pk:") else -1
        if not 0 <= pk < 2**31:  # primary keys are 32-bit integers on PostgreSQL
            raise ValueError(raw)
        return pk
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRecord("page_token is not one this service issued", field="page_token",
                            code=ErrorCode.invalid_page_token) from exc


def page(session: Session, stmt: Select[R], pk: InstrumentedAttribute[int], page_size: int,
         page_token: str | None, keep: Callable[[R], bool] | None = None) -> tuple[list[R], str | None]:
    """One page of ``stmt``'s rows after ``page_token``, and the token of the next page (None on the last).

    Without ``keep``, one row past the page says whether there is a next one. With it (a filter SQL cannot
    express, such as fidelity stored as JSON), rows stream in batches and rejected ones are skipped until
    the page is full.
    """
    after = decode_page_token(page_token)
    if after is not None:
        stmt = stmt.where(pk > after)
    stmt = stmt.order_by(pk)
    if keep is None:
        rows = list(session.scalars(stmt.limit(page_size + 1)))
        token = encode_page_token(rows[page_size - 1].pk) if len(rows) > page_size else None
        return rows[:page_size], token
    # A server-side cursor streaming thousands of rows costs more than the page itself when nothing is
    # filtered in Python, hence the two ways.
    out: list[R] = []
    for row in session.scalars(stmt.execution_options(yield_per=2000)):
        if not keep(row):
            continue
        if len(out) == page_size:
            return out, encode_page_token(out[-1].pk)
        out.append(row)
    return out, None
