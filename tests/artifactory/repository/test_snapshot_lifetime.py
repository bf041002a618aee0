"""A repository snapshot past its lifetime is read again as one statement on a pooled DBAPI connection
(not loaded through the ORM), and what another process changed meanwhile is in it: a configuration,
or another row under the same name (deleted and created again), on SQLite and PostgreSQL."""

import time

import pytest
from sqlalchemy import event

from artifactory.db import queries
from artifactory.db.engine import Database
from artifactory.db.models import Repository
from artifactory.formats import FormatRegistry
from artifactory.repository.registry import RepositoryRegistry

LIFETIME = 0.05


def create(db, name, **config):
    with db.write() as session:
        row = Repository(name=name, format="raw", type="hosted", config=config, revision=1)
        session.add(row)
        session.flush()
        queries.notify_revision(session, row.id, row.revision)


def configure(db, name, **config):
    """A configuration change, as the registry makes one: the row's config and its revision."""
    with db.write() as session:
        row = session.query(Repository).filter(Repository.name == name).one()
        row.config = config
        session.flush()
        queries.bump_revision(session, row.id)


def delete(db, name):
    RepositoryRegistry(db, FormatRegistry()).delete(name)


def revision(db, name):
    with db.read() as session:
        return session.query(Repository.revision).filter(Repository.name == name).scalar()


@pytest.fixture
def short(database_url):
    """A reader whose snapshots live LIFETIME seconds and who hears of no commit (PostgreSQL: no
    listener), so that only the lifetime makes it look again."""
    registry = RepositoryRegistry(Database(database_url), FormatRegistry(), cache_seconds=LIFETIME)
    yield registry
    registry.close()
    registry.db.dispose()


def _statements(registry):
    found: list[str] = []
    event.listen(registry.db.read_engine, "before_cursor_execute", lambda *args: found.append(args[2]))
    return found


def test_a_snapshot_past_its_lifetime_is_read_again_without_the_orm(writer, short):
    create(writer, "steady", write_policy="allow")
    before = short.get("steady")
    statements = _statements(short)  # what goes through SQLAlchemy's execution (the ORM's load did)
    for _ in range(3):
        time.sleep(LIFETIME * 1.5)
        again = short.get("steady")
        assert again == before and again is not before  # read again, the same row
    assert statements == []


def test_a_change_by_another_process_is_seen_once_the_lifetime_passed(writer, short):
    create(writer, "edited", write_policy="allow")
    assert short.get("edited").config["write_policy"] == "allow"
    configure(writer, "edited", write_policy="deny")
    time.sleep(LIFETIME * 1.5)
    assert short.get("edited").config["write_policy"] == "deny"


def test_a_repository_deleted_and_created_again_under_its_name_is_the_new_one(writer, short):
    create(writer, "reborn", write_policy="allow")
    old = short.get("reborn")
    delete(writer, "reborn")
    create(writer, "reborn", write_policy="deny")  # revision 1 again, as the old one had
    assert revision(writer, "reborn") == old.revision
    time.sleep(LIFETIME * 1.5)
    assert short.get("reborn").config["write_policy"] == "deny"
