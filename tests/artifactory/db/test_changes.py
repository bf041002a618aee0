"""A process's repository snapshots learn of another process's commits (db.changes), on SQLite and
PostgreSQL: at the next read on SQLite, once the notification arrives on PostgreSQL, and without a
query per read while nothing changed."""

import sqlite3
import time

import pytest
from artifactory_formats.raw.format import RawFormat
from sqlalchemy import event

from artifactory.db import changes, queries
from artifactory.db.engine import Database
from artifactory.db.migrate import upgrade
from artifactory.db.models import Repository
from artifactory.formats import FormatRegistry
from artifactory.repository.registry import RepositoryRegistry

# A snapshot that only expiry would refresh stays for the whole test.
LONG = 3600.0
NOTIFIED_WITHIN = 5.0  # PostgreSQL: the notification arrives after the commit, well within this


@pytest.fixture
def reader(database_url):
    database = Database(database_url)
    registry = RepositoryRegistry(database, FormatRegistry(), cache_seconds=LONG)
    registry.start()
    yield registry
    registry.close()
    database.dispose()


def create(db, name):
    with db.write() as session:
        session.add(Repository(name=name, format="raw", type="hosted", config={}, revision=1))
        session.flush()


def bump(db, name):
    with db.write() as session:
        repository_id = session.query(Repository.id).filter(Repository.name == name).scalar()
        return queries.bump_revision(session, repository_id)


def seen(registry, name, revision):
    """The revision the registry reports for `name`, once it is `revision` (PostgreSQL: waited for)."""
    deadline = time.monotonic() + (0 if registry.changes.exact else NOTIFIED_WITHIN)
    while True:
        found = registry.get(name).revision
        if found == revision or time.monotonic() > deadline:
            return found
        time.sleep(0.01)


def listening(registry):
    deadline = time.monotonic() + NOTIFIED_WITHIN
    while registry.changes.token() != registry.changes.token():
        assert time.monotonic() < deadline, "the listener did not connect"
        time.sleep(0.01)


def test_another_process_s_revision_bump_is_seen_without_waiting_for_expiry(writer, reader):
    create(writer, "shared")
    listening(reader)
    assert reader.get("shared").revision == 1
    for _ in range(3):
        revision = bump(writer, "shared")
        assert seen(reader, "shared", revision) == revision


