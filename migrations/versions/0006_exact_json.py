"""JSON columns on PostgreSQL as json (text, kept exactly) instead of jsonb (numbers normalised)

jsonb stores numbers as numeric: -0.0 reads back as 0.0 and 1e20 as the integer 100000000000000000000,
so a bundle exported from SQLite changed through PostgreSQL. json keeps the text as written. Values
already stored in jsonb keep the text jsonb gives them (their normalised form): nothing else is known of
them. The ``json || json`` operator merges two objects (keys of the right one win), as ``jsonb || jsonb``
did for the one statement that merges in SQL: a report's metrics into a pending run's. SQLite stores JSON
as text already: nothing changes there.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 18:40:00
"""
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

COLUMNS = {
    'api_tokens': ('scopes',),
    'experiments': ('spec', 'metadata', 'hints'),
    'fits': ('scores', 'params'),
    'jobs': ('params', 'result'),
    'online_sessions': ('hyperparameters', 'state'),
    'proposals': ('payload',),
    'runs': ('mixture', 'fidelity', 'metrics', 'prediction'),
    'online_observations': ('losses', 'directive'),
}

MERGE = """
CREATE FUNCTION mixopt_json_merge(a json, b json) RETURNS json LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(json_object_agg(key, value), '{}'::json) FROM (
        SELECT key, value FROM json_each(a) WHERE key NOT IN (SELECT json_object_keys(b))
        UNION ALL
        SELECT key, value FROM json_each(b)
    ) merged
$$;
CREATE OPERATOR || (LEFTARG = json, RIGHTARG = json, FUNCTION = mixopt_json_merge);
"""


def _retype(to: str) -> None:
    for table, columns in COLUMNS.items():
        changes = ', '.join(f'ALTER COLUMN "{c}" TYPE {to} USING "{c}"::{to}' for c in columns)
        op.execute(f'ALTER TABLE "{table}" {changes}')


def upgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    _retype('json')
    op.execute(MERGE)


def downgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute('DROP OPERATOR || (json, json)')
    op.execute('DROP FUNCTION mixopt_json_merge(json, json)')
    _retype('jsonb')
