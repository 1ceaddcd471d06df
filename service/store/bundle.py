"""Experiment bundles: everything stored for one experiment as one versioned JSON document, and back.

``{"format": "mixopt.bundle", "version": 1, "experiment": {...}, "runs": [...], "jobs": [...], ...}``:
one section per table that belongs to the experiment, each row with every mapped column under its column
name (``pk`` aside: it is the target database's own insertion key; rows keep their order, so pagination
order survives). Tables are found from the foreign keys, not listed, so a table or column added later is
carried without touching this module: a table belongs to the experiment when it has a foreign key to
``experiments.id``, or to a table that belongs to it (``online_observations`` through ``online_sessions``).
Tables marked ``info={"derived": True}`` (fitted models, recomputed from the runs) are never carried.

Values keep their exact meaning: timestamps as ISO 8601 with their UTC offset, binary columns (a stored
candidate pool's arrays) as base64 text, floats as JSON numbers (Python writes the shortest repr that
reads back to the same double), JSON columns as they are (both backends store them as text, so -0.0,
1e20, 5e-324 and integers past 2**64 read back as written). Importing a bundle and exporting it again
gives the same document; :func:`dumps` writes it canonically (sorted keys), so that holds byte for byte,
whichever backend (SQLite, PostgreSQL) each side used. One exception is made so that it does: a float
*column* (``runs.cost``, ...) holding -0.0 is written as 0.0, since SQLite's REAL storage cannot keep the
sign of zero (inside JSON values -0.0 is kept).

A bundle is valid JSON and holds only finite numbers. A value stored before non-finite numbers were
refused (NaN, ±Infinity, possible in SQLite's JSON text and in PostgreSQL's float columns) is exported as
``null`` and listed, with the path to it and what it was, under ``"nonfinite"``:
``[{"at": "runs[3].metrics.loss/web", "value": "NaN"}]``. Nothing is lost from the record, and no
non-finite number is served or stored again: an import stores the ``null`` and keeps the list only in the
file. A bundle written by hand with a NaN or Infinity token is refused.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, Connection, Engine, Table, exists, insert, select
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import DateTime, Float, LargeBinary

from service.store.models import Base, Experiment, new_id

FORMAT = "mixopt.bundle"
VERSION = 1
EXPERIMENTS: Table = Experiment.__table__  # type: ignore[assignment]
#: Columns never carried: the target's own autoincrement key.
SKIPPED_COLUMNS = frozenset({"pk"})
#: The section listing the non-finite values an export wrote as null (not a table).
NONFINITE = "nonfinite"


class BundleError(ValueError):
    """A bundle that cannot be exported or imported as asked; the message says why and what to do."""


class ExperimentExists(BundleError):
    """The bundle's experiment id is already in the target database."""


def experiment_tables() -> list[tuple[Table, Column[Any], Table]]:
    """``(table, link column, parent table)`` for every table owned by an experiment, parents first."""
    owned: list[tuple[Table, Column[Any], Table]] = []
    members = {EXPERIMENTS.name}
    for table in Base.metadata.sorted_tables:
        if table.info.get("derived"):
            continue
        for fk in sorted(table.foreign_keys, key=lambda f: f.parent.name):
            parent = fk.column.table
            if parent.name in members and fk.column.name == "id" and table.name not in members:
                owned.append((table, fk.parent, parent))  # type: ignore[arg-type]
                members.add(table.name)
    return owned


def _carried(table: Table) -> list[Column[Any]]:
    return [c for c in table.columns if c.name not in SKIPPED_COLUMNS]


