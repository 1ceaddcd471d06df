"""``mixopt serve`` and ``mixopt migrate``."""

from __future__ import annotations

import os

import click

from service.settings import InsecureConfigError, get_settings


@click.command()
@click.option("--host", default=None, help="bind address (default MIXOPT_HOST or 127.0.0.1)")
@click.option("--port", default=None, type=int, help="port (default MIXOPT_PORT or 8000)")
@click.option("--workers", default=1, show_default=True, help="uvicorn worker processes")
def serve(host: str | None, port: int | None, workers: int) -> None:
    """Start the REST API (docs at /docs, OpenAPI at /openapi.json).

    On the embedded default (SQLite) migrations are applied at start-up and jobs run in this process. On
    a loopback address the API runs open unless MIXOPT_AUTH=required; on any other it requires tokens.
    """
    import uvicorn

    from service.logs import configure_logging

    # The app factory (in every worker process) reads the bind address from the settings, since it decides
    # whether tokens are required; pass the options on the way settings are read.
    if host is not None:
        os.environ["MIXOPT_HOST"] = host
    if port is not None:
        os.environ["MIXOPT_PORT"] = str(port)
    get_settings.cache_clear()
    settings = get_settings()
    try:
        auth = "tokens required" if settings.auth_enabled() else "OPEN, no tokens"
    except InsecureConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    configure_logging(settings.log_level, settings.log_json)
    click.echo(f"mixopt serving on http://{settings.host}:{settings.port} "
               f"(database: {settings.database_url.split('://')[0]}, "
               f"jobs: {'celery' if settings.broker_url else 'in-process'}, auth: {auth})", err=True)
    uvicorn.run("service.api.app:create_app", factory=True, host=settings.host, port=settings.port,
                workers=workers, log_config=None)


@click.command()
@click.option("--revision", default="head", show_default=True, help="target schema revision")
def migrate(revision: str) -> None:
    """Apply database migrations to MIXOPT_DATABASE_URL (the deploy step for PostgreSQL)."""
    from migrations import upgrade

    url = get_settings().database_url
    upgrade(url, revision)
    click.echo(f"schema at {revision} on {url.split('@')[-1]}")
