"""asset conflict keys: one release spelled two ways is one file for the write policy

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("asset", schema=None) as batch_op:
        batch_op.add_column(sa.Column("conflict_key", sa.String(length=255), nullable=True))
        batch_op.create_index(
            "ix_asset_repository_conflict_key", ["repository_id", "conflict_key"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("asset", schema=None) as batch_op:
        batch_op.drop_index("ix_asset_repository_conflict_key")
        batch_op.drop_column("conflict_key")