# ------------------------------------------------------------------------------------------------ export
def export_experiment(engine: Engine, experiment_id: str) -> dict[str, Any]:
    """The bundle of ``experiment_id``, read in one repeatable-read transaction (a consistent snapshot)."""
    options: dict[str, Any] = ({"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}
                               if engine.dialect.name == "postgresql" else {})
    with engine.connect().execution_options(**options) as conn, conn.begin():
        exp = _rows(conn, EXPERIMENTS, EXPERIMENTS.c.id == experiment_id)
        if not exp:
            raise BundleError(f"experiment {experiment_id!r} not found")
        bundle: dict[str, Any] = {"format": FORMAT, "version": VERSION, "experiment": exp[0]}
        owned = {EXPERIMENTS.name: select(EXPERIMENTS.c.id).where(EXPERIMENTS.c.id == experiment_id)}
        for table, link, parent in experiment_tables():
            # The ids of the parent's rows that belong to the experiment, as a (nested) subquery.
            belongs = link.in_(owned[parent.name])
            bundle[table.name] = _rows(conn, table, belongs)
            if "id" in table.c:
                owned[table.name] = select(table.c.id).where(belongs)
    replaced: list[dict[str, str]] = []
    bundle = _finite(bundle, "", replaced)
    if replaced:
        bundle[NONFINITE] = replaced
    return bundle


def _rows(conn: Connection, table: Table, where: ColumnElement[bool]) -> list[dict[str, Any]]:
    cols = _carried(table)
    order = table.c.pk if "pk" in table.c else cols[0]
    return [{c.name: _encode(c, v) for c, v in zip(cols, row, strict=True)}
            for row in conn.execute(select(*cols).where(where).order_by(order))]


def _encode(col: Column[Any], value: Any) -> Any:
    if isinstance(value, datetime):
        # In UTC whatever the session time zone, so both backends write the same text for the same instant.
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC).isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(col.type, Float) and value == 0.0:
        return 0.0  # -0.0 too: SQLite's REAL storage drops the sign of zero, PostgreSQL's keeps it
    return value


def _finite(value: Any, at: str, replaced: list[dict[str, str]]) -> Any:
    """``value`` with every non-finite float replaced by None, each one listed in ``replaced``."""
    if isinstance(value, float) and not math.isfinite(value):
        replaced.append({"at": at, "value": json.dumps(value)})
        return None
    if isinstance(value, dict):
        return {k: _finite(v, f"{at}.{k}" if at else k, replaced) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v, f"{at}[{i}]", replaced) for i, v in enumerate(value)]
    return value


def dumps(bundle: dict[str, Any]) -> str:
    """Canonical JSON text of a bundle: sorted keys, so equal bundles are equal bytes; finite numbers only."""
    return json.dumps(bundle, sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False) + "\n"


# ------------------------------------------------------------------------------------------------ import
def import_bundle(engine: Engine, bundle: dict[str, Any], new_ids: bool = False,
                  name: str | None = None) -> str:
    """Store a bundle's experiment with everything it owns, in one transaction; returns its id.

    Refuses (:class:`ExperimentExists`) when the experiment id is taken, unless ``new_ids``: then every id
    the bundle defines gets a fresh one, and every reference to it (columns and JSON values alike, such as
    a job's result listing its run ids) follows. ``name`` renames the experiment (a copy beside the
    original needs one: names are unique per project). Missing parent rows the experiment refers to by
    foreign key (its project) are created from their key, with defaults for the rest.
    """
    _check_header(bundle)
    tables = experiment_tables()
    known = {"format", "version", "experiment", NONFINITE, *(t.name for t, _, _ in tables)}
    unknown = sorted(set(bundle) - known)
    if unknown:
        raise BundleError(f"the bundle has sections this schema does not know: {', '.join(unknown)}; "
                          "import it with the mixopt version that exported it (or a newer one)")
    sections: list[tuple[Table, list[dict[str, Any]]]] = [(EXPERIMENTS, [bundle["experiment"]])]
    sections += [(t, list(bundle.get(t.name) or [])) for t, _, _ in tables]
    for table, rows in sections:
        _refuse_nonfinite(rows, "experiment" if table is EXPERIMENTS else table.name)
    if new_ids:
        sections = _renumber(sections)
    exp_row = dict(sections[0][1][0])
    if name is not None:
        exp_row["name"] = name
    sections[0] = (EXPERIMENTS, [exp_row])
    try:
        with engine.begin() as conn:
            if conn.scalar(select(exists().where(EXPERIMENTS.c.id == exp_row["id"]))):
                raise ExperimentExists(f"experiment {exp_row['id']!r} already exists in this database; "
                                       "pass --new-id to import a copy with fresh ids")
            _ensure_parents(conn, exp_row)
            for table, rows in sections:
                if rows:
                    conn.execute(insert(table), [_decode_row(table, r, f"{table.name}[{i}]")
                                                 for i, r in enumerate(rows)])
    except IntegrityError as exc:
        raise BundleError(f"the database refused the bundle ({_first_line(exc.orig)}); an experiment with "
                          "this name may already exist in its project (pass --name), or ids may clash "
                          "(pass --new-id)") from exc
    except StatementError as exc:  # rows with differing columns, values of the wrong type
        raise BundleError(f"the database refused the bundle: {_first_line(exc.orig or exc)}") from exc
    return str(exp_row["id"])


