"""online mixing sessions and their observations

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 11:30:00
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade() -> None:
    op.create_table('online_sessions',
    sa.Column('pk', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('experiment_id', sa.String(length=64), nullable=False),
    sa.Column('client_session_id', sa.String(length=200), nullable=True),
    sa.Column('method', sa.String(length=32), nullable=False),
    sa.Column('hyperparameters', JSON, nullable=False),
    sa.Column('state', JSON, nullable=False),
    sa.Column('last_step', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['experiment_id'], ['experiments.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('pk'),
    sa.UniqueConstraint('id'),
    sa.UniqueConstraint('experiment_id', 'client_session_id', name='uq_online_client_session')
    )
    with op.batch_alter_table('online_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_online_sessions_experiment_id'), ['experiment_id'], unique=False)

    op.create_table('online_observations',
    sa.Column('pk', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('session_id', sa.String(length=64), nullable=False),
    sa.Column('step', sa.Integer(), nullable=False),
    sa.Column('split', sa.String(length=16), nullable=False),
    sa.Column('losses', JSON, nullable=False),
    sa.Column('directive', JSON, nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['session_id'], ['online_sessions.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('pk'),
    sa.UniqueConstraint('session_id', 'step', name='uq_online_observation_step')
    )


def downgrade() -> None:
    op.drop_table('online_observations')
    with op.batch_alter_table('online_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_online_sessions_experiment_id'))
    op.drop_table('online_sessions')
