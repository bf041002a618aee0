"""repository ids never reused on SQLite: the table gets AUTOINCREMENT, as PostgreSQL's identity
sequences already behave. Without it SQLite hands a new repository the id of the last one deleted,
and what any process caches under a repository's id (hosted documents under (id, key, name
generation), lookups) would be taken for the new repository's, whose generations start again.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    # The table is rebuilt (copied, dropped, renamed): foreign keys are not enforced on the
    # migration's connection, so dropping the old table deletes nothing that refers to it.
    with op.batch_alter_table("repository", recreate="always", table_kwargs={"sqlite_autoincrement": True}):
        pass


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table("repository", recreate="always", table_kwargs={"sqlite_autoincrement": False}):
        pass
