"""per-name generations (cache keys of computed index documents) and tombstones (what may never
be stored again after its deletion)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "name_generation",
        sa.Column("repository_id", sa.Integer(), nullable=False),
        sa.Column("namespace", sa.String(length=255), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["repository_id"],
            ["repository.id"],
            name="fk_name_generation_repository_id_repository",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("repository_id", "namespace", "name", name="pk_name_generation"),
    )
    op.create_table(
        "tombstone",
        sa.Column("repository_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=1024), nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["repository_id"],
            ["repository.id"],
            name="fk_tombstone_repository_id_repository",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("repository_id", "key", name="pk_tombstone"),
    )


def downgrade() -> None:
    op.drop_table("tombstone")
    op.drop_table("name_generation")
