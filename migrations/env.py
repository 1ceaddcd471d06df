"""Alembic environment: online migrations against the URL given by mixopt (never a hard-coded one)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import engine_from_config, pool

config = context.config
#: The models' metadata, which only ``alembic revision --autogenerate`` reads: a caller that autogenerates
#: passes it (``alembic_config(url).attributes["target_metadata"] = service.store.models.Base.metadata``), so the
#: migrations, applied by the service, do not import it.
target_metadata = config.attributes.get("target_metadata")


def run_migrations_offline() -> None:
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata,
                      literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connectable = engine_from_config(config.get_section(config.config_ini_section, {}), prefix="sqlalchemy.",
                                     poolclass=pool.NullPool)
    with connectable.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata,
                          render_as_batch=connection.dialect.name == "sqlite")
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
