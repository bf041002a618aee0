"""small blobs kept in their row: `blob.data` holds the bytes of a blob small enough to live in the
database (`Settings.inline_blob_bytes`), written in the transaction that saves its first asset, so
that a small upload costs one durable commit instead of two file-system flushes and a commit. NULL for
a blob whose bytes are in the blob store.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("blob", sa.Column("data", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    # The bytes of inline blobs would be lost: downgrading is refused while there are any.
    bind = op.get_bind()
    if bind.execute(sa.text("SELECT 1 FROM blob WHERE data IS NOT NULL LIMIT 1")).first() is not None:
        raise RuntimeError("blobs are stored in the database (blob.data): export them before downgrading")
    with op.batch_alter_table("blob") as batch:
        batch.drop_column("data")
