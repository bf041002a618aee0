"""Group commit and the durability a write asks for, on SQLite and PostgreSQL."""

import threading

import pytest
from sqlalchemy import select, text

from artifactory.db.engine import Database
from artifactory.db.migrate import upgrade
from artifactory.db.models import Setting


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path):
    url = f"sqlite:///{tmp_path / 'g.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    upgrade(url)
    database = Database(url)
    yield database
    database.dispose()


def settings(db):
    with db.read() as session:
        return {s.key: s.value["v"] for s in session.scalars(select(Setting)) if "v" in s.value}


def put(key, value):
    def run(session):
        session.add(Setting(key=key, value={"v": value}))
        session.flush()
        return key

    return run


def test_concurrent_batched_writes_all_commit_and_a_refusal_stays_its_own(db):
    results, errors = {}, {}

    def worker(i):
        try:
            fn = put(f"k{i}", "v") if i != 3 else put("k0", "duplicate")  # k0 again: refused
            results[i] = db.batched(fn, ("settings", i), durable=i % 2 == 0)
        except Exception as exc:  # noqa: BLE001
            errors[i] = exc

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(results) | set(errors) == set(range(8))
    stored = settings(db)
    assert {f"k{i}" for i in range(8) if i != 3} <= set(stored)
    assert stored["k0"] == "v" or 0 in errors  # whichever came first holds k0, never both


def test_a_write_that_need_not_be_durable_skips_the_sqlite_wal_fsync(db):
    with db.write(durable=False) as session:
        session.add(Setting(key="lazy", value={"v": "1"}))
        if db.is_sqlite:
            assert session.execute(text("PRAGMA synchronous")).scalar() == 1  # NORMAL
    with db.write() as session:
        if db.is_sqlite:
            assert session.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL
    assert settings(db)["lazy"] == "1"
