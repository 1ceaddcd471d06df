"""``mixopt export`` and ``mixopt import-bundle``: a whole experiment to and from a JSON bundle.

Both work on MIXOPT_DATABASE_URL directly (like ``mixopt migrate``), so they need no running service:
export from one database, import into another (a backup, a move from SQLite to PostgreSQL, a copy).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click
from sqlalchemy import Engine, inspect

from service.cli.errors import CliError, require_existing_database
from service.db import make_engine
from service.settings import get_settings
from service.store import bundle


def _engine() -> Engine:
    """An engine on MIXOPT_DATABASE_URL, refusing a database that does not exist (never creating one) or
    was never migrated."""
    url = get_settings().database_url
    require_existing_database(url)
    engine = make_engine(url)
    if not inspect(engine).has_table("experiments"):
        engine.dispose()
        raise CliError(f"{engine.url.render_as_string(hide_password=True)} has no mixopt schema; "
                                   "run `mixopt migrate` first")
    return engine


@click.command("export")
@click.argument("experiment_id")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path, allow_dash=True), default="-",
              show_default=True, help="bundle file to write ('-' for stdout)")
def export(experiment_id: str, out: Path) -> None:
    """Write EXPERIMENT_ID with its runs, jobs, fits, proposals, policy and online sessions to a bundle.

    The bundle is canonical JSON (format mixopt.bundle, version 1): exporting an imported bundle gives the
    same bytes. A stored NaN or infinity is written as null, listed under "nonfinite", with a warning.
    It is written to a temporary file and renamed, so a failed export leaves no partial file.
    """
    engine = _engine()
    try:
        doc = bundle.export_experiment(engine, experiment_id)
    finally:
        engine.dispose()
    text = bundle.dumps(doc)
    for item in doc.get(bundle.NONFINITE, []):
        click.echo(f"warning: {item['at']} is stored as {item['value']}: written as null (listed under "
                   f'"{bundle.NONFINITE}" in the bundle)', err=True)
    if str(out) == "-":
        sys.stdout.write(text)
        return
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out)
    click.echo(f"exported {experiment_id} to {out} ({len(text.encode())} bytes)", err=True)


@click.command("import-bundle")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path, allow_dash=True))
@click.option("--new-id", "new_ids", is_flag=True,
              help="give the experiment and everything in it fresh ids (to import a copy)")
@click.option("--name", default=None,
              help="store the experiment under this name (names are unique per project)")
def import_bundle(path: Path, new_ids: bool, name: str | None) -> None:
    """Restore a bundle written by `mixopt export` into MIXOPT_DATABASE_URL, all or nothing.

    Ids, timestamps and values are restored exactly. An experiment id already present is refused unless
    --new-id is given.
    """
    text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    engine = _engine()
    try:
        doc = bundle.loads(text)
        exp_id = bundle.import_bundle(engine, doc, new_ids=new_ids, name=name)
    finally:
        engine.dispose()
    if doc.get(bundle.NONFINITE):
        click.echo(f"warning: {len(doc[bundle.NONFINITE])} value(s) were not finite when exported and are "
                   f'stored as null (listed under "{bundle.NONFINITE}" in the bundle)', err=True)
    click.echo(exp_id)
