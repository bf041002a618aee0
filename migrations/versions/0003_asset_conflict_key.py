"""asset conflict keys: one release spelled two ways is one file for the write policy;
upstream links from before 0002 count as fresh (GC drops links not refreshed for a week)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from datetime import UTC, datetime

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
    now = datetime.now(UTC)
    if op.get_bind().dialect.name == "sqlite":
        now = now.replace(tzinfo=None)  # as the models store it there
    links = sa.table("upstream_link", sa.column("updated_at", sa.DateTime(timezone=True)))
    op.execute(links.update().where(links.c.updated_at.is_(None)).values(updated_at=now))


def downgrade() -> None:
    with op.batch_alter_table("asset", schema=None) as batch_op:
        batch_op.drop_index("ix_asset_repository_conflict_key")
        batch_op.drop_column("conflict_key")
