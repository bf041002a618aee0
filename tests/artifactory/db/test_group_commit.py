"""Group commit and the durability a write asks for, on SQLite and PostgreSQL."""

import os
import threading

import pytest
from sqlalchemy import select, text

from artifactory.db.models import Setting


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


def blob_info(seed, size=1):
    import hashlib

    from artifactory.blobstore.store import BlobInfo

    data = seed.encode()
    return BlobInfo(
        sha256=hashlib.sha256(data).hexdigest(),
        size=size,
        sha1=hashlib.sha1(data).hexdigest(),  # noqa: S324
        md5=hashlib.md5(data).hexdigest(),  # noqa: S324
        sha512=hashlib.sha512(data).hexdigest(),
    )


def test_statements_sent_ahead_are_seen_by_later_ones_and_their_failure_stays_its_jobs(db):
    """On PostgreSQL the upload statements of a batch travel pipelined (sent ahead, their results
    read later): a later statement of the transaction sees them, and one that fails (here a NULL
    size, caught only when the pipeline is read) fails its own job, not the others'."""
    from artifactory.db import queries
    from artifactory.db.models import Blob

    def touch_then_read(seed):
        def run(session):
            queries.touch_blob(session, blob_info(seed))
            return session.scalar(select(Blob.size).where(Blob.sha256 == blob_info(seed).sha256))

        return run

    def touch_broken(session):
        queries.touch_blob(session, blob_info("broken", size=None))

    outcomes = db.together([(touch_then_read("a"), 1), (touch_broken, 2), (touch_then_read("b"), 3)])
    assert outcomes[0] == (1, None) and outcomes[2] == (1, None)
    assert outcomes[1][0] is None and outcomes[1][1] is not None
    with db.read() as session:
        stored = set(session.scalars(select(Blob.sha256)))
    assert stored == {blob_info("a").sha256, blob_info("b").sha256}


def _repository(db, name):
    from artifactory.db.models import Repository

    with db.write() as session:
        row = Repository(name=name, format="raw", type="hosted", config={}, revision=1)
        session.add(row)
        session.flush()
        return row.id


def test_audit_rows_and_generation_bumps_land_with_the_commit_once_per_name_and_never_after_a_rollback(db):
    from artifactory.db import queries
    from artifactory.db.models import AuditEvent

    first, second = _repository(db, "one"), _repository(db, "two")

    def job(repository_id, names, path):
        def run(session):
            queries.bump_generations(session, repository_id, names)
            queries.add_audit(
                session, [{"action": "asset.stored", "repository": str(repository_id), "path": path}]
            )

        return run

    jobs = [
        (job(second, [("", "b"), ("", "a")], "x"), ("r", 2)),
        (job(first, [("", "a")], "y"), ("r", 1)),
        (job(second, [("", "a")], "z"), ("r", 3)),  # the same name again in the same transaction
    ]
    assert [error for _result, error in db.together(jobs)] == [None, None, None]
    with db.read() as session:
        assert queries.generation(session, second, "", "a") == 1  # moved, once for the transaction
        assert queries.generation(session, second, "", "b") == 1
        assert queries.generation(session, first, "", "a") == 1
        assert sorted(session.scalars(select(AuditEvent.path))) == ["x", "y", "z"]

    with pytest.raises(RuntimeError), db.write() as session:
        job(first, [("", "a")], "never")(session)
        raise RuntimeError("rolled back")
    with db.read() as session:
        assert queries.generation(session, first, "", "a") == 1
        assert "never" not in set(session.scalars(select(AuditEvent.path)))


def test_sqlite_keeps_statement_journals_and_temporary_tables_in_memory(db):
    """A multi-row statement inside a write transaction keeps a statement journal; SQLite spilled
    it to a file made, written and unlinked in the temp directory in nearly every upload commit.
    Every connection of every engine keeps it in memory instead (`temp_store=MEMORY`)."""
    if not db.is_sqlite:
        pytest.skip("SQLite's temp store")

    def temp_files():  # SQLite names its temporary files etilqs_*, unlinked once open
        return [
            link
            for fd in os.listdir("/proc/self/fd")
            if "etilqs_" in (link := os.path.realpath(f"/proc/self/fd/{fd}"))
        ]

    for engine in (db.engine, db.lazy_engine, db.read_engine):
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA temp_store").scalar() == 2  # MEMORY
    with db.write() as session:  # several MiB of statement journal and temporary table
        session.execute(text("CREATE TEMP TABLE t (v TEXT)"))
        rows = (
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 4000) SELECT x FROM c"
        )
        session.execute(text(f"INSERT INTO t SELECT hex(randomblob(512)) FROM ({rows})"))
        session.execute(text("INSERT INTO setting (key, value) SELECT 'k' || x, '{}' FROM (" + rows + ")"))
        session.execute(text("UPDATE setting SET value = '{\"v\": 1}' WHERE key LIKE 'k%'"))
        assert temp_files() == []
        session.execute(text("DROP TABLE t"))


def test_writes_arriving_while_another_process_commits_join_one_batch(db):
    """SQLite: a group commit's leader takes the node's writer lock before it chooses its batch, so
    the writes that queue while another process holds the lock (here: the test, through a file
    description of its own) commit in one transaction once it is free, not one for the leader and
    another for the rest."""
    if not db.is_sqlite:
        pytest.skip("the writer lock is SQLite's")
    import fcntl
    import time

    from sqlalchemy import event

    commits = []
    event.listen(db.engine, "commit", lambda *_: commits.append(1))
    lock = os.open(db._writer_lock.path, os.O_RDWR | os.O_CREAT)
    fcntl.flock(lock, fcntl.LOCK_EX)
    together = db._group._together
    results = {}

    def worker(i):
        results[i] = db.batched(put(f"j{i}", "v"), ("settings", i))

    try:
        first = threading.Thread(target=worker, args=(0,))
        first.start()
        deadline = time.monotonic() + 10
        while not together._leading and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(0.05)  # the leader waits for the lock
        rest = [threading.Thread(target=worker, args=(i,)) for i in range(1, 6)]
        for t in rest:
            t.start()
        while len(together._pending) < 6 and time.monotonic() < deadline:
            time.sleep(0.005)
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)
        os.close(lock)
    for t in [first, *rest]:
        t.join(10)
    assert results == {i: f"j{i}" for i in range(6)}
    assert len(commits) == 1, commits
    assert {f"j{i}" for i in range(6)} <= set(settings(db))
