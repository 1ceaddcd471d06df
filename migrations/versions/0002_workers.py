"""job leases, re-optimization policies, indexes for the stale-work sweeps

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 09:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('published_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('lease_owner', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('lease_expires_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_jobs_state', ['state'], unique=False)

    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.create_index('ix_runs_state_heartbeat', ['state', 'heartbeat_at'], unique=False)

    op.create_table('reopt_policies',
    sa.Column('pk', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('experiment_id', sa.String(length=64), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('every_runs', sa.Integer(), nullable=True),
    sa.Column('every_minutes', sa.Float(), nullable=True),
    sa.Column('ready_suggestions', sa.Integer(), nullable=False),
    sa.Column('method', sa.String(length=64), nullable=False),
    sa.Column('last_completed', sa.Integer(), nullable=False),
    sa.Column('last_enqueued_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_job_id', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['experiment_id'], ['experiments.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('pk'),
    sa.UniqueConstraint('experiment_id')
    )


def downgrade() -> None:
    op.drop_table('reopt_policies')
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_index('ix_runs_state_heartbeat')

    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_jobs_state')
        batch_op.drop_column('lease_expires_at')
        batch_op.drop_column('lease_owner')
        batch_op.drop_column('published_at')
