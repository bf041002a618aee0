"""Alembic, driven from code: `artifactory db upgrade` and `serve` call upgrade().

Several processes or nodes may start together on one empty database: `exclusive(url)` makes them
take turns (a PostgreSQL advisory lock held on its own connection; on SQLite a file lock beside the
database), so one migrates and creates the first admin while the others wait and then find it done.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import artifactory_migrations
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

if TYPE_CHECKING:
    from alembic.config import Config

# Any fixed 64-bit number: the key of the advisory lock every artifactory process agrees on.
ADVISORY_KEY = 0x61727469666163
# The newest migration's revision (a test holds it to the scripts' head): a database stamped with
# it needs nothing, and a process starts on it without loading alembic and every migration script,
# a third of a second of CPU per server, worker or command.
HEAD = "0010"


def alembic_config(url: str) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(artifactory_migrations.__file__).parent))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


@contextlib.contextmanager
def exclusive(url: str) -> Iterator[None]:
    """Hold the database-wide start-up lock (blocking until the process holding it is done)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        engine = create_engine(url, poolclass=NullPool)
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": ADVISORY_KEY})
                connection.commit()
                try:
                    yield
                finally:
                    connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_KEY})
                    connection.commit()
        finally:
            engine.dispose()
        return
    database = parsed.database if parsed.get_backend_name() == "sqlite" else None
    if not database or database == ":memory:":
        yield
        return
    lock_path = Path(database).with_name(Path(database).name + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def upgrade(url: str, revision: str = "head") -> None:
    with exclusive(url):
        upgrade_unlocked(url, revision)


def upgrade_unlocked(url: str, revision: str = "head") -> None:
    """upgrade() for a caller already inside `exclusive(url)`."""
    if revision == "head" and current_revision(url) == HEAD:
        return
    from alembic import command

    command.upgrade(alembic_config(url), revision)


def current_revision(url: str) -> str | None:
    """The revision the database is stamped with; None for one never migrated."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except DBAPIError:  # no such table yet
        return None
    finally:
        engine.dispose()
