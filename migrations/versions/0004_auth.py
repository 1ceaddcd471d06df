"""projects and API tokens; experiments belong to a project (existing ones to "default")

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 09:00:00
"""
import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')

projects = sa.table('projects', sa.column('id', sa.String), sa.column('name', sa.String),
                    sa.column('created_at', sa.DateTime(timezone=True)))


def upgrade() -> None:
    op.create_table('projects',
    sa.Column('pk', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('pk'),
    sa.UniqueConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('api_tokens',
    sa.Column('pk', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('project', sa.String(length=128), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('scopes', JSON, nullable=False),
    sa.Column('prefix', sa.String(length=32), nullable=False),
    sa.Column('secret_sha256', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['project'], ['projects.name'], name='fk_api_tokens_project'),
    sa.PrimaryKeyConstraint('pk'),
    sa.UniqueConstraint('id'),
    sa.UniqueConstraint('prefix')
    )
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_api_tokens_project'), ['project'], unique=False)

    # Data: the default project, plus one project per distinct name already used by an experiment (before
    # this revision every experiment was created in "default", but a hand-edited row must not break the FK).
    conn = op.get_bind()
    names = {'default'} | {row[0] for row in conn.execute(sa.text('SELECT DISTINCT project FROM experiments'))}
    now = datetime.now(UTC)
    op.bulk_insert(projects, [{'id': f'prj_{uuid.uuid4().hex}', 'name': n, 'created_at': now}
                              for n in sorted(names)])

    with op.batch_alter_table('experiments', schema=None) as batch_op:
        batch_op.create_foreign_key('fk_experiments_project', 'projects', ['project'], ['name'])


def downgrade() -> None:
    with op.batch_alter_table('experiments', schema=None) as batch_op:
        batch_op.drop_constraint('fk_experiments_project', type_='foreignkey')

    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_api_tokens_project'))

    op.drop_table('api_tokens')
    op.drop_table('projects')
