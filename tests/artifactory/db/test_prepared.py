"""PostgreSQL keeps the statements it prepared: psycopg forgets a connection's prepared statements at
every ROLLBACK (and sends DEALLOCATE ALL), so no read may end with one. The hot path's lookups run
outside any transaction, `Database.read` sessions end with COMMIT, and the pool hands out the
connection used last, so a lookup repeated on one thread finds its statement prepared however many
reads and writes came in between. On SQLite, where none of this applies, the same calls still work."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.exc import DBAPIError

from artifactory.db.models import Repository
from artifactory.db.queries import AssetLookup
from artifactory.repository.hosted import Upload
from tests.artifactory.engine.test_engine_api import ADMIN, make_repo


def prepared_here(state) -> set[str]:
    """The statements prepared on the connection the pool hands out next (the last one returned)."""
    connection = state.db.engine.raw_connection()
    try:
        cursor = connection.cursor()
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        found = {row[0] for row in cursor.fetchall()}
        cursor.close()
        connection.commit()
        return found
    finally:
        connection.close()


def test_reads_leave_prepared_statements_in_place(state):
    repo = make_repo(state)
    asyncio.run(state.engine.put_bytes(repo, b"bytes", Upload(path="a/file.bin"), ADMIN))
    lookup = AssetLookup(state.db.read_engine)
    for _ in range(3):
        found = lookup(repo.name, repo.id, "a/file.bin")
        assert found is not None and found.path == "a/file.bin"
        assert lookup(repo.name, repo.id, "a/missing.bin") is None
        with state.db.read() as session:
            assert session.scalar(select(Repository.name).where(Repository.id == repo.id)) == repo.name
    if state.db.is_sqlite:
        return
    kept = prepared_here(state)
    assert any("FROM asset" in statement for statement in kept), kept
    assert any("FROM repository" in statement for statement in kept), kept


def test_a_write_inside_a_read_session_fails_on_postgresql_and_changes_nothing(state):
    repo = make_repo(state)
    if state.db.is_sqlite:
        pytest.skip("SQLite read sessions are not read-only transactions")
    with pytest.raises(DBAPIError), state.db.read() as session:
        session.execute(update(Repository).where(Repository.id == repo.id).values(name="renamed"))
    with state.db.read() as session:
        assert session.scalar(select(Repository.name).where(Repository.id == repo.id)) == repo.name


def test_a_failed_read_leaves_the_pool_usable(state):
    repo = make_repo(state)
    lookup = AssetLookup(state.db.read_engine)
    with pytest.raises(DBAPIError), state.db.read() as session:
        session.execute(text("SELECT no_such_column FROM repository"))
    assert lookup(repo.name, repo.id, "nothing") is None
    with state.db.read() as session:
        assert session.scalar(select(Repository.name).where(Repository.id == repo.id)) == repo.name
