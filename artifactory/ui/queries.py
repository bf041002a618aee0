"""The reads behind the pages: a fixed, small number of queries per page, whatever its length.

Blocking functions over a Session; the pages run them in a worker thread. A repository's totals are
cached per process by its revision (which moves with every change of content), so the repository
list costs one cheap query once nothing has changed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from artifactory.api.search import name_condition
from artifactory.db.engine import Database
from artifactory.db.models import Asset, AuditEvent, Blob, Component, ProxyHealth
from artifactory.repository.model import Repo

ASSET_STORED = "asset.stored"
INLINE_ASSETS = 20_000
BYTES_SECONDS = 60.0
log = logging.getLogger(__name__)
MAX_VERSIONS = 2000


@dataclass(frozen=True)
class RepoStats:
    components: int = 0
    assets: int = 0
    bytes: int | None = 0  # None: still being added up (a large repository, in the background)


@dataclass(frozen=True)
class Health:
    blocked: bool = False
    blocked_until: datetime | None = None
    failures: int = 0
    last_error: str = ""


class StatsCache:
    """Per-process totals of each repository.

    Counts come from indexes alone and are re-read whenever the revision moves. Stored bytes need
    every asset's blob (a join as large as the repository): re-added with the counts for a
    repository of up to INLINE_ASSETS files; for a larger one at most every BYTES_SECONDS, in a
    background thread, while the page shows the last total (or that it is still being added up).
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        self._counts: dict[int, tuple[int, int, int]] = {}  # id: (revision, components, assets)
        self._bytes: dict[int, tuple[int, float, int]] = {}  # id: (revision, when, bytes)
        self._running: set[int] = set()
        self._lock = threading.Lock()

    def get(self, session: Session, repos: Sequence[Repo]) -> dict[int, RepoStats]:
        stale = [r for r in repos if self._counts.get(r.id, (None,))[0] != r.revision]
        if stale:
            counts = repository_counts(session, [r.id for r in stale])
            with self._lock:
                if len(self._counts) > 100_000:
                    self._counts.clear()
                for repo in stale:
                    self._counts[repo.id] = (repo.revision, *counts.get(repo.id, (0, 0)))
        now = time.monotonic()
        inline: list[Repo] = []
        background: list[Repo] = []
        for repo in repos:
            known = self._bytes.get(repo.id)
            if known is not None and known[0] == repo.revision:
                continue
            if self._counts[repo.id][2] <= INLINE_ASSETS:
                inline.append(repo)
            elif known is None or now - known[1] >= BYTES_SECONDS:
                background.append(repo)
        if inline:
            added = repository_bytes(session, [r.id for r in inline])
            with self._lock:
                for repo in inline:
                    self._bytes[repo.id] = (repo.revision, now, added.get(repo.id, 0))
        for repo in background:
            self._add_up_later(repo)
        found = {}
        for repo in repos:
            _revision, components, assets = self._counts[repo.id]
            known = self._bytes.get(repo.id)
            found[repo.id] = RepoStats(components, assets, known[2] if known is not None else None)
        return found

    def _add_up_later(self, repo: Repo) -> None:
        with self._lock:
            if repo.id in self._running or len(self._running) >= 2:
                return
            self._running.add(repo.id)

        def run() -> None:
            started = time.monotonic()
            try:
                with self.db.read() as session:
                    total = repository_bytes(session, [repo.id]).get(repo.id, 0)
                with self._lock:
                    self._bytes[repo.id] = (repo.revision, started, total)
            except Exception:  # noqa: BLE001 - the page keeps showing the last total
                log.exception("adding up the stored bytes of %s failed", repo.name)
            finally:
                with self._lock:
                    self._running.discard(repo.id)

        threading.Thread(target=run, name=f"ui-bytes-{repo.id}", daemon=True).start()


def repository_counts(session: Session, repository_ids: list[int]) -> dict[int, tuple[int, int]]:
    """{id: (components, assets)}, from the indexes on repository_id alone."""
    if not repository_ids:
        return {}
    assets = {
        row.repository_id: row.n
        for row in session.execute(
            select(Asset.repository_id, func.count(Asset.id).label("n"))
            .where(Asset.repository_id.in_(repository_ids))
            .group_by(Asset.repository_id)
        )
    }
    components = {
        row.repository_id: row.n
        for row in session.execute(
            select(Component.repository_id, func.count(Component.id).label("n"))
            .where(Component.repository_id.in_(repository_ids))
            .group_by(Component.repository_id)
        )
    }
    return {rid: (components.get(rid, 0), assets.get(rid, 0)) for rid in repository_ids}


