"""candidate pools stored once per experiment and content, named by hash from propose jobs

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 19:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Jobs queued before this revision keep their pool inline in their parameters and still run.
    op.create_table(
        'candidate_pools',
        sa.Column('pk', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('experiment_id', sa.String(length=64), nullable=False),
        sa.Column('sha256', sa.String(length=64), nullable=False),
        sa.Column('n_rows', sa.Integer(), nullable=False),
        sa.Column('mixtures', sa.LargeBinary(), nullable=False),
        sa.Column('fidelities', sa.LargeBinary(), nullable=False),
        sa.Column('chosen', sa.LargeBinary(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['experiment_id'], ['experiments.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('pk'),
        sa.UniqueConstraint('id'),
        sa.UniqueConstraint('experiment_id', 'sha256', name='uq_candidate_pools_experiment_sha256'),
    )


def downgrade() -> None:
    op.drop_table('candidate_pools')
