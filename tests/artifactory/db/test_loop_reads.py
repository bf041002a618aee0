"""The reads the event loop's thread runs itself (`RawQuery.rows`, the proxy's claim): on SQLite they
share one connection that thread keeps, and still see every commit made since, on any connection;
a read that fails gives that connection back; worker threads and PostgreSQL use the pool."""

import asyncio
import threading

import pytest
from sqlalchemy import bindparam, event, or_, select

from artifactory.db import queries
from artifactory.db.engine import read_connection
from artifactory.db.models import Setting


@pytest.fixture
def checkouts(db):
    counted = [0]

    def listener(*_args):
        counted[0] += 1

    event.listen(db.read_engine.pool, "checkout", listener)
    yield counted
    event.remove(db.read_engine.pool, "checkout", listener)


def put(db, key, value):
    with db.write() as session:
        session.merge(Setting(key=key, value={"v": value}))


def setting_query(db):
    return queries.RawQuery(db.read_engine, select(Setting.value).where(Setting.key == bindparam("key")))


def test_loop_reads_see_every_commit_made_since_on_any_connection(db, checkouts):
    # Several rows: a statement left unfinished on the kept connection would hold its snapshot.
    query = queries.RawQuery(
        db.read_engine,
        select(Setting.value)
        .where(or_(Setting.key == bindparam("a"), Setting.key == bindparam("b")))
        .order_by(Setting.key),
    )
    put(db, "l", "-")

    async def reads():
        seen = []
        for value in ("one", "two", "three"):
            put(db, "k", value)  # committed on a write connection, between two reads of the loop's
            await asyncio.sleep(0)
            seen.append(query.rows({"a": "k", "b": "l"})[0][0]["v"])
        with read_connection(db.read_engine) as connection:
            seen.append(query.rows({"a": "k", "b": "l"}, connection)[0][0]["v"])
        return seen

    assert asyncio.run(reads()) == ["one", "two", "three", "three"]
    # SQLite: one checkout for all four reads (the loop thread's own connection); PostgreSQL's pool,
    # which its writes share, one per read and per write.
    assert checkouts[0] == (1 if db.is_sqlite else 4 + 4)


def test_a_read_that_fails_gives_the_loop_connection_back_and_the_next_read_is_current(db, checkouts):
    query = setting_query(db)
    broken = queries.RawQuery(db.read_engine, select(Setting.value).where(Setting.key == bindparam("key")))
    broken.sql = broken.sql.replace("setting", "no_such_table", 1)

    async def reads():
        put(db, "k", "before")
        assert query.rows({"key": "k"})[0][0]["v"] == "before"
        with pytest.raises(Exception, match="no_such_table"):
            broken.rows({"key": "k"})
        put(db, "k", "after")
        return query.rows({"key": "k"})[0][0]["v"]

    assert asyncio.run(reads()) == "after"
    if db.is_sqlite:
        assert checkouts[0] == 2  # the failed read's connection went back; the next took another
        assert db.read_engine.pool.checkedout() == 1


def test_worker_threads_read_on_pooled_connections_and_give_them_back(db, checkouts):
    query = setting_query(db)
    put(db, "k", "v")
    found = []

    def read():
        found.append(query.rows({"key": "k"})[0][0]["v"])

    threads = [threading.Thread(target=read) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert found == ["v", "v", "v"]
    assert checkouts[0] == (3 if db.is_sqlite else 3 + 1)  # PostgreSQL's writes share the pool
    assert db.read_engine.pool.checkedout() == 0


def test_dispose_gives_the_loop_connections_back(db):
    query = setting_query(db)
    put(db, "k", "v")

    async def read():
        return query.rows({"key": "k"})

    asyncio.run(read())
    assert db.read_engine.pool.checkedout() == (1 if db.is_sqlite else 0)
    db.dispose()
    assert db.read_engine.pool.checkedout() == 0


def test_the_connections_of_loop_threads_that_ended_go_back_to_the_pool(db):
    """However many threads run a loop and end (a test's, a command's), the pool never runs dry."""
    query = setting_query(db)
    put(db, "k", "v")

    async def read():
        return query.rows({"key": "k"})[0][0]["v"]

    found = []
    for _ in range(30):  # more than the pool holds (8, and 16 more)
        thread = threading.Thread(target=lambda: found.append(asyncio.run(read())))
        thread.start()
        thread.join()
    assert found == ["v"] * 30
    assert db.read_engine.pool.checkedout() == (1 if db.is_sqlite else 0)
