"""Long blocking CLI calls say they are under way (issue 15: a BO recommendation blocked 14 s silently)."""

from __future__ import annotations

import threading
from typing import Any

import click
import pytest
from click.testing import CliRunner

from service.cli import progress
from service.cli.progress import elapsed


def test_a_slow_call_prints_elapsed_time_and_the_total(monkeypatch: pytest.MonkeyPatch) -> None:
    ticked = threading.Event()
    echo = click.echo

    def noting_echo(message: Any = None, **kwargs: Any) -> None:
        echo(message, **kwargs)
        if "…" in str(message):
            ticked.set()

    monkeypatch.setattr(progress.click, "echo", noting_echo)

    @click.command()
    def slow() -> None:
        with elapsed("computing the recommendation", every_s=0.01):
            ticked.wait()  # a call that lasts until the ticker has spoken, as a slow server call would
        echo("done")

    result = CliRunner().invoke(slow)
    assert result.exit_code == 0, result.output
    assert "computing the recommendation… " in result.stderr
    assert result.stderr.rstrip().endswith(" s") and "computing the recommendation: " in result.stderr
    assert result.stdout == "done\n"


def test_a_quick_call_prints_nothing() -> None:
    @click.command()
    def quick() -> None:
        with elapsed("fetching", every_s=3600):
            pass
        click.echo("done")

    result = CliRunner().invoke(quick)
    assert result.exit_code == 0 and result.stderr == "" and result.stdout == "done\n"
