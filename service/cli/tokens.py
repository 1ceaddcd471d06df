"""``mixopt token create/list/revoke``: API tokens, kept directly in MIXOPT_DATABASE_URL (like ``migrate``).

Working on the database rather than over HTTP means the first token can be made before any exists, by
whoever may deploy the service.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

import click

from service.cli.errors import require_existing_database
from service.settings import get_settings
from service.store.models import ApiToken, utcnow
from service.store.tokens import Tokens


@contextmanager
def _tokens(creates: bool = False) -> Iterator[Tokens]:
    """The token store on MIXOPT_DATABASE_URL. Only ``creates`` (making a token) may create the database
    itself, so that the first token can be made before anything else; listing and revoking refuse a
    database that does not exist."""
    from migrations import upgrade
    from service.db import make_engine, make_session_factory

    settings = get_settings()
    if not creates:
        require_existing_database(settings.database_url)
    if settings.migrates_at_start:
        upgrade(settings.database_url)
    engine = make_engine(settings.database_url)
    try:
        yield Tokens(make_session_factory(engine))
    finally:
        engine.dispose()


def _when(t: datetime | None) -> str:
    return t.strftime("%Y-%m-%d %H:%M") if t is not None else "-"


def _status(row: ApiToken) -> str:
    if row.revoked_at is not None:
        return "revoked"
    return "expired" if row.expires_at is not None and row.expires_at <= utcnow() else "active"


@click.group()
def token() -> None:
    """Create, list and revoke API tokens (MIXOPT_DATABASE_URL).

    A token belongs to one project and sees only that project's experiments. Scopes: read (GET calls),
    write (also reports, suggestions, experiment changes, online sessions, refits), admin (everything).
    """


@token.command("create")
@click.option("--project", required=True, help="project the token belongs to (created if missing)")
@click.option("--scopes", default="read,write", show_default=True, help="comma-separated: read, write, admin")
@click.option("--name", default=None, help="label shown by 'mixopt token list'")
@click.option("--expires-days", type=click.FloatRange(min=0, min_open=True), default=None,
              help="expire after this many days (default: never)")
def create(project: str, scopes: str, name: str | None, expires_days: float | None) -> None:
    """Create a token and print it; the secret is shown only this once."""
    with _tokens(creates=True) as tokens:
        issued = tokens.create(project, scopes.split(","), name,
                               timedelta(days=expires_days) if expires_days is not None else None)
    row = issued.row
    click.echo(f"created token {row.id} (prefix {row.prefix}) for project {row.project!r}, "
               f"scopes {','.join(row.scopes)}, expires {_when(row.expires_at)}", err=True)
    click.echo("store it now, it cannot be shown again:", err=True)
    click.echo(issued.token)


@token.command("list")
@click.option("--project", default=None, help="only this project's tokens")
def list_tokens(project: str | None) -> None:
    """List tokens (never their secrets)."""
    with _tokens() as tokens:
        rows = tokens.list(project)
    header = ("id", "prefix", "project", "name", "scopes", "created", "last used", "expires", "status")
    table = [header] + [
        (r.id, r.prefix, r.project, r.name, ",".join(r.scopes), _when(r.created_at), _when(r.last_used_at),
         _when(r.expires_at), _status(r))
        for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


@token.command("revoke")
@click.argument("token_id")
def revoke(token_id: str) -> None:
    """Revoke a token by id (or prefix); API processes stop accepting it within MIXOPT_AUTH_CACHE_S."""
    settings = get_settings()
    with _tokens() as tokens:
        row = tokens.revoke(token_id)
    click.echo(f"revoked {row.id} (prefix {row.prefix}, project {row.project!r}) at {_when(row.revoked_at)}; "
               f"running API processes reject it within {settings.auth_cache_s:g} s")
