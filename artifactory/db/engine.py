"""Engines and sessions. SQLite is the embedded default; nothing here may be SQLite-only.

Write transactions on SQLite start with BEGIN IMMEDIATE, so two writers queue on the busy timeout
instead of one of them failing with "database is locked" when it upgrades a read lock. Writers that
go through `Database.write` queue before that on an flock beside the database file: the kernel wakes
the next one when the lock is free, where SQLite's busy handler sleeps up to 100 ms between tries
(which let one busy process starve the others). Write connections use `synchronous=FULL`, so a
commit is on disk when it returns, not only in the WAL's page cache. A transaction that only
coordinates (a proxy's lease) may ask for `durable=False`: on SQLite it commits at
`synchronous=NORMAL`, without the WAL fsync (a process crash loses nothing, a power cut may lose it,
and the next durable commit makes it durable too, the WAL being one sequence); on PostgreSQL it is
an ordinary commit.

Group commit (`Database.batched`): concurrent small write transactions of one process (an upload's
asset row, a proxy's lease) are run together in one transaction and committed once. A caller's work
is never merged into another's failure: if any job raises, or the shared transaction cannot commit,
all of it is rolled back and every job runs again on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Hashable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

from artifactory.batching import Together
from artifactory.db.changes import MOVED, NodeChanges
from artifactory.db.leases import NodeLeases

log = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 15_000
# The most jobs one group commit takes; more wait for the next one.
MAX_BATCH = 64
T = TypeVar("T")


def _sqlite_engine(url: str, begin: str, synchronous: str) -> Engine:
    engine = create_engine(
        url,
        connect_args={"isolation_level": None, "check_same_thread": False, "timeout": 15},
        pool_size=8,
        max_overflow=16,
    )

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        # Temporary tables and statement journals in memory: a multi-row statement inside a write
        # transaction keeps a statement journal, which otherwise spills past 64 KiB to a file
        # created, written and unlinked in the temp directory, in nearly every upload transaction.
        cursor.execute("PRAGMA temp_store=MEMORY")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        # On the driver's own connection: through `exec_driver_sql` the statement would cost Core's
        # whole execution path (events, result set), several times the BEGIN itself.
        connection.connection.driver_connection.execute(begin)

    return engine


# SQLite: the reads the event loop's thread runs itself (`Engine.read_call`: an indexed read costs
# tens of microseconds there, less than a hop to a worker thread) use a pooled DBAPI connection that
# thread keeps checked out, per engine: a checkout and a checkin per read cost the pool's Python
# several times SQLite's own work. Only statements in autocommit run on it, each read to its end, so
# none holds a snapshot past its own read. Kept by engine and thread (the connections of threads
# that have ended go back to the pool); all given back at `dispose`.
_loop_connections: weakref.WeakKeyDictionary[Engine, dict[threading.Thread, Any]] = (
    weakref.WeakKeyDictionary()
)
_loop_connections_lock = threading.Lock()


def loop_connection(engine: Engine) -> Any | None:
    """The calling thread's own pooled DBAPI connection to the SQLite `engine` when the thread runs
    an event loop; None otherwise (on PostgreSQL, and in worker threads), where the caller checks
    one out of the pool for its read."""
    if asyncio._get_running_loop() is None or engine.dialect.name != "sqlite":
        return None
    # By thread, not by its ident: a new thread may be handed the ident of one that has ended.
    current = threading.current_thread()
    held = _loop_connections.get(engine)
    connection = held.get(current) if held is not None else None
    if connection is not None:
        return connection
    with _loop_connections_lock:
        held = _loop_connections.setdefault(engine, {})
        # Threads that ran a loop and have ended (a test's, a CLI command's): their connections go
        # back first, so that the pool never runs out however many loop threads come and go.
        gone = [held.pop(thread) for thread in [t for t in held if not t.is_alive()]]
    for old in gone:
        with contextlib.suppress(Exception):
            old.close()
    connection = engine.raw_connection()
    with _loop_connections_lock:
        _loop_connections.setdefault(engine, {})[current] = connection
    return connection


def drop_loop_connection(engine: Engine) -> None:
    """Give the calling thread's connection back to the pool (after a read that failed on it: the
    pool resets or discards it); the thread's next read checks out another."""
    with _loop_connections_lock:
        connection = _loop_connections.get(engine, {}).pop(threading.current_thread(), None)
    if connection is not None:
        connection.close()


@contextmanager
def read_connection(engine: Engine) -> Iterator[Any]:
    """A DBAPI connection to `engine` for a few reads in a row: the event loop thread's own
    (`loop_connection`), or one checked out of the pool for them."""
    kept = loop_connection(engine)
    if kept is None:
        connection = engine.raw_connection()
        try:
            yield connection
        finally:
            connection.close()
        return
    try:
        yield kept
    except BaseException:
        drop_loop_connection(engine)
        raise


