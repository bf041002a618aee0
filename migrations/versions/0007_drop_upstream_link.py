"""drop upstream_link: a proxy finds a file's upstream URL and digests in the upstream index
document that lists it (the engine's index), not in a table of remembered links

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_table("upstream_link")


def downgrade() -> None:
    op.create_table(
        "upstream_link",
        sa.Column("repository_id", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("digests", sa.JSON(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["repository_id"],
            ["repository.id"],
            name="fk_upstream_link_repository_id_repository",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("repository_id", "path", name="pk_upstream_link"),
    )