def repository_bytes(session: Session, repository_ids: list[int]) -> dict[int, int]:
    """{id: the size of every asset's blob, added up} (a blob in two paths counts twice)."""
    if not repository_ids:
        return {}
    return {
        row.repository_id: int(row.bytes or 0)
        for row in session.execute(
            select(Asset.repository_id, func.sum(Blob.size).label("bytes"))
            .join(Blob, Blob.sha256 == Asset.blob_sha256)
            .where(Asset.repository_id.in_(repository_ids))
            .group_by(Asset.repository_id)
        )
    }


def proxy_health(session: Session, repository_ids: list[int]) -> dict[int, Health]:
    if not repository_ids:
        return {}
    now = datetime.now(UTC)
    found = {}
    for row in session.scalars(select(ProxyHealth).where(ProxyHealth.repository_id.in_(repository_ids))):
        blocked = bool(row.blocked_until and row.blocked_until > now)
        found[row.repository_id] = Health(
            blocked=blocked,
            blocked_until=row.blocked_until if blocked else None,
            failures=row.failures,
            last_error=row.last_error or "",
        )
    return found


# -- a repository's components ------------------------------------------------------------------
@dataclass
class NameRow:
    namespace: str
    name: str
    versions: int = 0
    latest: datetime | None = None
    members: list[str] = field(default_factory=list)  # where a group finds it, in member order


def component_names(
    session: Session, repos: Sequence[Repo], q: str, after: tuple[str, str] | None, limit: int
) -> tuple[list[NameRow], tuple[str, str] | None]:
    """One page of distinct (namespace, name) over `repos` (a group's members, in order), and the key
    of the next page. Keyset paging in (namespace, name) order: the unique index on
    (repository_id, namespace, name, version) walks it for one repository."""
    ids = [r.id for r in repos]
    if not ids:
        return [], None
    statement = select(Component.namespace, Component.name).where(Component.repository_id.in_(ids))
    if q:
        statement = statement.where(
            or_(name_condition(Component.name, q), name_condition(Component.namespace, q))
        )
    if after is not None:
        namespace, name = after
        statement = statement.where(
            or_(
                Component.namespace > namespace,
                and_(Component.namespace == namespace, Component.name > name),
            )
        )
    keys = [
        (row.namespace, row.name)
        for row in session.execute(
            statement.group_by(Component.namespace, Component.name)
            .order_by(Component.namespace, Component.name)
            .limit(limit + 1)
        )
    ]
    more = len(keys) > limit
    keys = keys[:limit]
    if not keys:
        return [], None
    rows = {key: NameRow(*key) for key in keys}
    order = {r.id: i for i, r in enumerate(repos)}
    names = {r.id: r.name for r in repos}
    found: dict[tuple[str, str], list[tuple[int, int, datetime | None]]] = {}
    for row in session.execute(
        select(
            Component.repository_id,
            Component.namespace,
            Component.name,
            func.count(Component.id).label("versions"),
            func.max(Component.created_at).label("latest"),
        )
        .where(
            Component.repository_id.in_(ids),
            Component.name.in_({k[1] for k in keys}),
            Component.namespace.in_({k[0] for k in keys}),
        )
        .group_by(Component.repository_id, Component.namespace, Component.name)
    ):
        key = (row.namespace, row.name)
        if key in rows:
            found.setdefault(key, []).append((row.repository_id, row.versions, _utc(row.latest)))
    for key, entries in found.items():
        target = rows[key]
        for rid, count, latest in sorted(entries, key=lambda e: order[e[0]]):
            target.members.append(names[rid])
            target.versions += count
            if latest is not None and (target.latest is None or latest > target.latest):
                target.latest = latest
    return list(rows.values()), (keys[-1] if more else None)


# -- a component's versions ---------------------------------------------------------------------
@dataclass
class VersionRow:
    repository: str
    version: str
    created_at: datetime | None
    assets: int
    size: int


