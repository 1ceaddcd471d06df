"""Expected failures of ``mixopt`` commands, shown as one line and a non-zero exit code.

Commands raise what they naturally raise (the client's :class:`MixoptError`, httpx transport errors, a
domain :class:`ApiError`, a store's :class:`StoreError`, file and CSV errors, invalid settings, a bundle
refused); :class:`MixoptGroup`, the class of the top-level group, turns each known type into
``Error: <one line>`` (exit code 1) in this one place. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import httpx
import pandas as pd
import pydantic
from mixopt_client import MixoptError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from runtables.columns import TableError
from service.errors import ApiError
from service.settings import Settings
from service.store.bundle import BundleError
from service.store.errors import StoreError


class CliError(click.ClickException):
    """A command cannot do what was asked; the message names the problem (printed as ``Error: ...``)."""


def _transport(exc: httpx.TransportError) -> str:
    try:
        url = exc.request.url
        where = f"{url.scheme}://{url.netloc.decode()}"
    except RuntimeError:  # an error raised before a request was attached
        where = "the service"
    if isinstance(exc, httpx.TimeoutException):
        return f"no answer from {where} in time ({type(exc).__name__}); the service may be overloaded"
    return f"cannot reach {where}: {exc or type(exc).__name__} (is `mixopt serve` running there? see --url)"


def _api_answer(exc: MixoptError) -> str:
    hint = " (the client sends the token in MIXOPT_TOKEN)" if exc.status == 401 else ""
    return f"the service answered {exc}{hint}"


def _domain(exc: ApiError | StoreError) -> str:
    return f"{exc.code}: {exc.message}" + (f" (field {exc.field})" if exc.field else "")


def _os(exc: OSError) -> str:
    return f"{exc.filename}: {exc.strerror}" if exc.filename and exc.strerror else str(exc)


def _database(exc: DBAPIError) -> str:
    first = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
    return f"database error: {first}"


def _invalid(exc: pydantic.ValidationError) -> str:
    """What is invalid where; a setting is named by its environment variable (``MIXOPT_PORT: ...``)."""
    env_prefix = Settings.model_config.get("env_prefix", "") if exc.title == Settings.__name__ else None

    def where(loc: tuple[int | str, ...]) -> str:
        path = ".".join(map(str, loc))
        return path if env_prefix is None else (env_prefix + path).upper()

    problems = "; ".join(f"{where(e['loc'])}: {e['msg']}" for e in exc.errors())
    return f"invalid {'settings' if env_prefix is not None else exc.title}: {problems}"


#: Each expected exception type and how it reads as one line; the first matching entry wins.
EXPECTED: tuple[tuple[type[BaseException], Callable[[Any], str]], ...] = (
    (httpx.TransportError, _transport),
    (MixoptError, _api_answer),
    (ApiError, _domain),
    (StoreError, _domain),
    (BundleError, str),
    (TableError, str),
    (DBAPIError, _database),
    (pydantic.ValidationError, _invalid),
    (TimeoutError, str),  # a job still unfinished when the client stopped waiting (an OSError, but no file's)
    (OSError, _os),
)


def one_line(exc: BaseException) -> str | None:
    """The message for an expected failure, or None when ``exc`` is not one (a bug)."""
    for kind, describe in EXPECTED:
        if isinstance(exc, kind):
            return " ".join(describe(exc).split())
    return None


class MixoptGroup(click.Group):
    """A click group whose commands (and subgroups) report expected failures as one line, exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.ClickException:
            raise
        except Exception as exc:
            message = one_line(exc)
            if message is None:
                raise
            raise CliError(message) from exc


def read_csv(path: Path) -> pd.DataFrame:
    """``path`` as a table; an unreadable or malformed file is a :class:`CliError` naming it."""
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise CliError(f"{path}: not a readable CSV table ({' '.join(str(exc).split())})") from exc


def require_existing_database(url: str) -> None:
    """Refuse a SQLite file that does not exist, so that a command which only reads (or needs a migrated
    schema) never leaves an empty database behind, e.g. when run from another directory."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return
    path = Path(parsed.database)
    if not path.exists():
        raise CliError(f"no database at {path.resolve()} (MIXOPT_DATABASE_URL={url}): set MIXOPT_DATABASE_URL "
                       "to the database to use, or create one with `mixopt migrate`")