def test_a_read_while_nothing_committed_costs_no_query(writer, reader):
    create(writer, "quiet")
    listening(reader)
    reader.get("quiet")
    statements = []
    event.listen(reader.db.read_engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    for _ in range(50):
        assert reader.get("quiet").revision == 1
    assert statements == []


def test_a_commit_to_another_repository_costs_no_pool_query_and_no_reread(writer, reader):
    create(writer, "steady")
    create(writer, "busy")
    listening(reader)
    before = reader.get("steady")
    reader.get("busy")
    bump(writer, "busy")
    statements = []
    event.listen(reader.db.read_engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    assert seen(reader, "busy", 2) == 2
    statements.clear()
    assert reader.get("steady") is before  # the snapshot itself, checked, not read again
    # SQLite reads the revision on the watcher's own connection; PostgreSQL's notification named
    # another repository, so nothing is read at all.
    assert statements == []


def test_sqlite_tokens_move_with_every_commit_and_checkpoint(tmp_path):
    url = f"sqlite:///{tmp_path / 'w.db'}"
    upgrade(url)
    watcher = changes.watch(url)
    db = Database(url)
    try:
        for i in range(20):
            before = watcher.token()
            assert watcher.token() == before
            create(db, f"r{i}")
            assert watcher.token() != before
            if i % 5 == 0:
                checkpoint = sqlite3.connect(tmp_path / "w.db", isolation_level=None)
                assert checkpoint.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0
                checkpoint.close()
    finally:
        watcher.close()
        db.dispose()


def test_postgresql_tokens_never_match_while_the_listener_is_not_connected():
    watcher = changes.watch("postgresql+psycopg://nobody@127.0.0.1:1/none")
    assert watcher.token() is None  # not started: the caller relies on expiry
    watcher.start()
    try:
        assert watcher.token() != watcher.token()
    finally:
        watcher.close()


def test_a_repository_deleted_by_another_process_is_gone_at_the_next_read(writer, reader):
    create(writer, "doomed")
    listening(reader)
    assert reader.get("doomed") is not None
    RepositoryRegistry(writer, FormatRegistry()).delete("doomed")
    deadline = time.monotonic() + (0 if reader.changes.exact else NOTIFIED_WITHIN)
    while reader.get("doomed") is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert reader.get("doomed") is None


def test_a_repository_created_again_by_another_process_is_the_new_one_at_the_next_read(writer, reader):
    formats = FormatRegistry()
    formats.add(RawFormat())
    other = RepositoryRegistry(writer, formats)
    body = {"name": "reborn", "format": "raw", "type": "hosted"}
    other.create(body)
    listening(reader)
    old = reader.get("reborn")
    assert old is not None
    other.delete("reborn")
    other.create(body)  # its revision is not its predecessor's, whatever the two went through
    deadline = time.monotonic() + (0 if reader.changes.exact else NOTIFIED_WITHIN)
    while reader.get("reborn").revision == old.revision and time.monotonic() < deadline:
        time.sleep(0.01)
    new = reader.get("reborn")
    assert new.revision != old.revision
    assert new.id != old.id  # never an id a repository had (SQLite: AUTOINCREMENT)


def _counting_tokens(registry):
    taken = []
    take = registry.changes.token

    def counted():
        taken.append(1)
        return take()

    registry.changes.token = counted
    return taken


def test_a_request_takes_the_change_token_once_for_all_its_lookups(writer, reader):
    for name in ("a", "b", "c"):
        create(writer, name)
    listening(reader)
    taken = _counting_tokens(reader)
    with reader.request():
        for name in ("a", "b", "c", "a"):
            assert reader.get(name).name == name
    assert len(taken) == 1
    taken.clear()
    for name in ("a", "b"):
        reader.get(name)
    assert len(taken) == 2  # outside a request: one each


def test_a_commit_before_a_request_is_seen_by_all_its_lookups_and_one_during_it_by_the_next(writer, reader):
    create(writer, "seen")
    listening(reader)
    assert reader.get("seen").revision == 1
    revision = bump(writer, "seen")
    assert seen(reader, "seen", revision) == revision  # PostgreSQL: once notified
    with reader.request():
        assert reader.get("seen").revision == revision
        later = bump(writer, "seen")
        # The request sees its repositories as of its first lookup...
        if reader.changes.exact:
            assert reader.get("seen").revision == revision
    # ...and the next request sees what was committed meanwhile (PostgreSQL: a request taken once
    # the notification has arrived; polling inside one request would keep its token).
    deadline = time.monotonic() + (0 if reader.changes.exact else NOTIFIED_WITHIN)
    while True:
        with reader.request():
            found = reader.get("seen").revision
        if found == later or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    assert found == later


def test_a_task_that_outlives_its_request_takes_tokens_of_its_own_again(writer, reader):
    import contextvars

    create(writer, "late")
    listening(reader)
    with reader.request():
        assert reader.get("late").revision == 1
        context = contextvars.copy_context()  # what a task started by the request holds
    revision = bump(writer, "late")
    assert context.run(seen, reader, "late", revision) == revision


@pytest.fixture
def node(database_url, tmp_path):
    """A writer and a reader as two processes of one node: their databases share the node's file
    of changes (a server's workers and its CLI commands, which share its data directory)."""
    path = tmp_path / "node-changes"
    writer, read = Database(database_url, changes_file=path), Database(database_url, changes_file=path)
    registry = RepositoryRegistry(read, FormatRegistry(), cache_seconds=LONG)
    registry.start()
    yield writer, registry
    registry.close()
    writer.dispose(), read.dispose()


def test_a_commit_of_another_process_of_the_node_is_seen_at_its_very_next_read(node):
    """Exact on PostgreSQL too: the read does not wait for the notification, which reaches the other
    processes only after the commit has returned."""
    writer, reader = node
    create(writer, "near")
    listening(reader)
    assert reader.get("near").revision == 1
    for _ in range(20):
        revision = bump(writer, "near")
        assert reader.get("near").revision == revision
    RepositoryRegistry(writer, FormatRegistry()).delete("near")
    assert reader.get("near") is None


def test_a_commit_of_the_node_to_another_repository_costs_no_reread(node):
    writer, reader = node
    create(writer, "calm")
    create(writer, "moving")
    listening(reader)
    before = reader.get("calm")
    statements = []
    event.listen(reader.db.read_engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    for _ in range(5):
        revision = bump(writer, "moving")
        assert reader.get("calm") is before
        if not reader.changes.exact:  # SQLite reads revisions on the watcher's own connection
            assert statements == []
        assert reader.get("moving").revision == revision
        statements.clear()


def test_a_node_file_that_cannot_be_opened_leaves_the_notifications(database_url, tmp_path, caplog):
    """A data directory the process may not write: it starts, and learns of the node's other commits
    by notification only (PostgreSQL; SQLite needs no file)."""
    database = Database(database_url, changes_file=tmp_path / "missing" / "node-changes")
    try:
        assert database.node_changes is None
        if not database.is_sqlite:
            assert "by notification only" in caplog.text
        create(database, "still-works")
    finally:
        database.dispose()


def test_the_node_file_tells_a_process_what_another_may_have_moved(tmp_path):
    path = tmp_path / "node-changes"
    one, two = changes.NodeChanges(path), changes.NodeChanges(path)  # two processes of a node
    try:
        start = two.count()
        one.committed({7: 3})
        now = two.count()
        assert now == start + 1
        assert two.moved_since(7, start, now, 2)  # past the revision two holds
        assert not two.moved_since(7, start, now, 3)  # two holds it already: nothing to read
        assert not two.moved_since(8, start, now, 0)  # another repository
        assert not one.moved_since(7, start, now, 0)  # one's own commit is not news to one
        one.committed({7 + changes.NodeChanges.SLOTS: 1})  # another repository of the same slot
        assert two.moved_since(7, start, two.count(), 3)  # the slot cannot tell any more: read
        # A revision committed earlier but counted later never hides a newer one.
        before = two.count()
        one.committed({9: 5})
        two.committed({9: 4})
        assert one.moved_since(9, before, one.count(), 4)
        assert not one.moved_since(9, before, one.count(), 5)
    finally:
        one.close(), two.close()
    path.write_bytes(b"\xff" * changes.NodeChanges.SIZE)  # a file of another layout
    fresh = changes.NodeChanges(path)
    try:
        assert fresh.count() == 0 and not fresh.moved_since(7, 0, 0, 0)
    finally:
        fresh.close()