def release_loop_connections(engine: Engine) -> None:
    """Give every thread's connection to `engine` back to its pool (before the pool is disposed)."""
    with _loop_connections_lock:
        held = _loop_connections.pop(engine, {})
    for connection in held.values():
        with contextlib.suppress(Exception):  # a connection already invalidated or closed
            connection.close()


def at_commit(session: Session, key: Hashable, fn: Callable[[], None]) -> None:
    """Run `fn` once, as the last work of the session's transaction (however many of its jobs ask
    with the same key), in the order of the keys: what takes a lock every writer needs (a
    repository's revision) is done there, so that the lock is held for the commit only."""
    session.info.setdefault("at_commit", {}).setdefault(key, fn)


# PostgreSQL, in a transaction that allows it (`Database.write(pipelined=True)`, which group commit
# asks for): the upload path's own statements (`queries._raw`) run in psycopg's pipeline mode, so
# those whose results nobody reads yet travel together and a batch of uploads costs a round trip per
# result read (or lock that must hold, `sync_pipeline`) rather than one per statement; results read
# after the commit cost none. Any other statement (SQLAlchemy's) ends the pipeline first. At the end
# of the transaction the COMMIT travels with what the pipeline still holds (`commit_in_pipeline`); a
# pipelined statement's error surfaces there at the latest, and the transaction is rolled back.
PIPELINE_OK = "pipeline allowed"
PIPELINE_OF = "pipeline of"  # session.info: the info dict of the connection whose pipeline is open
_PIPELINE = "psycopg pipeline"
_PIPELINED = "psycopg pipelined connection"


def sync_pipeline(info: dict[str, Any]) -> None:
    """Send what the connection's open pipeline holds and wait for the results (raising what
    failed): the effects of the statements (their row locks) hold from here on."""
    if _PIPELINE in info:
        info[_PIPELINED][1].sync()


def start_pipeline(session: Session, dbapi_connection: Any) -> None:
    """Open a pipeline on the transaction's connection if the transaction allows one."""
    info = dbapi_connection.info
    if session.info.get(PIPELINE_OK) and _PIPELINE not in info:
        pipeline = dbapi_connection.driver_connection.pipeline()
        info[_PIPELINED] = (dbapi_connection.driver_connection, pipeline.__enter__())
        info[_PIPELINE] = pipeline
        session.info[PIPELINE_OF] = info


def end_pipeline(info: dict[str, Any] | None, error: BaseException | None = None) -> None:
    """Close the connection's open pipeline (sending what it holds and raising what failed), if
    any; after an error, quietly."""
    pipeline = info.pop(_PIPELINE, None) if info is not None else None
    if info is not None:
        info.pop(_PIPELINED, None)
    if pipeline is None:
        return
    if error is None:
        pipeline.__exit__(None, None, None)
        return
    try:
        pipeline.__exit__(type(error), error, error.__traceback__)
    except Exception:  # noqa: BLE001, S110 - the first error is the one raised
        pass


def _end_pipeline_before(connection: Any, *_args: Any) -> None:
    end_pipeline(connection.info)


# A pooled connection idle for longer than this is pinged before it is handed out (SQLAlchemy's
# pre-ping, which costs a round trip on every checkout): a connection the server dropped (a restart,
# a failover) is replaced instead of failing the transaction that takes it; one in use a moment
# ago is not asked again.
PING_AFTER_IDLE_SECONDS = 1.0


def _ping_when_idle(engine: Engine) -> None:
    @event.listens_for(engine, "checkin")
    def _idle(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        if time.monotonic() - record.info.get("idle since", 0.0) > PING_AFTER_IDLE_SECONDS:
            try:
                alive = engine.dialect.do_ping(dbapi_connection)
            except Exception as exc:  # noqa: BLE001 - any failure: the pool connects anew
                raise DisconnectionError(str(exc)) from exc
            if not alive:
                raise DisconnectionError("the database did not answer a ping")


def commit_in_pipeline(session: Session) -> None:
    """End the transaction with a COMMIT sent with the statements its open pipeline holds, if it
    has one (`Database.write`): one round trip for them and the commit."""
    session.flush()  # pending ORM changes go first (a flush ends the pipeline)
    info = session.info.get(PIPELINE_OF)
    if info is not None and _PIPELINE in info:
        info[_PIPELINED][0].cursor().execute("COMMIT")
        end_pipeline(info)  # psycopg now sees no transaction: SQLAlchemy's commit sends nothing


def before_commit(session: Session) -> None:
    hooks = session.info.pop("at_commit", {})
    for key in sorted(hooks, key=repr):
        hooks[key]()


class _LockFile:
    """A thread's own open file description of one of the writer lock's files (an flock belongs to the open
    file description, so threads must not share one), closed when the thread ends. A forked child
    opens its own and closes its copy of this one (which must not keep the parent's lock alive)."""

    def __init__(self, path: Path) -> None:
        self.pid = os.getpid()
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)

    def __del__(self, _close: Callable[[int], None] = os.close) -> None:  # os may be gone at exit
        with contextlib.suppress(OSError):
            _close(self.fd)


