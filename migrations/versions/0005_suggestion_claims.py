"""runs remember which client a suggestion was handed to, and when

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 11:30:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Both nullable: runs reported from outside and suggestions made before this revision were never
    # handed to a named client; ready-queue runs stay unclaimed until a request takes them.
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('client_id', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_runs_experiment_client_id', ['experiment_id', 'client_id', 'pk'], unique=False)
    # The ready queue's waiting runs, oldest first: a claim reads one index entry instead of scanning every
    # suggested run the experiment ever handed out.
    waiting = sa.text("state = 'suggested' AND claimed_at IS NULL")
    op.create_index('ix_runs_waiting', 'runs', ['experiment_id', 'pk'], unique=False,
                    postgresql_where=waiting, sqlite_where=waiting)


def downgrade() -> None:
    op.drop_index('ix_runs_waiting', table_name='runs')
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_index('ix_runs_experiment_client_id')
        batch_op.drop_column('claimed_at')
        batch_op.drop_column('client_id')
