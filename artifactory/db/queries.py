"""The SQL the engine runs, as small synchronous functions over a Session.

Portable across SQLite and PostgreSQL: upserts use each dialect's INSERT ... ON CONFLICT.
"""

from __future__ import annotations

import functools
import itertools
import json
import operator
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from sqlalchemy import (
    JSON,
    Engine,
    Integer,
    Row,
    String,
    and_,
    bindparam,
    delete,
    func,
    insert,
    literal_column,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

from artifactory.blobstore.store import BlobInfo
from artifactory.db.changes import CHANNEL as CHANGES_CHANNEL
from artifactory.db.changes import MOVED
from artifactory.db.engine import (
    at_commit,
    drop_loop_connection,
    end_pipeline,
    loop_connection,
    start_pipeline,
    sync_pipeline,
)
from artifactory.db.models import (
    Asset,
    AuditEvent,
    Blob,
    Component,
    NameGeneration,
    Repository,
    Tombstone,
    utcnow,
)
from artifactory.repository.model import ComponentInfo, StoredAsset

_ASSET_COLUMNS = (
    Asset.id,
    Asset.path,
    Asset.blob_sha256,
    Asset.content_type,
    Asset.attributes,
    Asset.updated_at,
    Asset.component_id,
    Blob.size,
    Blob.md5,
    Blob.sha1,
    Blob.sha512,
)


# The hot lookup reads a small blob's bytes kept in its row with it (`Blob.data`): serving it then
# costs no file at all.
_FIND_ASSET = (
    select(*_ASSET_COLUMNS, Blob.data.label("inline"))
    .join(Blob, Blob.sha256 == Asset.blob_sha256)
    .where(Asset.repository_id == bindparam("rid"), Asset.path == bindparam("path"))
)


class RawQuery:
    """A Core statement compiled once for an engine's dialect and run on a pooled DBAPI connection,
    without the ORM and Core execution layers (about ten times the cost of an indexed query itself
    on SQLite): for the hot read path's lookups."""

    def __init__(self, engine: Engine, statement: Any) -> None:
        self.engine = engine
        compiled = statement.compile(dialect=engine.dialect)
        self.sql = compiled.string
        self.order = list(compiled.positiontup or []) if compiled.positional else None
        self.defaults = dict(compiled.params)  # bound constants, such as a LIMIT
        # The JSON columns of the result, decoded here where the driver hands them over as text
        # (SQLite's), so that every caller gets what an ORM read would give it.
        self._json = [i for i, c in enumerate(statement.selected_columns) if isinstance(c.type, JSON)]
        # On PostgreSQL a read alone on its connection runs outside any transaction: one round trip
        # instead of BEGIN, the query and ROLLBACK, and psycopg forgets a connection's prepared
        # statements at every ROLLBACK (the query would be parsed and planned anew every time, and
        # so would the write path's statements on the same pooled connection).
        self._autocommit = engine.dialect.name == "postgresql"

    def rows(self, values: dict[str, Any], connection: Any = None) -> list[Any]:
        """The rows for `values`, on `connection` (a pooled DBAPI connection the caller checked out of
        this query's engine, for several reads in one checkout), on the event loop thread's own
        (`db.engine.loop_connection`, SQLite) or on one checked out for this read."""
        if connection is None:
            kept = loop_connection(self.engine)
            if kept is not None:
                try:
                    return self.rows(values, kept)
                except BaseException:
                    drop_loop_connection(self.engine)
                    raise
            connection = self.engine.raw_connection()
            try:
                if self._autocommit:
                    return self._autocommitted(values, connection.driver_connection)
                return self.rows(values, connection)
            finally:
                connection.close()
        bound = {**self.defaults, **values}
        params: Any = tuple(bound[name] for name in self.order) if self.order is not None else bound
        cursor = connection.cursor()
        try:
            cursor.execute(self.sql, params)
            rows = cursor.fetchall()
        finally:
            cursor.close()  # the statement is reset: no read transaction outlives it
        if self._json:
            return [self._decoded(row) for row in rows]
        return list(rows)

    def _autocommitted(self, values: dict[str, Any], driver: Any) -> list[Any]:
        """`rows` on a psycopg connection switched to autocommit for the one statement (the pool
        hands connections over idle, and takes them back so)."""
        driver.autocommit = True
        try:
            return self.rows(values, driver)
        finally:
            driver.autocommit = False

    def _decoded(self, row: Any) -> tuple[Any, ...]:
        values = list(row)
        for i in self._json:
            if isinstance(values[i], str | bytes):
                values[i] = json.loads(values[i])
        return tuple(values)


class AssetLookup:
    """The hot read path: `find_asset`'s statement as a `RawQuery`."""

    def __init__(self, engine: Engine) -> None:
        self._query = RawQuery(engine, _FIND_ASSET)

    def __call__(
        self, repository: str, repository_id: int, path: str, connection: Any = None
    ) -> StoredAsset | None:
        """The asset, read on `connection` when the caller has one checked out (see `RawQuery.rows`)."""
        rows = self._query.rows({"rid": repository_id, "path": path}, connection)
        return asset_of_row(repository, rows[0]) if rows else None


def asset_of_row(repository: str, row: Any) -> StoredAsset:
    """The asset of a DBAPI row of `_ASSET_COLUMNS`, perhaps followed by the blob's inline bytes
    (SQLite hands JSON and timestamps back as text)."""
    asset_id, path, sha256, content_type, attributes, updated, component_id, size, md5, sha1, sha512 = row[
        :11
    ]
    inline = row[11] if len(row) > 11 else None
    if isinstance(attributes, str | bytes):
        attributes = json.loads(attributes)
    if isinstance(updated, str):
        updated = datetime.fromisoformat(updated)
    return StoredAsset(
        repository=repository,
        path=path,
        sha256=sha256,
        size=size,
        md5=md5,
        sha1=sha1,
        sha512=sha512,
        content_type=content_type,
        updated_at=updated.replace(tzinfo=UTC) if updated.tzinfo is None else updated.astimezone(UTC),
        attributes=attributes or {},
        asset_id=asset_id,
        component_id=component_id,
        inline=bytes(inline) if inline is not None else None,
    )


def _insert(session: Session, model: Any) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(model)
    return sqlite.insert(model)


# Statements of the upload path, built once per dialect with bound parameters: building a statement
# costs more Python than running it, and an upload runs several.
_PREBUILT: dict[tuple[str, str], Any] = {}
# The same statements compiled to the driver's own SQL: (sql, parameter order or None when named,
# default values of literal parameters, names of JSON parameters, names of timestamp parameters).
_RAW: dict[tuple[str, str], _Statement] = {}
# INSERTs that `_raw` runs as one statement for all of its rows: their callers never hand in two
# rows with the same conflict key (PostgreSQL refuses to update a row twice in one statement).
_MULTI_ROW = frozenset(
    {"touch_blob", "save_asset_returning", "component_id", "touch_component", "audit", "bump_generation"}
)


def _prebuilt(session: Session, name: str) -> Any:
    dialect = session.get_bind().dialect.name
    found = _PREBUILT.get((dialect, name))
    if found is not None:
        return found
    if name == "touch_blob":
        names = ["sha256", "size", "md5", "sha1", "sha512", "created_at", "touched_at", "data"]
        inserted = _insert(session, Blob).values({name: bindparam(name) for name in names})
        # Bytes a row keeps are never replaced; a row without them takes those of an inline commit.
        found = inserted.on_conflict_do_update(
            index_elements=["sha256"],
            set_={
                "touched_at": inserted.excluded.touched_at,
                "data": func.coalesce(Blob.data, inserted.excluded.data),
            },
        )
    elif name == "save_asset_returning":
        # The component is given by its id, or else named (NULLs: none): the row `touch_components`
        # wrote earlier in the transaction is found by the statement itself, so that nothing has to
        # be read back in between (on PostgreSQL the transaction's statements travel together).
        changed = ["blob_sha256", "content_type", "attributes", "component_id", "conflict_key", "updated_at"]
        names = ["repository_id", "path", "created_at", "blob_sha256", "content_type", "attributes"]
        named = (
            select(Component.id)
            .where(
                Component.repository_id == bindparam("component_repository_id"),
                Component.namespace == bindparam("component_namespace"),
                Component.name == bindparam("component_name"),
                Component.version == bindparam("component_version"),
            )
            .scalar_subquery()
        )
        inserted = _insert(session, Asset).values(
            {
                **{name: bindparam(name) for name in [*names, "conflict_key", "updated_at"]},
                "component_id": func.coalesce(bindparam("component_id", type_=Integer), named),
            }
        )
        found = inserted.on_conflict_do_update(
            index_elements=["repository_id", "path"], set_={k: inserted.excluded[k] for k in changed}
        ).returning(Asset.id, Asset.repository_id, Asset.path, Asset.component_id)
    elif name in ("component_id", "touch_component"):
        # A no-op update on conflict: RETURNING then names the row whether or not it was new, and
        # the row stays locked (not deleted under the transaction) either way.
        keys = ["repository_id", "namespace", "name", "version"]
        inserted = _insert(session, Component).values(
            {name: bindparam(name) for name in [*keys, "attributes", "created_at"]}
        )
        found = inserted.on_conflict_do_update(index_elements=keys, set_={"name": inserted.excluded.name})
        if name == "component_id":
            found = found.returning(Component.id, *(getattr(Component, key) for key in keys))
        else:
            found = found.inline()  # nothing read back: not even the new row's id
    elif name == "bump_revision":
        # On PostgreSQL with the notification of `notify_revision`, in the same statement.
        notify: list[Any] = [literal_column(_NOTIFY_BUMPED)] if dialect == "postgresql" else []
        found = _BUMP_REVISION.returning(Repository.revision, *notify)
    elif name == "audit":
        columns = ["at", "actor", "action", "repository", "path", "details"]
        # Inline: not even the new row's id is read back.
        found = insert(AuditEvent).values({column: bindparam(column) for column in columns}).inline()
    elif name == "bump_generation":
        values: dict[str, Any] = {"repository_id": bindparam("rid"), "namespace": bindparam("namespace")}
        statement = _insert(session, NameGeneration).values(**values, name=bindparam("name"), generation=1)
        found = statement.on_conflict_do_update(
            index_elements=["repository_id", "namespace", "name"],
            set_={"generation": NameGeneration.generation + 1},
        )
    else:
        raise KeyError(name)
    _PREBUILT[(dialect, name)] = found
    return found


_BUMP_REVISION = (
    update(Repository).where(Repository.id == bindparam("rid")).values(revision=Repository.revision + 1)
)
_JSON_PARAMETERS = frozenset({"attributes", "details"})
_TIME_PARAMETERS = frozenset({"created_at", "touched_at", "updated_at", "at"})
_DBAPI = "artifactory.dbapi"


def _cursor(session: Session, pipelined: bool = False, native: bool = False) -> tuple[str, Any]:
    """The dialect and a DBAPI cursor on the session's connection, inside its transaction (pending
    ORM changes are flushed first, as `session.execute` would). `pipelined`: on PostgreSQL, in psycopg's
    pipeline mode where the transaction allows it (see `db.engine.PIPELINE_OK`): results (and
    `rowcount`) only once read with a fetch; otherwise any open pipeline is ended first. `native`: on
    PostgreSQL a cursor that takes the server's own `$1` placeholders (psycopg's `RawCursor`), so that
    psycopg sends the statement as it is rather than parsing it for `%s` (which it does anew for
    every statement of over 50 parameters or 4 KB: most statements of a batch of uploads)."""
    session.flush()  # nothing to do, cheaply found, when no ORM object is pending (the upload path)
    # The connection of the session's transaction, looked up once per transaction (it costs more
    # than a statement).
    transaction = session.get_transaction()
    found = session.info.get(_DBAPI)
    if found is None or found[0] is not transaction:
        connection = session.connection()
        found = (transaction, connection.dialect.name, connection.connection)
        session.info[_DBAPI] = found
    if found[1] == "postgresql":
        if pipelined:
            start_pipeline(session, found[2])
        else:
            end_pipeline(found[2].info)
        if native:
            from psycopg import RawCursor

            return found[1], RawCursor(found[2].driver_connection)  # type: ignore[arg-type]
    return found[1], found[2].cursor()


class _Statement(NamedTuple):
    """A prebuilt statement compiled to the driver's own positional SQL."""

    sql: str  # one row's statement as the driver takes it: `?` on SQLite, `$1`... on PostgreSQL
    template: str  # the same with `?` or `%s` placeholders, which an INSERT's rows repeat
    order: list[str]  # its parameters, in order
    defaults: dict[str, Any]  # values of literal parameters
    json_names: frozenset[str]
    time_names: frozenset[str]
    # An INSERT of `_MULTI_ROW`: where its one row of placeholders is in `template`, and how many
    # parameters come before it and in it (those after it are literals, the same for every row).
    values: tuple[int, int, int, int] | None
    ordered: Callable[[Mapping[str, Any]], tuple[Any, ...]]  # a row's values in `order`

    def of_rows(self, params: Sequence[tuple[Any, ...]]) -> tuple[str, tuple[Any, ...]]:
        """The statement inserting every row of `params` at once (an INSERT's VALUES row repeated),
        and its parameters."""
        assert self.values is not None
        start, end, before, inside = self.values
        key = (self.template, len(params))
        sql = _ROWS_SQL.get(key)
        if sql is None:
            template = self.template
            sql = template[:start] + ", ".join([template[start:end]] * len(params)) + template[end:]
            sql = _native(sql) if self.sql != template else sql
            if len(_ROWS_SQL) > 1024:
                _ROWS_SQL.clear()
            _ROWS_SQL[key] = sql
        first = params[0]
        if before == 0 and inside == len(first):  # every parameter is in the row (the usual case)
            return sql, tuple(itertools.chain.from_iterable(params))
        rows = itertools.chain.from_iterable(row[before : before + inside] for row in params)
        return sql, (*first[:before], *rows, *first[before + inside :])


# `_Statement.of_rows`'s statements, by template and number of rows.
_ROWS_SQL: dict[tuple[str, int], str] = {}


def _native(sql: str) -> str:
    """A statement of `%s` placeholders (`%%` for a percent sign) in PostgreSQL's own form: `$1`,
    `$2`... in order, and `%` as itself."""
    numbered: list[str] = []
    count = 0
    for part in re.split(r"(%%|%s)", sql):
        if part == "%s":
            count += 1
            numbered.append(f"${count}")
        else:
            numbered.append("%" if part == "%%" else part)
    return "".join(numbered)


# Every dialect's statements compiled positionally (`?` on SQLite, `%s` on PostgreSQL), so that a
# statement of several rows is its one row's placeholders repeated and its parameters in sequence.
_POSITIONAL: dict[type, Any] = {}


def _positional(dialect: Any) -> Any:
    if dialect.positional:
        return dialect
    found = _POSITIONAL.get(type(dialect))
    if found is None:
        found = _POSITIONAL[type(dialect)] = type(dialect)(paramstyle="format")
    return found


def _values_span(sql: str, order: list[str], literals: dict[str, Any]) -> tuple[int, int, int, int] | None:
    """Where the parenthesised row after an INSERT's VALUES starts and ends, and how many of the
    parameters in `order` come before it and in it; None if a parameter after it is not a literal."""
    placeholder = "?" if "?" in sql else "%s"
    start = sql.find(" VALUES (")
    if not sql.startswith("INSERT") or start < 0:
        return None
    start += len(" VALUES ")
    depth = 0
    for end in range(start, len(sql)):
        depth += {"(": 1, ")": -1}.get(sql[end], 0)
        if depth == 0:
            before = sql[:start].count(placeholder)
            inside = sql[start : end + 1].count(placeholder)
            if any(name not in literals for name in order[before + inside :]):
                return None
            return start, end + 1, before, inside
    return None


def _ordered(order: list[str]) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    """A row's values as a tuple in `order` (itemgetter builds it in C, but makes no tuple of one
    name, and none of no names)."""
    if len(order) > 1:
        return operator.itemgetter(*order)  # type: ignore[return-value]
    return lambda values: tuple(values[key] for key in order)


def _raw_statement(session: Session, dialect: str, name: str) -> _Statement:
    found = _RAW.get((dialect, name))
    if found is None:
        statement = _prebuilt(session, name)
        compiled = statement.compile(dialect=_positional(session.get_bind().dialect))
        order = list(compiled.positiontup or [])
        names = set(order)
        defaults = {k: v for k, v in compiled.params.items() if v is not None}
        # An INSERT also binds the columns it leaves out that have a constant default in the model.
        for column in statement.table.columns if statement.is_insert else ():
            default = column.default
            if column.name in names and default is not None and default.is_scalar:
                defaults.setdefault(column.name, default.arg)
        template = compiled.string
        found = _Statement(
            _native(template) if dialect == "postgresql" else template,
            template,
            order,
            defaults,
            frozenset(names & _JSON_PARAMETERS),
            frozenset(names & _TIME_PARAMETERS),
            _values_span(template, order, defaults) if name in _MULTI_ROW else None,
            _ordered(order),
        )
        _RAW[(dialect, name)] = found
    return found


def _bind_json(value: Any) -> str:
    """A JSON value as the driver sends it: its text, which the statement casts (`$1::JSON` on
    PostgreSQL, which takes text of unknown type; a JSON column is text on SQLite). Most are empty."""
    return "{}" if value == {} else json.dumps(value)


def _bind_time(dialect: str, value: datetime) -> Any:
    """A timestamp as SQLAlchemy's types would bind it: in UTC, zoneless text on SQLite."""
    if dialect == "sqlite":
        return _sqlite_time(value)
    if value.tzinfo is not None and value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value


@functools.lru_cache(maxsize=16)
def _sqlite_time(value: datetime) -> str:
    """A timestamp as SQLite stores it (zoneless UTC text); cached, as one upload binds the same
    moment to several columns and rows."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")


def _raw(session: Session, name: str, rows: Sequence[dict[str, Any]], pipelined: bool = True) -> Any:
    """Run a prebuilt upload statement on the session's DBAPI connection, without the ORM and Core
    execution layers (several times the cost of the statement itself on SQLite): an INSERT of
    `_MULTI_ROW` once for all of `rows`, any other statement once per row; the cursor, for the
    RETURNING rows (fetch them: never read its rowcount), after a single statement. Pipelined on
    PostgreSQL (see `_cursor`); unless told not to, a statement whose effect (a row lock) must hold
    before the caller acts outside the database is sent at once, with what the pipeline holds, and
    waited for."""
    dialect, cursor = _cursor(session, pipelined=True, native=True)
    statement = _raw_statement(session, dialect, name)
    params = []
    defaults, json_names, time_names, ordered = (
        statement.defaults,
        statement.json_names,
        statement.time_names,
        statement.ordered,
    )
    for row in rows:
        values = {**defaults, **row}
        for key in json_names:
            values[key] = _bind_json(values[key])
        for key in time_names:
            values[key] = _bind_time(dialect, values[key])
        params.append(ordered(values))
    if len(params) == 1:
        cursor.execute(statement.sql, params[0])
    elif statement.values is not None:
        cursor.execute(*statement.of_rows(params))
    else:
        cursor.executemany(statement.sql, params)
    if not pipelined:
        sync_pipeline(session.info[_DBAPI][2].info)
    return cursor


def upsert(
    session: Session, model: Any, values: dict[str, Any], keys: Sequence[str], update_keys: Iterable[str]
) -> None:
    statement = _insert(session, model).values(**values)
    updates = {k: statement.excluded[k] for k in update_keys}
    if updates:
        statement = statement.on_conflict_do_update(index_elements=list(keys), set_=updates)
    else:
        statement = statement.on_conflict_do_nothing(index_elements=list(keys))
    session.execute(statement)


def insert_ignore(session: Session, model: Any, values: dict[str, Any], keys: Sequence[str]) -> bool:
    """Insert unless the key exists; True if this call inserted the row.

    Told by RETURNING, not the rowcount: psycopg reports -1 for an INSERT, which once made every
    caller think it had won (and broke the proxy's single-flight on PostgreSQL).
    """
    statement = (
        _insert(session, model)
        .values(**values)
        .on_conflict_do_nothing(index_elements=list(keys))
        .returning(getattr(model, keys[0]))
    )
    return session.execute(statement).first() is not None


def to_asset(repository: str, row: Row[Any]) -> StoredAsset:
    return StoredAsset(
        repository=repository,
        path=row.path,
        sha256=row.blob_sha256,
        size=row.size,
        md5=row.md5,
        sha1=row.sha1,
        sha512=row.sha512,
        content_type=row.content_type,
        updated_at=row.updated_at,
        attributes=row.attributes or {},
        asset_id=row.id,
        component_id=row.component_id,
        inline=_inline_of(row),
    )


def _inline_of(row: Row[Any]) -> bytes | None:
    inline = row._mapping.get("inline")
    return bytes(inline) if inline is not None else None


def find_asset(session: Session, repository_id: int, path: str) -> Row[Any] | None:
    return session.execute(_FIND_ASSET, {"rid": repository_id, "path": path}).first()


_LOCK_ASSET = (
    select(Asset.id)
    .where(Asset.repository_id == bindparam("rid"), Asset.path == bindparam("path"))
    .with_for_update()
)


def lock_component(session: Session, component_id: int) -> None:
    """Hold the component's row lock until the transaction ends (PostgreSQL), as a commit of one of
    its files does (`ensure_components`) before it writes the files' rows."""
    session.execute(select(Component.id).where(Component.id == component_id).with_for_update())


def lock_asset(session: Session, repository_id: int, path: str) -> Row[Any] | None:
    """`find_asset`, with the asset's row locked until the transaction ends (PostgreSQL; a SQLite
    write transaction is exclusive already): a concurrent commit of the same path waits, or has
    committed and is what this returns. The lock is taken alone, the row read after it: a locking
    read joined to the blob would re-check the join against the blob row it saw before waiting,
    and miss a row the commit it waited for gave other bytes."""
    if session.execute(_LOCK_ASSET, {"rid": repository_id, "path": path}).first() is None:
        return None
    return find_asset(session, repository_id, path)


def assets_under(session: Session, repository_id: int, prefix: str, limit: int = 10_000) -> list[Row[Any]]:
    query = (
        select(*_ASSET_COLUMNS)
        .join(Blob, Blob.sha256 == Asset.blob_sha256)
        .where(Asset.repository_id == repository_id)
    )
    if prefix:
        query = query.where(starts_with(Asset.path, prefix))
    return list(session.execute(query.order_by(bytewise(Asset.path)).limit(limit)))


# Paths starting with a prefix. Not LIKE: SQLite's is case-insensitive for ASCII ("A/" matched "a/x"),
# and PostgreSQL uses an index for a LIKE prefix only under the "C" collation. A range of code points
# instead: in that order (UTF-8 bytes: SQLite's BINARY, PostgreSQL's "C") the paths starting with P are
# exactly those from P up to `prefix_end(P)`, the (repository_id, path) index's range scan on SQLite.
# On PostgreSQL the comparison is made in "C" (`bytewise`), which is exact whatever the database's
# collation; the index serves the range only where the path column's collation is "C" itself.
_LAST_CHARACTER = chr(0x10FFFF)


class bytewise(FunctionElement[str]):
    """A text column compared and ordered by code point: `column COLLATE "C"` on PostgreSQL, the
    column itself on SQLite (whose default collation already is)."""

    type = String()
    inherit_cache = True


@compiles(bytewise)
def _bytewise(element: bytewise, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.clauses, **kw))


@compiles(bytewise, "postgresql")
def _bytewise_postgresql(element: bytewise, compiler: Any, **kw: Any) -> str:
    return f'{compiler.process(element.clauses, **kw)} COLLATE "C"'


def prefix_end(prefix: str) -> str | None:
    """The least text after every text starting with `prefix`, in code-point order; None if there
    is none (`prefix` is empty or only U+10FFFF)."""
    stem = prefix.rstrip(_LAST_CHARACTER)
    if not stem:
        return None
    following = ord(stem[-1]) + 1
    if 0xD800 <= following <= 0xDFFF:  # surrogates are no text: next comes U+E000
        following = 0xE000
    return stem[:-1] + chr(following)


def starts_with(column: Any, prefix: Any, end: Any = None) -> ColumnElement[bool]:
    """`column` starts with `prefix`, as a range an index on the column can scan (see above).
    `prefix` is a text, or a bind parameter whose value is one; then `end` is a bind parameter
    whose value is `prefix_end` of it, or None (no upper bound)."""
    if isinstance(prefix, str):
        end = prefix_end(prefix)
    column = bytewise(column)
    if end is None:
        return column >= prefix  # type: ignore[no-any-return]
    return and_(column >= prefix, column < end)


def touch_blob(session: Session, info: BlobInfo, until: datetime | None = None) -> None:
    """Record (or refresh) a blob before its bytes are promoted, so GC never collects it mid-upload.

    `until` (a moment in the future) keeps an unreferenced blob from GC until then whatever grace GC
    is given: a commit reserves its blobs that way before it promotes them.
    """
    touch_blobs(session, [info], until)


def touch_blobs(
    session: Session,
    infos: Iterable[BlobInfo],
    until: datetime | None = None,
    wait: bool = True,
    inline: Mapping[str, bytes] | None = None,
) -> None:
    """`touch_blob` of several blobs in one statement, in the order of their digests (the order in
    which every transaction takes their row locks). `wait=False`: on PostgreSQL the statement may
    still be on its way when this returns; the answer of the caller's next read comes after it.
    `inline`: the bytes, by sha256, of blobs whose rows keep them (a row that has them keeps its own)."""
    now = until or utcnow()
    inline = inline or {}
    unique = {info.sha256: info for info in infos}
    rows = [
        {
            "sha256": info.sha256,
            "size": info.size,
            "md5": info.md5,
            "sha1": info.sha1,
            "sha512": info.sha512,
            "created_at": now,
            "touched_at": now,
            "data": inline.get(info.sha256),
        }
        for info in (unique[sha256] for sha256 in sorted(unique))
    ]
    # Waited for: the rows' locks must be held, not merely asked for, before the caller looks for
    # the bytes (GC deletes a blob under that lock).
    if rows:
        _raw(session, "touch_blob", rows, pipelined=not wait).close()


def inline_bytes(session: Session, sha256: str) -> bytes | None:
    """The bytes a blob keeps in its row, if it does."""
    data = session.scalar(select(Blob.data).where(Blob.sha256 == sha256))
    return bytes(data) if data is not None else None


def lock_repository(session: Session, repository_id: int) -> None:
    """Hold the repository's row lock until the transaction ends (SQLite: the write transaction
    is already exclusive), so checks and writes of concurrent commits apply one after the other."""
    session.execute(select(Repository.id).where(Repository.id == repository_id).with_for_update())


# Built once: an upload's policy check runs these twice (before and inside its commit), and building
# a statement costs SQLAlchemy more than SQLite takes to run it.
_FIND_CONFLICT = (
    select(Asset.path)
    .where(Asset.repository_id == bindparam("rid"), Asset.conflict_key == bindparam("key"))
    .limit(1)
)
_TOMBSTONED = select(Tombstone.path).where(
    Tombstone.repository_id == bindparam("rid"), Tombstone.key == bindparam("key")
)


def find_conflict(session: Session, repository_id: int, conflict_key: str) -> str | None:
    """The path of an asset of this repository stored under `conflict_key`, if any."""
    return session.scalar(_FIND_CONFLICT, {"rid": repository_id, "key": conflict_key})


def bump_revision(session: Session, repository_id: int) -> int:
    """Move the repository's revision; the new one. On PostgreSQL the same transaction notifies the
    other processes and nodes (`db.changes`), so their snapshots of the repository are checked again."""
    return _bump_revision(session, repository_id)()


# Sent at commit (PostgreSQL delivers notifications only then, and never those of a rollback).
_NOTIFY_REVISION = f"SELECT pg_notify('{CHANGES_CHANNEL}', current_schema() || ' ' || %s)"
_NOTIFY_BUMPED = (
    f"pg_notify('{CHANGES_CHANNEL}', current_schema() || ' ' || repository.id || ' ' || repository.revision)"
)


def _bump_revision(session: Session, repository_id: int) -> Callable[[], int]:
    """`bump_revision`, its new revision from the function returned: on PostgreSQL read only when
    called (call it before the transaction ends, or after it has committed), so that the statement
    travels with the rest of the transaction's pipeline."""
    cursor = _raw(session, "bump_revision", [{"rid": repository_id}])
    revision: list[int] = []

    def read() -> int:
        if not revision:
            revision.append(int(cursor.fetchone()[0]))
            cursor.close()
        return revision[0]

    _moved(session, repository_id, read)

    if session.get_bind().dialect.name != "postgresql":
        read()  # SQLite: the statement must be done before the commit
    return read


def notify_revision(session: Session, repository_id: int, revision: int) -> None:
    """On PostgreSQL, tell the listeners of `db.changes` that the repository moved to `revision`
    once this transaction commits; pipelined where the transaction allows it (nothing reads it)."""
    dialect, cursor = _cursor(session, pipelined=True)
    if dialect == "postgresql":
        cursor.execute(_NOTIFY_REVISION, (f"{repository_id} {revision}",))
        _moved(session, repository_id, lambda: revision)
    cursor.close()


def _moved(session: Session, repository_id: int, revision: Callable[[], int]) -> None:
    """Note that the transaction moves the repository to `revision()` (readable once it has
    committed): `Database.write` then counts it in the node's file of changes (PostgreSQL; on SQLite
    every commit moves every watcher's token)."""
    session.info.setdefault(MOVED, {})[repository_id] = revision


def bump_revision_at_commit(session: Session, repository_id: int) -> Callable[[], int]:
    """Move the repository's revision once for the whole transaction, as its last statement (see
    `at_commit`); the new revision, from the function returned, once the transaction is done."""
    bumped: dict[int, Callable[[], int]] = session.info.setdefault("bumped_revisions", {})

    def bump() -> None:
        bumped[repository_id] = _bump_revision(session, repository_id)

    at_commit(session, ("revision", repository_id), bump)
    return lambda: bumped[repository_id]()


def _at_commit_rows(session: Session, statement: str) -> list[dict[str, Any]]:
    """Rows for a prebuilt statement that nothing in the transaction reads back, inserted all at
    once as the transaction commits (`at_commit`): a batch of uploads pays one statement for them,
    not one per upload."""
    key = ("rows", statement)
    rows: list[dict[str, Any]] | None = session.info.get(key)
    if rows is None:
        rows = session.info[key] = []

        def insert() -> None:
            pending = session.info.pop(key, [])
            if statement == "bump_generation":
                # In one order across the transaction's jobs, as concurrent transactions lock them.
                names = sorted({_name_key(r) for r in pending})
                pending = [dict(zip(_NAME_KEYS, k, strict=True)) for k in names]
            if pending:
                _raw(session, statement, pending).close()

        at_commit(session, key, insert)
    return rows


_NAME_KEYS = ("rid", "namespace", "name")


def _name_key(row: dict[str, Any]) -> tuple[int, str, str]:
    return row["rid"], row["namespace"], row["name"]


def add_audit(session: Session, events: Sequence[dict[str, Any]]) -> None:
    """Audit events as rows (keys: actor, action, repository, path, details), without the ORM's
    unit of work; written as the transaction commits."""
    if events:
        now = utcnow()
        base = {"at": now, "actor": "", "repository": "", "path": "", "details": {}}
        _at_commit_rows(session, "audit").extend({**base, **event} for event in events)


ComponentKey = tuple[int, str, str, str]  # repository id, namespace, name, version


def ensure_component(
    session: Session,
    repository_id: int,
    namespace: str,
    name: str,
    version: str,
    attributes: dict[str, Any] | None,
) -> int:
    values = {"repository_id": repository_id, "namespace": namespace, "name": name, "version": version}
    if not attributes:
        # The upload path (a raw file is its own component): one statement, no attributes to merge.
        key = (repository_id, namespace, name, version)
        return ensure_components(session, [key])[key]
    insert_ignore(
        session, Component, {**values, "attributes": attributes, "created_at": utcnow()}, list(values)
    )
    component_id = session.scalar(
        select(Component.id).where(*[getattr(Component, k) == v for k, v in values.items()])
    )
    assert component_id is not None
    current = session.scalar(select(Component.attributes).where(Component.id == component_id)) or {}
    if any(current.get(k) != v for k, v in attributes.items()):
        session.execute(
            update(Component).where(Component.id == component_id).values(attributes={**current, **attributes})
        )
    return component_id


def _component_rows(keys: Iterable[ComponentKey]) -> list[dict[str, Any]]:
    now = utcnow()
    return [
        {
            "repository_id": rid,
            "namespace": ns,
            "name": name,
            "version": version,
            "attributes": {},
            "created_at": now,
        }
        # In one order for every transaction, as concurrent ones take the rows' locks.
        for rid, ns, name, version in sorted(set(keys))
    ]


def ensure_components(session: Session, keys: Iterable[ComponentKey]) -> dict[ComponentKey, int]:
    """The id of each component (created without attributes where missing), in one statement."""
    rows = _component_rows(keys)
    if not rows:
        return {}
    cursor = _raw(session, "component_id", rows)
    found = {(rid, ns, name, version): int(cid) for cid, rid, ns, name, version in cursor.fetchall()}
    cursor.close()
    return found


def touch_components(session: Session, keys: Iterable[ComponentKey]) -> None:
    """`ensure_components` with nothing read back: the assets that `save_assets` stores in the same
    transaction name their components (`NewAsset.component`). On PostgreSQL the statement may still
    be on its way when this returns (pipelined)."""
    rows = _component_rows(keys)
    if rows:
        _raw(session, "touch_component", rows).close()


@dataclass(frozen=True)
class NewAsset:
    """An asset row to store (or replace) with `save_assets`."""

    repository_id: int
    path: str
    sha256: str
    content_type: str
    attributes: dict[str, Any]
    component_id: int | None
    conflict_key: str | None = None
    # (namespace, name, version) of a component of the asset's repository that `touch_components`
    # wrote in this transaction, for an asset whose `component_id` is None.
    component: tuple[str, str, str] | None = None


def save_asset(
    session: Session,
    repository_id: int,
    path: str,
    sha256: str,
    content_type: str,
    attributes: dict[str, Any],
    component_id: int | None,
    conflict_key: str | None = None,
    now: datetime | None = None,
) -> Callable[[], int]:
    """Store (or replace) the asset at `path`, its `updated_at` `now` (default: the present). Its id
    is read when the function returned is called (call it before the transaction ends): on
    PostgreSQL the statements in between travel with this one (see `_cursor`)."""
    asset = NewAsset(repository_id, path, sha256, content_type, attributes, component_id, conflict_key)
    ids = save_assets(session, [asset], now)
    return lambda: ids()[(repository_id, path)][0]


def save_assets(
    session: Session, assets: Sequence[NewAsset], now: datetime | None = None
) -> Callable[[], dict[tuple[int, str], tuple[int, int | None]]]:
    """`save_asset` of several assets (no two at the same path of a repository) in one statement;
    per (repository id, path), the asset's id and its component's, from the function returned: on
    PostgreSQL read only when it is first called (before the transaction ends, or after it has
    committed), so that the statement travels with the rest of the transaction's pipeline."""
    now = now or utcnow()
    cursor = _raw(
        session,
        "save_asset_returning",
        [
            {
                "repository_id": a.repository_id,
                "path": a.path,
                "blob_sha256": a.sha256,
                "content_type": a.content_type,
                "attributes": a.attributes,
                "component_id": a.component_id,
                "component_repository_id": a.repository_id if a.component is not None else None,
                "component_namespace": a.component[0] if a.component is not None else None,
                "component_name": a.component[1] if a.component is not None else None,
                "component_version": a.component[2] if a.component is not None else None,
                "conflict_key": a.conflict_key,
                "created_at": now,
                "updated_at": now,
            }
            # In one order for every transaction, as concurrent ones take the rows' locks.
            for a in sorted(assets, key=lambda a: (a.repository_id, a.path))
        ],
    )
    ids: dict[tuple[int, str], tuple[int, int | None]] = {}

    def asset_ids() -> dict[tuple[int, str], tuple[int, int | None]]:
        if not ids:
            ids.update(
                {
                    (rid, path): (int(aid), int(cid) if cid is not None else None)
                    for aid, rid, path, cid in cursor.fetchall()
                }
            )
            cursor.close()
        return ids

    if session.get_bind().dialect.name != "postgresql":
        asset_ids()  # SQLite: the statement must be done before the commit
    return asset_ids


def bump_generations(session: Session, repository_id: int, names: Iterable[tuple[str, str]]) -> None:
    """Move the generation of each (namespace, name) as the transaction commits, all of its names
    together in sorted order, so that concurrent transactions take the row locks in one order."""
    rows = [{"rid": repository_id, "namespace": ns, "name": name} for ns, name in set(names)]
    if rows:
        _at_commit_rows(session, "bump_generation").extend(rows)


def generation(session: Session, repository_id: int, namespace: str, name: str) -> int:
    """A name's generation (0: never changed)."""
    found = session.scalar(
        select(NameGeneration.generation).where(
            NameGeneration.repository_id == repository_id,
            NameGeneration.namespace == namespace,
            NameGeneration.name == name,
        )
    )
    return int(found or 0)


def component_name(session: Session, component_id: int) -> tuple[str, str] | None:
    row = session.execute(
        select(Component.namespace, Component.name).where(Component.id == component_id)
    ).first()
    return (row.namespace, row.name) if row is not None else None


def add_tombstone(session: Session, repository_id: int, key: str, path: str) -> None:
    values = {"repository_id": repository_id, "key": key, "path": path}
    insert_ignore(session, Tombstone, values, ["repository_id", "key"])


def tombstoned(session: Session, repository_id: int, key: str) -> str | None:
    """The path whose deletion left `key` behind, if one did."""
    return session.scalar(_TOMBSTONED, {"rid": repository_id, "key": key})


def delete_asset(session: Session, repository_id: int, path: str) -> Row[Any] | None:
    """Delete one asset (and its component when it was the last asset). Returns the deleted row."""
    row = find_asset(session, repository_id, path)
    if row is not None:
        delete_found(session, row)
    return row


def delete_found(session: Session, row: Row[Any]) -> None:
    """Delete an asset `find_asset` found (and its component when it was the last asset)."""
    session.execute(delete(Asset).where(Asset.id == row.id))
    if row.component_id is not None:
        remaining = session.scalar(
            select(func.count()).select_from(Asset).where(Asset.component_id == row.component_id)
        )
        if not remaining:
            session.execute(delete(Component).where(Component.id == row.component_id))


def components(
    session: Session,
    repository: tuple[int, str],
    name: str | None = None,
    namespace: str | None = None,
    version: str | None = None,
    with_assets: bool = True,
) -> list[ComponentInfo]:
    repository_id, repository_name = repository
    query = select(Component).where(Component.repository_id == repository_id)
    if name is not None:
        query = query.where(Component.name == name)
    if namespace is not None:
        query = query.where(Component.namespace == namespace)
    if version is not None:
        query = query.where(Component.version == version)
    found = list(session.scalars(query.order_by(Component.id)))
    assets: dict[int, list[StoredAsset]] = {}
    if with_assets and found:
        rows = session.execute(
            select(*_ASSET_COLUMNS)
            .join(Blob, Blob.sha256 == Asset.blob_sha256)
            .where(Asset.component_id.in_([c.id for c in found]))
            .order_by(Asset.path)
        )
        for row in rows:
            assets.setdefault(row.component_id, []).append(to_asset(repository_name, row))
    return [
        ComponentInfo(
            id=c.id,
            repository=repository_name,
            namespace=c.namespace,
            name=c.name,
            version=c.version,
            attributes=c.attributes or {},
            created_at=c.created_at,
            assets=tuple(assets.get(c.id, ())),
        )
        for c in found
    ]


def component_names(session: Session, repository_id: int) -> list[tuple[str, str]]:
    return [
        (row.namespace, row.name)
        for row in session.execute(
            select(Component.namespace, Component.name)
            .where(Component.repository_id == repository_id)
            .distinct()
        )
    ]


def has_component_named(session: Session, repository_ids: Sequence[int], namespace: str, name: str) -> bool:
    if not repository_ids:
        return False
    return (
        session.scalar(
            select(Component.id)
            .where(
                and_(
                    Component.repository_id.in_(repository_ids),
                    Component.namespace == namespace,
                    Component.name == name,
                )
            )
            .limit(1)
        )
        is not None
    )


def mark_downloaded(session: Session, asset_id: int, when: datetime) -> None:
    session.execute(update(Asset).where(Asset.id == asset_id).values(last_downloaded=when))