def _refuse_nonfinite(value: Any, at: str) -> None:
    """Raises naming the first non-finite number: nothing stored may be NaN or infinite."""
    found: list[dict[str, str]] = []
    _finite(value, at, found)
    if found:
        raise BundleError(f"{found[0]['at']}: {found[0]['value']} is not a finite number; no stored value may "
                          "be NaN or infinite (set it to null, or drop it)")


def _no_constant(token: str) -> Any:
    raise BundleError(f"not a JSON document: {token} is not a JSON number (a bundle holds finite numbers only)")


def loads(text: str) -> dict[str, Any]:
    try:
        bundle = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise BundleError(f"not a JSON document: {exc}") from exc
    _check_header(bundle)
    return bundle  # type: ignore[no-any-return]


def _check_header(bundle: Any) -> None:
    if not isinstance(bundle, dict) or bundle.get("format") != FORMAT:
        raise BundleError(f"not a mixopt bundle (expected \"format\": {FORMAT!r})")
    if bundle.get("version") != VERSION:
        raise BundleError(f"bundle version {bundle.get('version')!r} is not supported (this mixopt reads "
                          f"version {VERSION})")
    if not isinstance(bundle.get("experiment"), dict) or "id" not in bundle["experiment"]:
        raise BundleError("the bundle has no experiment")


def _renumber(sections: list[tuple[Table, list[dict[str, Any]]]]) -> list[tuple[Table, list[dict[str, Any]]]]:
    """Fresh ids for every row's ``id``, and every string value equal to an old id replaced, at any depth."""
    fresh: dict[str, str] = {}
    for table, rows in sections:
        for row in rows:
            old = row.get("id")
            if isinstance(old, str):
                prefix = old.split("_", 1)[0] if "_" in old else table.name[:3]
                fresh[old] = new_id(prefix)
    return [(table, [_replace(row, fresh) for row in rows]) for table, rows in sections]


def _replace(value: Any, fresh: dict[str, str]) -> Any:
    if isinstance(value, str):
        return fresh.get(value, value)
    if isinstance(value, dict):
        return {k: _replace(v, fresh) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace(v, fresh) for v in value]
    return value


def _ensure_parents(conn: Connection, exp_row: dict[str, Any]) -> None:
    for fk in EXPERIMENTS.foreign_keys:
        value = exp_row.get(fk.parent.name)
        target = fk.column
        if value is not None and not conn.scalar(select(exists().where(target == value))):
            conn.execute(insert(target.table).values({target.name: value}))


def _decode_row(table: Table, row: Any, where: str) -> dict[str, Any]:
    if not isinstance(row, dict):
        raise BundleError(f"{where}: expected an object")
    columns = {c.name: c for c in _carried(table)}
    unknown = sorted(set(row) - set(columns))
    if unknown:
        raise BundleError(f"{where}: columns this schema does not have: {', '.join(unknown)}; import it with "
                          "the mixopt version that exported it (or a newer one)")
    return dict(_decoded(columns, row, where))


def _decoded(columns: dict[str, Column[Any]], row: dict[str, Any], where: str) -> Iterator[tuple[str, Any]]:
    for key, value in row.items():
        if value is not None and _is_datetime(columns[key]):
            try:
                value = datetime.fromisoformat(value)
            except (TypeError, ValueError) as exc:
                raise BundleError(f"{where}.{key}: not an ISO 8601 timestamp: {value!r}") from exc
        elif value is not None and isinstance(columns[key].type, LargeBinary):
            try:
                value = base64.b64decode(value, validate=True)
            except (TypeError, ValueError) as exc:
                raise BundleError(f"{where}.{key}: not base64 text") from exc
        yield key, value


def _is_datetime(col: Column[Any]) -> bool:
    """Plain ``DateTime`` columns and type decorators over one (``UTCDateTime``)."""
    return isinstance(col.type, DateTime) or isinstance(getattr(col.type, "impl", None), DateTime)


def _first_line(exc: BaseException | None) -> str:
    return str(exc).strip().splitlines()[0] if exc is not None and str(exc).strip() else "integrity error"
