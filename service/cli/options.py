"""Option values shared by several commands."""

from __future__ import annotations

import json
import math
from typing import Any

import click


def name_values(items: tuple[str, ...], option: str) -> dict[str, float]:
    """``NAME=VALUE`` items of a repeatable option as ``{name: value}``; anything else is a usage error
    naming the option and the item."""
    out: dict[str, float] = {}
    for item in items:
        name, sep, text = item.partition("=")
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not sep or not name or not math.isfinite(value):
            raise click.BadParameter(f"{item!r} is not NAME=VALUE with a finite number", param_hint=option)
        out[name] = value
    return out


url_option = click.option("--url", default="http://127.0.0.1:8000", show_default=True,
                          help="service base URL (a token, when needed, comes from MIXOPT_TOKEN)")


def print_json(data: Any) -> None:
    """An answer as indented JSON; NaN never appears in an answer, so it is refused rather than printed."""
    click.echo(json.dumps(data, indent=2, allow_nan=False))


json_option = click.option("--json", "as_json", is_flag=True, help="print the service's answer as JSON")
