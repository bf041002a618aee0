"""Repository definitions: create, update, delete, and a per-process cache of snapshots.

A snapshot is re-read when it is older than `cache_seconds`. Its revision (what every cached hosted
document and lookup is keyed by) is also checked whenever the database's change token (`db.changes`)
moved since the snapshot was stamped: one indexed read of the revision, and the whole row again only
if the revision moved. So a change committed by any process or node is seen by the next request here
(on SQLite exactly; on PostgreSQL once its notification arrived), while a request that finds the token
unmoved costs no query. A config edit is a revision move too, so it is seen as soon as content is,
and creating or deleting a repository moves the token as well.

Within one request (`RepositoryRegistry.request`), the token is taken once, at the first lookup, and
shared by the others: a group document looks up every member, and each take costs a query on SQLite.
That keeps the rule exact (a commit that returned before the request's first lookup is seen), and a
request sees its repositories as of one moment.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Hashable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from sqlalchemy import bindparam, select

from artifactory.db import changes
from artifactory.db.engine import Database
from artifactory.db.models import Repository
from artifactory.db.queries import RawQuery, bump_revision, notify_revision
from artifactory.formats import FormatRegistry
from artifactory.repository import config as repo_config
from artifactory.repository.model import GROUP, HOSTED, Repo

_REVISION = select(Repository.revision).where(Repository.name == bindparam("name"))
_SNAPSHOT = select(
    Repository.id, Repository.name, Repository.format, Repository.type, Repository.config, Repository.revision
).where(Repository.name == bindparam("name"))


class _RequestToken:
    """The change token of one request, taken at its first lookup; `open` is False once the request
    ended, so a task it started that outlives it takes tokens of its own again."""

    __slots__ = ("token", "taken", "open")

    def __init__(self) -> None:
        self.token: Hashable | None = None
        self.taken = False
        self.open = True


_REQUEST: ContextVar[_RequestToken | None] = ContextVar("artifactory_request_token", default=None)


class RepositoryInUse(Exception):
    def __init__(self, name: str, groups: list[str]) -> None:
        super().__init__(f"repository {name!r} is a member of group {', '.join(groups)}")
        self.groups = groups


class RepositoryExists(Exception):
    pass


def _snapshot(row: Repository) -> Repo:
    return _snapshot_of(row.id, row.name, row.format, row.type, row.config, row.revision)


def _snapshot_of(repository_id: int, name: str, fmt: str, kind: str, config: Any, revision: int) -> Repo:
    return Repo(
        id=repository_id,
        name=name,
        format=fmt,
        type=kind,
        config={k: v for k, v in (config or {}).items() if k != "_state"},
        revision=int(revision),
        state=dict((config or {}).get("_state", {})),
    )


class RepositoryRegistry:
    def __init__(self, db: Database, formats: FormatRegistry, cache_seconds: float = 1.0) -> None:
        self.db = db
        self.formats = formats
        self.cache_seconds = cache_seconds
        self.changes = changes.watch(db.url, db.node_changes)
        # name -> (when read, snapshot, change token taken before it was read or last checked)
        self._cache: dict[str, tuple[float, Repo | None, Hashable]] = {}
        # A snapshot's row, read on a pooled DBAPI connection: the ORM's load of it cost about 0.6 ms,
        # paid by every snapshot past its lifetime (each repository a request names, every second).
        self._load = RawQuery(db.read_engine, _SNAPSHOT)
        self._read_revision = RawQuery(db.read_engine, _REVISION)
        self._lock = threading.Lock()
        # Moved by every change this process makes to a snapshot it holds (`advance`, `forget`): what
        # was derived from snapshots is checked again at once, without waiting for the token to move
        # (on PostgreSQL, this process's own notifications arrive a little after its commits).
        self.local_changes = 0

    def start(self) -> None:
        """Watch for other processes' commits (a listener thread on PostgreSQL); the app's lifespan
        calls it. Without it, a snapshot on PostgreSQL is trusted for `cache_seconds`."""
        self.changes.start()

    def close(self) -> None:
        self.changes.close()

    # -- snapshots ---------------------------------------------------------------------------
    @staticmethod
    @contextmanager
    def request() -> Iterator[None]:
        """Share one change token among the lookups made inside (a request, and the worker threads
        it runs code on: they copy its context)."""
        scope = _RequestToken()
        reset = _REQUEST.set(scope)
        try:
            yield
        finally:
            scope.open = False
            _REQUEST.reset(reset)

    def token(self) -> tuple[Hashable, int] | None:
        """What a cache derived from repository snapshots stamps itself with, taken before it reads:
        while `token()` returns an equal value, no snapshot it read can have moved (the request's change
        token and this process's `local_changes`). None: tokens cannot tell (no watcher); such a cache
        must not be used."""
        token = self._token()
        return None if token is None else (token, self.local_changes)

    def _token(self) -> Hashable | None:
        scope = _REQUEST.get()
        if scope is None or not scope.open:
            return self.changes.token()
        if not scope.taken:
            scope.token, scope.taken = self.changes.token(), True
        return scope.token

    def get(self, name: str) -> Repo | None:
        token = self._token()
        entry = self._cache.get(name)
        now = time.monotonic()
        if entry is not None and now - entry[0] < self.cache_seconds:
            if entry[2] == token:
                return entry[1]
            snapshot = entry[1]
            held = snapshot.revision if snapshot is not None else None
            moved = self.changes.may_have_moved
            if snapshot is None or moved(entry[2], token, snapshot.id, snapshot.revision):
                revision = self._revision(name)
            else:
                revision = held
            if held == revision:
                with self._lock:
                    if self._cache.get(name) is entry:
                        self._cache[name] = (entry[0], snapshot, token)
                return snapshot
        rows = self._load.rows({"name": name})
        repo = _snapshot_of(*rows[0]) if rows else None
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[name] = (now, repo, token)
        return repo

    def _revision(self, name: str) -> int | None:
        done, found = self.changes.read("SELECT revision FROM repository WHERE name = ?", (name,))
        if done:
            return None if found is None else int(found)
        rows = self._read_revision.rows({"name": name})
        return int(rows[0][0]) if rows else None

    def forget(self, name: str) -> None:
        with self._lock:
            self._cache.pop(name, None)
            self.local_changes += 1

    def advance(self, name: str, revision: int) -> None:
        """This process moved `name` to `revision` (a commit's RETURNING): the cached snapshot takes
        it, keeping its age and its token, instead of being read again (once per upload, on the event
        loop too). On SQLite the token moved by that commit costs one read of the revision at the next
        `get`; on PostgreSQL none, the node's file of changes telling the commit was this process's own."""
        with self._lock:
            self.local_changes += 1
            entry = self._cache.get(name)
            if entry is not None and entry[1] is not None and entry[1].revision < revision:
                self._cache[name] = (entry[0], dataclasses.replace(entry[1], revision=revision), entry[2])

    def all(self) -> list[Repo]:
        with self.db.read() as session:
            return [_snapshot(row) for row in session.scalars(select(Repository).order_by(Repository.name))]

    def row(self, name: str) -> dict[str, Any] | None:
        with self.db.read() as session:
            row = session.scalar(select(Repository).where(Repository.name == name))
            return _as_dict(row) if row is not None else None

    # -- changes -----------------------------------------------------------------------------
    def create(self, body: Any) -> dict[str, Any]:
        checked = repo_config.validate(body, self.formats)
        with self.db.write() as session:
            self._check_members(session, checked)
            if session.scalar(select(Repository.id).where(Repository.name == checked["name"])) is not None:
                raise RepositoryExists(checked["name"])
            row = Repository(**checked)  # its revision starts at `first_revision()`
            session.add(row)
            session.flush()
            notify_revision(session, row.id, row.revision)
            result = _as_dict(row)
        self.forget(checked["name"])
        return result

    def update(self, name: str, body: Any) -> dict[str, Any]:
        with self.db.write() as session:
            row = session.scalar(select(Repository).where(Repository.name == name))
            if row is None:
                raise KeyError(name)
            checked = repo_config.validate(body, self.formats, existing=_as_dict(row))
            self._check_members(session, checked)
            state = (row.config or {}).get("_state")
            row.config = {**checked["config"], **({"_state": state} if state else {})}
            session.flush()
            bump_revision(session, row.id)
            session.refresh(row)
            result = _as_dict(row)
        self.forget(name)
        return result

    def set_state(self, name: str, key: str, value: Any) -> None:
        """Server-managed state kept beside the config (cache invalidations); bumps the revision."""
        with self.db.write() as session:
            row = session.scalar(select(Repository).where(Repository.name == name).with_for_update())
            if row is None:
                raise KeyError(name)
            config = dict(row.config or {})
            config["_state"] = {**config.get("_state", {}), key: value}
            row.config = config
            session.flush()
            bump_revision(session, row.id)
        self.forget(name)

    def delete(self, name: str) -> dict[str, Any] | None:
        with self.db.write() as session:
            row = session.scalar(select(Repository).where(Repository.name == name))
            if row is None:
                return None
            groups = [
                g.name
                for g in session.scalars(select(Repository).where(Repository.type == GROUP))
                if name in (g.config or {}).get("members", [])
            ]
            if groups:
                raise RepositoryInUse(name, groups)
            result = _as_dict(row)
            session.delete(row)
            notify_revision(session, row.id, changes.GONE)
        self.forget(name)
        return result

    def _check_members(self, session: Any, checked: dict[str, Any]) -> None:
        if checked["type"] != GROUP:
            return
        rows = {
            r.name: r
            for r in session.scalars(
                select(Repository).where(Repository.name.in_(checked["config"]["members"]))
            )
        }
        for member in checked["config"]["members"]:
            if member not in rows:
                raise repo_config.ConfigError(f"member {member!r} does not exist")
            if rows[member].format != checked["format"]:
                raise repo_config.ConfigError(f"member {member!r} is a {rows[member].format} repository")
        write_member = checked["config"].get("write_member")
        if write_member and rows[write_member].type != HOSTED:
            raise repo_config.ConfigError(f"write_member {write_member!r} must be a hosted repository")
        # No cycles: walk nested groups from the new members back to this group.
        seen: set[str] = set()
        pending = [r for r in rows.values() if r.type == GROUP]
        while pending:
            group = pending.pop()
            if group.name in seen:
                continue
            seen.add(group.name)
            nested = list((group.config or {}).get("members", []))
            if checked["name"] in nested:
                raise repo_config.ConfigError(f"member {group.name!r} contains {checked['name']!r}: a cycle")
            pending.extend(
                session.scalars(
                    select(Repository).where(Repository.name.in_(nested), Repository.type == GROUP)
                )
            )


def _as_dict(row: Repository) -> dict[str, Any]:
    config = {k: v for k, v in (row.config or {}).items() if k != "_state"}
    return {
        "id": row.id,
        "name": row.name,
        "format": row.format,
        "type": row.type,
        "config": config,
        "revision": row.revision,
    }
