"""SQLAlchemy 2 models. Every format maps onto Blob, Asset, Component and Repository."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

MAX_PATH = 1024
# A path column that prefixes are matched on (`queries.starts_with`): in code-point order on
# PostgreSQL too (the "C" collation, migration 0008), so the range uses the column's index whatever
# the database's collation; SQLite's default already is.
CODE_POINT_PATH = String(MAX_PATH).with_variant(String(MAX_PATH, collation="C"), "postgresql")
# The largest value of an Integer column (PostgreSQL's int4): ids a client hands back (paging cursors)
# are clamped to it, so a larger one finds nothing more instead of failing the query.
MAX_INTEGER = 2**31 - 1

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on every backend (SQLite keeps no zone, so it is put back on read)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(UTC)
            if dialect.name == "sqlite":
                value = value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON, list[Any]: JSON}


class Blob(Base):
    """Bytes stored once, addressed by sha256; `touched_at` protects a blob being reused from GC.
    `data`: the bytes themselves, for a blob small enough to be kept in its row (saved by a hosted
    commit, `Settings.inline_blob_bytes`); NULL when they are in the blob store."""

    __tablename__ = "blob"
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    md5: Mapped[str] = mapped_column(String(32), index=True)
    sha1: Mapped[str] = mapped_column(String(40), index=True)
    sha512: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    touched_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    data: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True, deferred=True)


def first_revision() -> int:
    """The revision a new repository starts at: the microseconds since the epoch. A repository
    deleted and created again under its name (on SQLite even under its id) must not go through
    revisions its predecessor had, or documents and ETags cached under those revisions by any process
    (a client's If-None-Match too) would be taken for the new repository's; the predecessor would have
    needed more commits than microseconds went by to reach the new start."""
    return time.time_ns() // 1000


class Repository(Base):
    __tablename__ = "repository"
    # Ids are never reused (SQLite would otherwise hand out a deleted repository's; migration 0009).
    __table_args__ = {"sqlite_autoincrement": True}
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    format: Mapped[str] = mapped_column(String(50))
    type: Mapped[str] = mapped_column(String(20))
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Bumped on every change of content or config: the key of every cached document and ETag. It
    # starts at `first_revision()`, never at the same number twice for one name.
    revision: Mapped[int] = mapped_column(BigInteger, default=first_revision)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Component(Base):
    __tablename__ = "component"
    __table_args__ = (
        UniqueConstraint("repository_id", "namespace", "name", "version", name="uq_component_coordinates"),
        Index("ix_component_repository_name", "repository_id", "name"),
        Index("ix_component_search", "name", "namespace", "repository_id", "id"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    repository_id: Mapped[int] = mapped_column(ForeignKey("repository.id", ondelete="CASCADE"))
    namespace: Mapped[str] = mapped_column(String(255), default="")
    name: Mapped[str] = mapped_column(String(255))
    version: Mapped[str] = mapped_column(String(255), default="")
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class NameGeneration(Base):
    """A counter per component name, bumped in the transaction that changes any of its assets: the
    cache key of every document computed from that name (simple page, packument, tag list)."""

    __tablename__ = "name_generation"
    repository_id: Mapped[int] = mapped_column(
        ForeignKey("repository.id", ondelete="CASCADE"), primary_key=True
    )
    namespace: Mapped[str] = mapped_column(String(255), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    generation: Mapped[int] = mapped_column(Integer, default=1)


class Tombstone(Base):
    """What was deleted from a repository and may never be stored there again (a PyPI filename, an
    npm name@version): the format's `tombstone(path)` key, written with the deletion."""

    __tablename__ = "tombstone"
    repository_id: Mapped[int] = mapped_column(
        ForeignKey("repository.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(MAX_PATH), primary_key=True)
    path: Mapped[str] = mapped_column(String(MAX_PATH))
    deleted_at: Mapped[datetime] = mapped_column(default=utcnow)


class Asset(Base):
    __tablename__ = "asset"
    __table_args__ = (
        UniqueConstraint("repository_id", "path", name="uq_asset_repository_path"),
        Index("ix_asset_repository_conflict_key", "repository_id", "conflict_key"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    repository_id: Mapped[int] = mapped_column(ForeignKey("repository.id", ondelete="CASCADE"))
    component_id: Mapped[int | None] = mapped_column(
        ForeignKey("component.id", ondelete="SET NULL"), index=True, default=None
    )
    path: Mapped[str] = mapped_column(CODE_POINT_PATH)
    blob_sha256: Mapped[str] = mapped_column(ForeignKey("blob.sha256"), index=True)
    content_type: Mapped[str] = mapped_column(String(255), default="application/octet-stream")
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_downloaded: Mapped[datetime | None] = mapped_column(default=None)
    download_count: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # Assets of one repository with the same key are one file for the write policy (a release
    # spelled two ways); the format chooses the key (`Upload.conflict_key`).
    conflict_key: Mapped[str | None] = mapped_column(String(255), default=None, nullable=True)


class User(Base):
    __tablename__ = "user_account"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    roles: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")


class Role(Base):
    """A named set of privileges: actions (read, write, delete) on repository-name globs."""

    __tablename__ = "role"
    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    privileges: Mapped[list[Any]] = mapped_column(default=list)
    builtin: Mapped[bool] = mapped_column(Boolean, default=False)


class ApiToken(Base):
    """Only a hash of the secret is kept; `id` is the public half that finds the row."""

    __tablename__ = "api_token"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    secret_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    # None: the owner's roles in full; else {"repositories": glob, "actions": [...]} within them.
    scope: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None, nullable=True)


class UploadSession(Base):
    """A resumable upload whose bytes so far live in the blob store under `temp_key`."""

    __tablename__ = "upload_session"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    repository_id: Mapped[int] = mapped_column(ForeignKey("repository.id", ondelete="CASCADE"))
    path: Mapped[str] = mapped_column(String(MAX_PATH), default="")
    temp_key: Mapped[str] = mapped_column(String(255))
    offset: Mapped[int] = mapped_column(BigInteger, default=0)
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditEvent(Base):
    __tablename__ = "audit_event"
    __table_args__ = (Index("ix_audit_event_repository_path", "repository", "path"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(100), default="")
    action: Mapped[str] = mapped_column(String(50))
    repository: Mapped[str] = mapped_column(String(200), default="")
    path: Mapped[str] = mapped_column(String(MAX_PATH), default="")
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Setting(Base):
    __tablename__ = "setting"
    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[dict[str, Any]] = mapped_column(default=dict)


class ProxyLease(Base):
    """Single-flight across processes and nodes: the holder fetches, everyone else waits for it."""

    __tablename__ = "proxy_lease"
    repository_id: Mapped[int] = mapped_column(
        ForeignKey("repository.id", ondelete="CASCADE"), primary_key=True
    )
    path: Mapped[str] = mapped_column(String(MAX_PATH), primary_key=True)
    owner: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column()


class ProxyMiss(Base):
    """Negative cache: the upstream said this path does not exist."""

    __tablename__ = "proxy_miss"
    repository_id: Mapped[int] = mapped_column(
        ForeignKey("repository.id", ondelete="CASCADE"), primary_key=True
    )
    path: Mapped[str] = mapped_column(CODE_POINT_PATH, primary_key=True)
    expires_at: Mapped[datetime] = mapped_column()


class ProxyHealth(Base):
    __tablename__ = "proxy_health"
    repository_id: Mapped[int] = mapped_column(
        ForeignKey("repository.id", ondelete="CASCADE"), primary_key=True
    )
    failures: Mapped[int] = mapped_column(Integer, default=0)
    blocked_until: Mapped[datetime | None] = mapped_column(default=None)
    last_error: Mapped[str] = mapped_column(Text, default="")