class _WriterLock:
    """An exclusive flock held around one write transaction, reentrant within a thread (a nested
    write falls back to SQLite's own busy wait, as it would without this lock). Each thread keeps
    its files open: opening and closing them cost more system calls per transaction.

    The kernel does not queue an flock's waiters in order: a process releasing it and asking again
    at once often got it back first, and the other process's uploads waited several transactions
    (p99 latency 23-29 ms against 17-19 ms, two workers on SQLite). Waiters therefore pass a
    turnstile first (a second lock file, held only while waiting for the first): the one waiting
    holds it, so the one that just released queues behind it and the processes take turns."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._local = threading.local()

    @contextmanager
    def hold(self) -> Iterator[None]:
        if self.path is None or getattr(self._local, "held", False):
            yield
            return
        files: tuple[_LockFile, _LockFile] | None = getattr(self._local, "files", None)
        if files is None or files[0].pid != os.getpid():  # a forked child opens its own
            turnstile = self.path.with_name(self.path.name + "-turn")
            files = self._local.files = (_LockFile(self.path), _LockFile(turnstile))
        lock, turn = files
        fcntl.flock(turn.fd, fcntl.LOCK_EX)
        try:
            fcntl.flock(lock.fd, fcntl.LOCK_EX)
        finally:
            fcntl.flock(turn.fd, fcntl.LOCK_UN)
        self._local.held = True
        try:
            yield
        finally:
            self._local.held = False
            fcntl.flock(lock.fd, fcntl.LOCK_UN)


@dataclass(eq=False)
class _Job:
    fn: Callable[[Session], Any]
    key: Hashable
    durable: bool = True
    finished: bool = False
    alone: bool = False
    result: Any = None
    error: BaseException | None = None

    def outcome(self) -> Any:
        if self.error is not None:
            raise self.error
        if not self.finished:
            raise RuntimeError("the group commit was interrupted")
        return self.result


class GroupCommit:
    """Concurrent small write transactions of a process run as one (`artifactory.batching`)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        # The batch is chosen once the node's writer lock is held (SQLite): what arrives while another
        # process commits joins it.
        self._together: Together[_Job] = Together(self._execute, MAX_BATCH, db.writing)

    def run(self, fn: Callable[[Session], T], key: Hashable = 0, durable: bool = True) -> T:
        job = _Job(fn, key, durable)
        self._together.run(job)
        return job.outcome()  # type: ignore[no-any-return]

    def _execute(self, jobs: Sequence[_Job]) -> None:
        batch = list(jobs)
        # One order for every batch (the callers' keys: a repository, then a path), so concurrent
        # batches of several processes take their row locks in the same order.
        batch.sort(key=lambda j: repr(j.key))
        durable = any(job.durable for job in batch)
        if len(batch) > 1:
            # No savepoint per job: the jobs run one after the other in the shared transaction, and
            # if any of them raises (its own refusal, a deadlock) or the commit fails, all of it is
            # rolled back and every job runs again alone, so no job shares another's failure.
            try:
                with self.db.write(durable, pipelined=True) as session:
                    for job in batch:
                        job.result = job.fn(session)
            except Exception:  # noqa: BLE001 - sorted out by the runs alone below
                for job in batch:
                    job.alone, job.result = True, None
        else:
            batch[0].alone = True
        for job in batch:
            if job.alone:
                try:
                    with self.db.write(job.durable, pipelined=True) as session:
                        job.result = job.fn(session)
                except Exception as exc:  # noqa: BLE001 - handed to its caller
                    job.error = exc
        for job in batch:
            job.finished = True


