"""Alembic discipline: the migrations build exactly the schema the models describe, and go down cleanly."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from migrations import downgrade, upgrade
from service.store.models import Base


def test_migrations_match_models_and_downgrade(database_url: str) -> None:
    upgrade(database_url)
    engine = sa.create_engine(database_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == [], diff
    downgrade(database_url, "base")
    assert set(sa.inspect(engine).get_table_names()) <= {"alembic_version"}
    upgrade(database_url)
    assert {"experiments", "runs"} <= set(sa.inspect(engine).get_table_names())
    engine.dispose()
