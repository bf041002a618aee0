"""Has another process or node committed since a mark? How a per-process cache learns, without a
query per request, that what it holds may be stale.

A `Changes` hands out tokens: a cache stamps what it reads from the database with the token taken
*before* the read, and trusts it while `token()` still returns an equal value. When the token moved,
someone may have committed a change since, and the cache checks with the database (for a repository
snapshot, one indexed read of its revision).

- SQLite: `PRAGMA data_version` on a connection of this watcher's own, which never writes: its value
  changes whenever any other connection, in any process, committed (a few microseconds). Exact: a
  commit that returned before the token was taken moves it.
- PostgreSQL, other nodes: every revision bump sends `pg_notify(CHANNEL, ...)` in its own
  transaction (see `queries.bump_revision`); a thread per process LISTENs on a connection of its own
  and moves the repository's token when its notification arrives. Not exact: a notification reaches
  the other processes shortly *after* the commit (usually well under a millisecond, longer on a loaded
  host), so a request that arrives on another node within that window can still be answered from the
  old snapshot. While the listener is not connected (starting, or the connection broke) no token is
  ever equal to another, so every use checks with the database: nothing is missed while
  notifications may be.
- PostgreSQL, this node: the processes that share a data directory (a server's workers, its CLI
  commands) also count their commits that moved a repository in a file they all map
  (`NodeChanges`), after the commit and before its answer; a token includes that count. Exact, as on
  SQLite: a worker sees what another worker acknowledged at its next request.
"""

from __future__ import annotations

import fcntl
import logging
import mmap
import os
import sqlite3
import struct
import threading
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from artifactory.text import ascii_digits

log = logging.getLogger(__name__)

# The notification channel of revision bumps; its payload is "<schema> <repository id> <revision>"
# (several schemas may share one database, as the tests' do: each process minds its own).
CHANNEL = "artifactory_revision"
# The revision notified for a deleted repository: past any it had.
GONE = 2**63 - 1
RECONNECT_SECONDS = 1.0
POLL_SECONDS = 0.5  # how often the listener looks whether it was asked to stop
# The repositories a transaction moved, in `Session.info`: each id with how to read the revision it
# moved to; what `Database.write` counts in the node's file once the transaction has committed.
MOVED = "moved_repositories"


class Changes:
    """No watcher (an in-memory database): tokens never move; caches fall back on their expiry."""

    exact = False

    def token(self) -> Hashable | None:
        """A value that stays equal while no other connection can have committed a change (on
        PostgreSQL: a repository's revision); None when this watcher cannot tell (a cache relies on
        its expiry alone)."""
        return None

    def start(self) -> None:
        """Begin watching (a thread on PostgreSQL); a process's services call it once."""

    def close(self) -> None:
        pass

    def may_have_moved(self, stamped: Hashable, now: Hashable, repository_id: int, revision: int) -> bool:
        """Whether what was committed between the tokens `stamped` and `now` (unequal) may have moved
        the repository past `revision`; True unless the watcher knows better (PostgreSQL's
        notifications name the repository and its new revision)."""
        return True

    def read(self, sql: str, parameters: tuple[Any, ...]) -> tuple[bool, Any]:
        """(True, the first column of the first row, or None) of a small read-only query, run on the
        watcher's own connection where it has one to spare (SQLite: a few microseconds, without a
        pool checkout or the ORM); (False, None) where it has not, and the caller uses its pool."""
        return False, None


class SqliteChanges(Changes):
    exact = True

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None
        self._pid = 0

    def token(self) -> Hashable | None:
        self._connected()
        with self._lock:
            assert self._connection is not None
            row = self._connection.execute("PRAGMA data_version").fetchone()
        return int(row[0])

    def _connected(self) -> None:
        """Open this process's connection if it has none (a forked worker inherits none)."""
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    self._connect()

    def _connect(self) -> None:
        # Autocommit: each PRAGMA is a read transaction of its own, which is what sees other commits.
        # (Reading the WAL-index header from a mapping of the -shm file instead was tried: another
        # process's connection can shrink that file, and the read then killed the server with SIGBUS.)
        connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=15)
        self._connection, self._pid = connection, os.getpid()
        # WAL, as every connection of `db.engine` sets it (this one may come first).
        connection.execute("PRAGMA journal_mode=WAL").fetchone()
        connection.execute("PRAGMA data_version").fetchone()

    def read(self, sql: str, parameters: tuple[Any, ...]) -> tuple[bool, Any]:
        self._connected()
        with self._lock:
            assert self._connection is not None
            row = self._connection.execute(sql, parameters).fetchone()
        return True, None if row is None else row[0]

    def close(self) -> None:
        with self._lock:
            if self._pid == os.getpid():
                if self._connection is not None:
                    self._connection.close()
            self._connection, self._pid = None, 0


