"""paths in code-point order on PostgreSQL: asset.path and proxy_miss.path in the "C" collation, so
that "paths starting with P" (a range, `queries.starts_with`) is served by the (repository_id, path)
index whatever collation the database was created with (en_US and the like order text by language
rules, which no byte-exact range can use). SQLite compares text bytewise already: nothing to do.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

COLUMNS = (("asset", "path"), ("proxy_miss", "path"))


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, column in COLUMNS:
        # Rebuilds the column's indexes; equality (lookups, uniqueness, ON CONFLICT) is unchanged,
        # a deterministic collation comparing equal exactly the texts that are equal.
        op.execute(f'ALTER TABLE {table} ALTER COLUMN {column} TYPE varchar(1024) COLLATE "C"')


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, column in COLUMNS:
        op.execute(f'ALTER TABLE {table} ALTER COLUMN {column} TYPE varchar(1024) COLLATE "default"')
