"""Where the service is: a URL the user gives, or an embedded one on a throw-away SQLite database."""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from mixopt_client import MixoptClient


def add_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--url", help="a running mixopt service, e.g. http://127.0.0.1:8000")
    where.add_argument(
        "--embedded",
        action="store_true",
        help="start a service in this process on a temporary SQLite database",
    )
    parser.add_argument(
        "--token", default=None, help="bearer token for a service that requires one (default: MIXOPT_TOKEN)"
    )


@contextmanager
def connect(url: str | None, token: str | None = None) -> Iterator[MixoptClient]:
    """A client for ``url``, or for an embedded server (stopped and deleted on exit) when ``url`` is None."""
    if url is not None:
        with MixoptClient(url, token=token) as client:
            yield client
        return
    from service.api.embedded import embedded_server
    from service.settings import Settings

    with (
        tempfile.TemporaryDirectory(prefix="tiny-lm-") as tmp,
        embedded_server(Settings(database_url=f"sqlite:///{tmp}/mixopt.db")) as base,
        MixoptClient(base, token=token) as client,
    ):
        yield client