class NodeChanges:
    """The commits of this node's processes that moved a repository, in a small file every one of
    them maps: a count of them, and per slot (a repository id modulo SLOTS) the count of the last one
    that moved a repository of that slot, that repository's id and the newest revision this node
    committed for it. A reader whose token holds count c knows whether the repository it looks at may
    have moved since: its slot is past c, and names another repository or a revision past the one the
    reader holds. A writer stores a slot before the count, so a reader that sees the new count sees
    the slot too. A process's own commits are not news to it (its registry takes what they moved, see
    `RepositoryRegistry.advance`): counts it made itself are remembered, and a span of only those
    moved nothing it holds."""

    MAGIC = 0x41_52_54_4E_4F_44_45_31  # "ARTNODE1": a file of another layout is started afresh
    SIZE = 8192
    SLOTS = (SIZE - 16) // 24
    OWN = 256  # how many of its own counts a process remembers

    def __init__(self, path: Path) -> None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                if os.fstat(fd).st_size < self.SIZE:
                    os.ftruncate(fd, self.SIZE)  # never shrunk: a mapping past the end would fault
                self._map = mmap.mmap(fd, self.SIZE)
                if self._word(0) != self.MAGIC:
                    self._map[:] = bytes(self.SIZE)
                    struct.pack_into("<Q", self._map, 0, self.MAGIC)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self._lock = threading.Lock()  # the flock excludes other processes, this the other threads
        self._own: set[int] = set()

    def _word(self, offset: int) -> int:
        return int(struct.unpack_from("<Q", self._map, offset)[0])

    def _slot(self, repository_id: int) -> int:
        return 16 + 24 * (repository_id % self.SLOTS)

    def count(self) -> int:
        return self._word(8)

    def moved_since(self, repository_id: int, since: int, until: int, revision: int) -> bool:
        """Whether a commit of another process counted after `since` (up to `until`) may have moved
        `repository_id` past `revision`."""
        if until - since <= self.OWN and all(count in self._own for count in range(since + 1, until + 1)):
            return False
        slot = self._slot(repository_id)
        if self._word(slot) <= since:
            return False
        return self._word(slot + 8) != repository_id or self._word(slot + 16) > revision

    def committed(self, moved: Mapping[int, int]) -> None:
        """Count a commit of this process that moved these repositories (id: the revision it
        committed), once it has committed."""
        with self._lock:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                count = self.count() + 1
                for repository_id, revision in moved.items():
                    slot = self._slot(repository_id)
                    if self._word(slot + 8) == repository_id:
                        revision = max(revision, self._word(slot + 16))
                    struct.pack_into("<QQ", self._map, slot + 8, repository_id, revision)
                    struct.pack_into("<Q", self._map, slot, count)
                struct.pack_into("<Q", self._map, 8, count)
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            if len(self._own) >= self.OWN:
                self._own = {own for own in self._own if own > count - self.OWN}
            self._own.add(count)

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                self._map.close()
                os.close(self._fd)
                self._fd = -1


class PostgresChanges(Changes):
    def __init__(self, url: str, node: NodeChanges | None = None) -> None:
        self.node = node
        self.conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        # Moved on every (re)connection: what was stamped before may have missed notifications.
        self._epoch = 0
        self._listening = False
        self._seen = 0  # notifications received in this epoch
        # The epoch, and the newest revision notified per repository id in it.
        self._latest: tuple[int, dict[int, int]] = (0, {})
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def token(self) -> Hashable | None:
        if self._thread is None:
            return None
        if not self._listening:
            return object()  # equal to nothing: check with the database every time
        return (self._epoch, self._seen, self.node.count() if self.node is not None else 0)

    def may_have_moved(self, stamped: Hashable, now: Hashable, repository_id: int, revision: int) -> bool:
        epoch, latest = self._latest
        if not (isinstance(stamped, tuple) and isinstance(now, tuple) and stamped[0] == now[0] == epoch):
            return True  # notifications may have been missed in between
        if self.node is not None and self.node.moved_since(repository_id, stamped[2], now[2], revision):
            return True
        return latest.get(repository_id, 0) > revision

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="artifactory-changes", daemon=True)
            self._thread.start()

    def close(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stop.set()
            thread.join(POLL_SECONDS * 4)

    def _run(self) -> None:
        import psycopg

        while not self._stop.is_set():
            try:
                with psycopg.connect(self.conninfo, autocommit=True) as connection:
                    schema = connection.execute("SELECT current_schema()").fetchone()
                    connection.execute(f"LISTEN {CHANNEL}")
                    self._listen(connection, str(schema[0] if schema else ""))
            except Exception:  # noqa: BLE001 - logged; tokens stay unequal until connected again
                log.warning("listening for revision changes failed; reconnecting", exc_info=True)
            finally:
                self._listening = False
            self._stop.wait(RECONNECT_SECONDS)

    def _listen(self, connection: Any, schema: str) -> None:
        self._seen = 0
        self._epoch += 1
        latest: dict[int, int] = {}
        self._latest = (self._epoch, latest)
        self._listening = True
        while not self._stop.is_set():
            for note in connection.notifies(timeout=POLL_SECONDS):
                found_schema, repository_id, revision = (note.payload.split(" ") + ["", ""])[:3]
                if found_schema == schema:
                    if ascii_digits(repository_id) and ascii_digits(revision):
                        key = int(repository_id)
                        latest[key] = max(latest.get(key, 0), int(revision))
                    self._seen += 1


def watch(url: str, node: NodeChanges | None = None) -> Changes:
    """The watcher for the database at `url` (on PostgreSQL, with the node's count of commits)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            return Changes()
        return SqliteChanges(parsed.database)
    return PostgresChanges(url, node)
