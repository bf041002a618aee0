"""token scopes, expected upstream digests, disabled users

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_token", schema=None) as batch_op:
        batch_op.add_column(sa.Column("scope", sa.JSON(), nullable=True))
    with op.batch_alter_table("user_account", schema=None) as batch_op:
        batch_op.add_column(sa.Column("disabled", sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table("upstream_link", schema=None) as batch_op:
        batch_op.add_column(sa.Column("digests", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.alter_column("url", existing_type=sa.Text(), nullable=True)


def downgrade() -> None:
    with op.batch_alter_table("upstream_link", schema=None) as batch_op:
        batch_op.alter_column("url", existing_type=sa.Text(), nullable=False)
        batch_op.drop_column("updated_at")
        batch_op.drop_column("digests")
    with op.batch_alter_table("user_account", schema=None) as batch_op:
        batch_op.drop_column("disabled")
    with op.batch_alter_table("api_token", schema=None) as batch_op:
        batch_op.drop_column("scope")
