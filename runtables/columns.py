"""Column conventions of the run tables users bring as CSV (``mixopt import``, ``mixopt laws``, replay).

Gaps: a blank cell of a metric column is a metric that run did not report, never a value. The run counts
for the metrics it has; whatever needs every metric of an objective (the service's completed runs, an
aggregate target of ``mixopt laws``) uses the runs that report all of them. A metric column blank in every
row, and a blank mixture weight or fidelity, are errors naming the column.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

import pandas as pd


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


def require_metric_values(table: pd.DataFrame, columns: Iterable[str], where: str) -> None:
    """Refuse metric ``columns`` of ``table`` (read from ``where``) that are blank in every row."""
    empty = [c for c in columns if table[c].isna().all()]
    if empty:
        raise TableError(f"{where}: metric column(s) {', '.join(map(repr, empty))} have no value in any row")


def require_filled(table: pd.DataFrame, columns: Iterable[str], where: str) -> None:
    """Refuse blank cells in ``columns`` (mixture weights, fidelities: a run is not a run without them)."""
    blanks = {c: int(n) for c, n in table[list(columns)].isna().sum().items() if n}
    if blanks:
        counts = ", ".join(f"{c!r} ({n} rows)" for c, n in blanks.items())
        raise TableError(f"{where}: blank cells in {counts}; only metric cells may be blank")
