"""The ``mixopt`` command line: serve, migrate, experiments (with warm-start transfers), suggest, report,
recommend, pareto, cmr, import, export, import-bundle, demo, replay (and the laws, worker and token groups)."""

from __future__ import annotations

import click

from service.cli.answers import cmr, pareto
from service.cli.api import experiments, recommend, report, suggest
from service.cli.bundle import export, import_bundle
from service.cli.data import import_runs
from service.cli.demo import demo
from service.cli.errors import MixoptGroup
from service.cli.laws import laws
from service.cli.replay import replay
from service.cli.server import migrate, serve
from service.cli.tokens import token
from service.cli.warm_start import transfer, transferred
from service.cli.worker import beat, worker


@click.group(cls=MixoptGroup, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """mixopt: data-mixture optimization for language-model pretraining.

    Configuration comes from MIXOPT_* environment variables (MIXOPT_DATABASE_URL, MIXOPT_BROKER_URL, ...);
    with none set, the service uses ./mixopt.db (SQLite) and runs jobs in-process. Expected failures (a
    service that is down, an error answer, a bad file) print one line and exit with code 1.
    """


for command in (serve, migrate, experiments, suggest, report, recommend, pareto, cmr, import_runs, export,
                import_bundle, demo, replay, laws, worker, beat, token):
    main.add_command(command)
for subcommand in (transfer, transferred):
    experiments.add_command(subcommand)