class Database:
    """A read engine and a write engine (the same one except on SQLite) with session factories.

    `changes_file`: on PostgreSQL, the file in which the processes of this node (those sharing a data
    directory) count their commits that moved a repository (`changes.NodeChanges`), so that they see
    one another's at once; SQLite needs none."""

    def __init__(self, url: str, changes_file: Path | None = None) -> None:
        self.url = url
        parsed = make_url(url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        self.node_changes: NodeChanges | None = None
        if changes_file is not None and not self.is_sqlite:
            try:
                self.node_changes = NodeChanges(changes_file)
            except OSError as exc:
                log.warning(
                    "cannot use %s (%s): this process learns of the node's commits by notification only",
                    changes_file,
                    exc,
                )
        lock_path = None
        # SQLite: proxy fetch leases as kernel locks on a file beside the database (`leases`).
        self.node_leases: NodeLeases | None = None
        if self.is_sqlite:
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
                lock_path = Path(parsed.database + ".writer")
                try:
                    self.node_leases = NodeLeases(Path(parsed.database + ".leases"))
                except OSError as exc:
                    log.warning("cannot use %s.leases (%s): proxy leases are rows", parsed.database, exc)
            self.engine = _sqlite_engine(url, "BEGIN IMMEDIATE", "FULL")
            self.lazy_engine = _sqlite_engine(url, "BEGIN IMMEDIATE", "NORMAL")
            self.read_engine = _sqlite_engine(url, "BEGIN", "NORMAL")
        else:
            # The connection used last goes out first, so that a few connections do most of the work
            # and keep their prepared statements (psycopg prepares a statement on its second use);
            # handed out in turn, each of ten connections had to see a statement five times first.
            self.engine = create_engine(
                url,
                pool_size=10,
                max_overflow=20,
                pool_use_lifo=True,
                connect_args={"prepare_threshold": 2},
            )
            _ping_when_idle(self.engine)
            event.listen(self.engine, "before_cursor_execute", _end_pipeline_before)
            self.lazy_engine = self.read_engine = self.engine
        self._writer = sessionmaker(self.engine, expire_on_commit=False)
        self._lazy_writer = sessionmaker(self.lazy_engine, expire_on_commit=False)
        self._reader = sessionmaker(self.read_engine, expire_on_commit=False)
        self._writer_lock = _WriterLock(lock_path)
        self._group = GroupCommit(self)

    @contextmanager
    def write(self, durable: bool = True, pipelined: bool = False) -> Iterator[Session]:
        """One short write transaction: committed on success, rolled back on error. `durable=False`
        only for what may be lost to a power cut (see the module's docstring)."""
        factory = self._writer if durable else self._lazy_writer
        with self._writer_lock.hold(), factory() as session, session.begin():
            if pipelined and not self.is_sqlite:
                session.info[PIPELINE_OK] = True
            try:
                yield session
                before_commit(session)
                commit_in_pipeline(session)
            except BaseException as exc:
                end_pipeline(session.info.get(PIPELINE_OF), exc)
                raise
        moved = session.info.pop(MOVED, None)
        if moved and self.node_changes is not None:  # committed: before the caller answers anyone
            self.node_changes.committed({repository_id: read() for repository_id, read in moved.items()})

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Hold this node's writer lock (SQLite; nothing on PostgreSQL) across several write
        transactions of this thread, which then do not queue for it again. A group commit takes it
        before choosing its batch: what arrives while another process commits joins the batch."""
        with self._writer_lock.hold():
            yield

    def batched(self, fn: Callable[[Session], T], key: Hashable = 0, durable: bool = True) -> T:
        """`fn(session)` committed with whatever other writes of this process are waiting (group
        commit); blocking, its result or its exception. `fn` must not commit, and may run twice
        (its first run rolled back) when the shared transaction fails. A batch is durable when any
        of its jobs asked to be."""
        return self._group.run(fn, key, durable)

    def together(
        self, jobs: Sequence[tuple[Callable[[Session], Any], Hashable]], durable: bool = True
    ) -> list[tuple[Any, BaseException | None]]:
        """Blocking: jobs gathered by the caller committed as one batch, as `batched` commits a
        batch (one transaction; all of it again one by one if any job raises): per job, its result
        and None, or None and its exception."""
        batch = [_Job(fn, key, durable) for fn, key in jobs]
        self._group._execute(batch)
        outcomes: list[tuple[Any, BaseException | None]] = []
        for job in batch:
            try:
                outcomes.append((job.outcome(), None))
            except Exception as exc:  # noqa: BLE001 - handed to the caller, per job
                outcomes.append((None, exc))
        return outcomes

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only session. On PostgreSQL its transaction is READ ONLY and ends with COMMIT: a
        ROLLBACK would make psycopg forget the connection's prepared statements (and send
        DEALLOCATE ALL), and a COMMIT of a transaction that can write nothing is the same."""
        with self._reader() as session:
            if self.is_sqlite:
                yield session
                return
            session.connection(execution_options={"postgresql_readonly": True})
            yield session
            session.commit()

    def dispose(self) -> None:
        for engine in {self.engine, self.lazy_engine, self.read_engine}:
            release_loop_connections(engine)
            engine.dispose()
        if self.node_changes is not None:
            self.node_changes.close()
        if self.node_leases is not None:
            self.node_leases.close()
