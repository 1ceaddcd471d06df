"""A line on stderr while a CLI command waits on a long call, so a silent terminal never means a hang."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import click


@contextmanager
def elapsed(label: str, every_s: float = 1.0) -> Iterator[None]:
    """While the block runs, rewrite ``label… N s`` on stderr every ``every_s``; then the total time.

    A call that returns within ``every_s`` prints nothing: quick answers stay quiet.
    """
    done = threading.Event()
    started = time.monotonic()
    ticked = threading.Event()

    def tick() -> None:
        while not done.wait(every_s):
            ticked.set()
            click.echo(f"\r{label}… {time.monotonic() - started:.0f} s", err=True, nl=False)

    ticker = threading.Thread(target=tick, name="mixopt-cli-progress", daemon=True)
    ticker.start()
    try:
        yield
    finally:
        done.set()
        ticker.join()
        if ticked.is_set():
            click.echo(f"\r{label}: {time.monotonic() - started:.1f} s", err=True)
