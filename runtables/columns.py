"""Column conventions of the run tables users bring as CSV (``mixopt import``, ``mixopt laws``, replay)."""

from __future__ import annotations

from collections.abc import Collection, Iterable


class TableError(ValueError):
    """A table lacks the columns a command needs; the message names what is missing and what is there."""


def mixture_columns(columns: Iterable[str], prefix: str, exclude: Collection[str] = ()) -> dict[str, str]:
    """The mixture-weight columns, in table order, each mapped to its domain name: the column without the
    shared ``prefix`` (``{"train_the_pile_github": "github", ...}`` for ``prefix="train_the_pile_"``).

    Columns in ``exclude`` (an id column) and columns not starting with ``prefix`` are not mixture columns.
    """
    columns = [c for c in columns if c not in exclude]
    found = {c: c.removeprefix(prefix) for c in columns if c.startswith(prefix) and c != prefix}
    if not found:
        raise TableError(f"no mixture column starts with {prefix!r}; the columns are {', '.join(columns)}")
    return found