def versions(session: Session, repos: Sequence[Repo], namespace: str, name: str) -> list[VersionRow]:
    """Every version of one component over `repos`, newest first, with asset counts and sizes."""
    names = {r.id: r.name for r in repos}
    if not names:
        return []
    statement = (
        select(
            Component.repository_id,
            Component.version,
            Component.created_at,
            func.count(Asset.id).label("assets"),
            func.coalesce(func.sum(Blob.size), 0).label("size"),
        )
        .select_from(Component)
        .outerjoin(Asset, Asset.component_id == Component.id)
        .outerjoin(Blob, Blob.sha256 == Asset.blob_sha256)
        .where(
            Component.repository_id.in_(list(names)),
            Component.namespace == namespace,
            Component.name == name,
        )
        .group_by(Component.id, Component.repository_id, Component.version, Component.created_at)
        .limit(MAX_VERSIONS)
    )
    rows = [
        VersionRow(names[row.repository_id], row.version, _utc(row.created_at), row.assets, int(row.size))
        for row in session.execute(statement)
    ]
    order = {r.name: i for i, r in enumerate(repos)}
    rows.sort(key=lambda v: order[v.repository])
    rows.sort(key=lambda v: v.created_at or datetime.min.replace(tzinfo=UTC), reverse=True)
    return rows


# -- one version's files --------------------------------------------------------------------------
@dataclass
class AssetRow:
    path: str
    size: int
    sha256: str
    sha1: str
    md5: str
    content_type: str
    created_at: datetime | None
    updated_at: datetime | None
    last_downloaded: datetime | None
    attributes: dict[str, Any]
    uploaded_by: str = ""
    uploaded_at: datetime | None = None


@dataclass
class VersionDetail:
    repository: Repo
    component_id: int
    namespace: str
    name: str
    version: str
    attributes: dict[str, Any]
    created_at: datetime | None
    assets: list[AssetRow]


def version_detail(
    session: Session, repo: Repo, namespace: str, name: str, version: str
) -> VersionDetail | None:
    component = session.scalar(
        select(Component).where(
            Component.repository_id == repo.id,
            Component.namespace == namespace,
            Component.name == name,
            Component.version == version,
        )
    )
    if component is None:
        return None
    assets = [
        AssetRow(
            path=row.path,
            size=row.size,
            sha256=row.blob_sha256,
            sha1=row.sha1,
            md5=row.md5,
            content_type=row.content_type,
            created_at=_utc(row.created_at),
            updated_at=_utc(row.updated_at),
            last_downloaded=_utc(row.last_downloaded),
            attributes=dict(row.attributes or {}),
        )
        for row in session.execute(
            select(
                Asset.path,
                Asset.blob_sha256,
                Asset.content_type,
                Asset.attributes,
                Asset.created_at,
                Asset.updated_at,
                Asset.last_downloaded,
                Blob.size,
                Blob.sha1,
                Blob.md5,
            )
            .join(Blob, Blob.sha256 == Asset.blob_sha256)
            .where(Asset.component_id == component.id)
            .order_by(Asset.path)
        )
    ]
    uploads = uploaded(session, repo.name, [a.path for a in assets])
    for asset in assets:
        if asset.path in uploads:
            asset.uploaded_by, asset.uploaded_at = uploads[asset.path]
    return VersionDetail(
        repository=repo,
        component_id=component.id,
        namespace=component.namespace,
        name=component.name,
        version=component.version,
        attributes=dict(component.attributes or {}),
        created_at=_utc(component.created_at),
        assets=assets,
    )


def uploaded(session: Session, repository: str, paths: list[str]) -> dict[str, tuple[str, datetime | None]]:
    """Who stored each path last, and when, from the audit log (indexed by repository and path)."""
    if not paths:
        return {}
    found: dict[str, tuple[str, datetime | None]] = {}
    for start in range(0, len(paths), 500):
        for row in session.execute(
            select(AuditEvent.path, AuditEvent.actor, AuditEvent.at)
            .where(
                AuditEvent.repository == repository,
                AuditEvent.path.in_(paths[start : start + 500]),
                AuditEvent.action == ASSET_STORED,
            )
            .order_by(AuditEvent.id)
        ):
            found[row.path] = (row.actor, _utc(row.at))
    return found


def asset_at(session: Session, repo: Repo, path: str) -> tuple[str, int] | None:
    """The sha256 and size of the asset at `path`, if it is stored in this repository."""
    row = session.execute(
        select(Asset.blob_sha256, Blob.size)
        .join(Blob, Blob.sha256 == Asset.blob_sha256)
        .where(Asset.repository_id == repo.id, Asset.path == path)
    ).first()
    return (row.blob_sha256, row.size) if row is not None else None


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
