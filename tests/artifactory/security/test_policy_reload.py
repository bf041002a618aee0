"""The roles and the anonymous switch another process changed are this process's once its copy is
`cache_seconds` old, read again as plain statements on pooled connections (not through the ORM,
whose load of them cost each process most of a millisecond on its event loop every second), on
SQLite and PostgreSQL."""

import time

import pytest
from sqlalchemy import event

from artifactory.db.engine import Database
from artifactory.security.principal import ANONYMOUS, Principal
from artifactory.security.service import Security

LIFETIME = 0.05


@pytest.fixture
def other(database_url):
    """Another process's security service, where the changes are made."""
    database = Database(database_url)
    security = Security(database, cache_seconds=LIFETIME)
    security.bootstrap("admin-password")
    yield security
    database.dispose()


@pytest.fixture
def here(database_url, other):
    database = Database(database_url)
    yield Security(database, cache_seconds=LIFETIME)
    database.dispose()


def test_a_role_and_the_anonymous_switch_changed_elsewhere_apply_once_the_copy_is_old(other, here):
    reader = Principal(username="reader", roles=frozenset({"team-readers"}))
    assert here.allowed(ANONYMOUS, "team-a", "read")
    assert not here.allowed(reader, "team-a", "write")
    other.save_role("team-readers", [{"repositories": "team-*", "actions": ["read", "write"]}], create=True)
    other.set_anonymous_read(False)
    time.sleep(LIFETIME * 1.5)
    assert here.allowed(reader, "team-a", "write")
    assert not here.allowed(reader, "other", "write")
    assert not here.allowed(ANONYMOUS, "team-a", "read")
    assert not here.anonymous_read


def test_reloading_the_roles_runs_nothing_through_sqlalchemy_execution(other, here):
    other.save_role("team-readers", [{"repositories": "team-*", "actions": ["read"]}], create=True)
    statements: list[str] = []
    event.listen(here.db.read_engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    reader = Principal(username="reader", roles=frozenset({"team-readers"}))
    for _ in range(3):
        time.sleep(LIFETIME * 1.5)
        assert here.allowed(reader, "team-a", "read")
    assert statements == []
