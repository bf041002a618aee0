"""search indexes and download counts

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("component", schema=None) as batch_op:
        batch_op.create_index(
            "ix_component_search", ["name", "namespace", "repository_id", "id"], unique=False
        )
    with op.batch_alter_table("blob", schema=None) as batch_op:
        batch_op.create_index("ix_blob_sha1", ["sha1"], unique=False)
        batch_op.create_index("ix_blob_md5", ["md5"], unique=False)
    with op.batch_alter_table("asset", schema=None) as batch_op:
        batch_op.add_column(sa.Column("download_count", sa.BigInteger(), nullable=False, server_default="0"))
    if op.get_bind().dialect.name == "postgresql":
        _trigram_indexes()


def _trigram_indexes() -> None:
    """Substring search on names (lower(name) LIKE '%x%') uses trigram indexes where pg_trgm can be
    had. The extension lives in the public schema (it is one per database, whatever schema the
    server's search_path names); a database without it just searches without these indexes."""
    bind = op.get_bind()
    try:
        with bind.begin_nested():
            bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public"))
    except sa.exc.DBAPIError:
        pass
    schema = bind.execute(
        sa.text(
            "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace"
            " WHERE extname = 'pg_trgm'"
        )
    ).scalar()
    if not schema:
        return
    for column in ("name", "namespace"):
        op.execute(
            f"CREATE INDEX ix_component_{column}_trgm ON component"
            f' USING gin (lower({column}) "{schema}".gin_trgm_ops)'
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_component_namespace_trgm")
        op.execute("DROP INDEX IF EXISTS ix_component_name_trgm")
    with op.batch_alter_table("asset", schema=None) as batch_op:
        batch_op.drop_column("download_count")
    with op.batch_alter_table("blob", schema=None) as batch_op:
        batch_op.drop_index("ix_blob_md5")
        batch_op.drop_index("ix_blob_sha1")
    with op.batch_alter_table("component", schema=None) as batch_op:
        batch_op.drop_index("ix_component_search")
