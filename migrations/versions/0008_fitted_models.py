"""fitted_models: the model each method last fitted, so predictions need not fit again

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 18:40:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'fitted_models',
        sa.Column('pk', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('experiment_id', sa.String(length=64), nullable=False),
        sa.Column('key', sa.String(length=64), nullable=False),
        sa.Column('method', sa.String(length=64), nullable=False),
        sa.Column('data_version', sa.Integer(), nullable=False),
        sa.Column('n_runs', sa.Integer(), nullable=False),
        sa.Column('model', sa.LargeBinary(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['experiment_id'], ['experiments.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('pk'),
        sa.UniqueConstraint('experiment_id', 'key', name='uq_fitted_model_key'),
    )


def downgrade() -> None:
    op.drop_table('fitted_models')
