"""transferred_runs: completed runs of earlier experiments brought into an experiment (warm start)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 02:10:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'transferred_runs',
        sa.Column('pk', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('experiment_id', sa.String(length=64), nullable=False),
        sa.Column('source_experiment_id', sa.String(length=64), nullable=False),
        sa.Column('source_run_id', sa.String(length=64), nullable=False),
        sa.Column('weight', sa.Float(), nullable=False),
        sa.Column('task', sa.String(length=32), nullable=False),
        sa.Column('mixture', sa.JSON(), nullable=False),
        sa.Column('fidelity', sa.JSON(), nullable=False),
        sa.Column('metrics', sa.JSON(), nullable=False),
        sa.Column('loss', sa.Float(), nullable=False),
        sa.Column('cost', sa.Float(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['experiment_id'], ['experiments.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('pk'),
        sa.UniqueConstraint('id'),
        sa.UniqueConstraint('experiment_id', 'source_run_id', name='uq_transferred_runs_source_run'),
    )
    op.create_index('ix_transferred_runs_experiment_pk', 'transferred_runs', ['experiment_id', 'pk'])


def downgrade() -> None:
    op.drop_index('ix_transferred_runs_experiment_pk', table_name='transferred_runs')
    op.drop_table('transferred_runs')
