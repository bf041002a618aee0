"""The repository engine: the one object formats call for storage, whatever the repository type.

A format asks for a path, stores an upload, deletes, lists or queries components; the engine decides
what hosted, proxy and group mean. Database work runs in worker threads so the event loop never waits
on SQL; events reach plugins only after their transaction has committed.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, Callable
from dataclasses import dataclass
from typing import Any, BinaryIO, TypeVar

import pluggy
from anyio import to_thread
from sqlalchemy import select

from artifactory.blobstore.store import BlobInfo, BlobStore, StagedBlob, TooLarge
from artifactory.db import queries
from artifactory.db.engine import Database
from artifactory.db.models import AuditEvent, Blob, Repository
from artifactory.formats import FormatRegistry
from artifactory.http.errors import BadRequest, Forbidden, MethodNotAllowed, NotFound, Unauthorized
from artifactory.lru import Lru
from artifactory.repository.downloads import Downloads
from artifactory.repository.group import Group
from artifactory.repository.hosted import BlobGone, Hosted, Upload
from artifactory.repository.index import INDEX_PREFIX, Index
from artifactory.repository.model import (
    GROUP,
    HOSTED,
    INLINE_CACHE_BYTES,
    PROXY,
    ComponentInfo,
    Content,
    Repo,
    StoredAsset,
    inline_size,
)
from artifactory.repository.proxy import Proxy
from artifactory.repository.registry import RepositoryRegistry
from artifactory.repository.uploads import Uploads
from artifactory.security.principal import Principal
from artifactory.security.service import Security
from artifactory.settings import Settings
from artifactory.upstream.client import UpstreamClients

log = logging.getLogger(__name__)
T = TypeVar("T")
DOCUMENT_CACHE_SIZE = 2048
ASSET_CACHE_SIZE = 8192
# A hot file is looked up at most this often per process. Its cache key holds the repository's
# revision, which `repos.get` keeps current across processes (`db.changes`), so a change made anywhere
# is seen at once (on PostgreSQL, once its notification arrived); this bound is the backstop.
ASSET_CACHE_SECONDS = 0.1
DOCUMENT_CACHE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class Entry:
    """One line of a folder listing."""

    name: str
    is_folder: bool
    asset: StoredAsset | None = None


class Engine:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        blobs: BlobStore,
        formats: FormatRegistry,
        security: Security,
        pm: pluggy.PluginManager,
    ) -> None:
        self.settings = settings
        self.db = db
        self.blobs = blobs
        self.formats = formats
        self.security = security
        self.pm = pm
        self.repos = RepositoryRegistry(db, formats, settings.config_cache_seconds)
        self.upstreams = UpstreamClients()
        self.hosted = Hosted(self)
        self.proxy = Proxy(self)
        self.group = Group(self)
        self.index = Index(self)
        self.uploads = Uploads(self)
        self.downloads = Downloads(db, settings.download_flush_seconds, settings.download_counting)
        self._find_asset = queries.AssetLookup(db.read_engine)
        # Hosted lookups, keyed by the repository revision they were read at (current in every
        # process, see ASSET_CACHE_SECONDS) and trusted for at most ASSET_CACHE_SECONDS.
        self._assets: Lru[tuple[int, int, str], StoredAsset] = Lru(
            ASSET_CACHE_SIZE, ttl=ASSET_CACHE_SECONDS, max_weight=INLINE_CACHE_BYTES, weigh=inline_size
        )

    async def db_call(self, fn: Callable[..., T], *args: Any) -> T:
        return await to_thread.run_sync(fn, *args)

    async def read_call(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)`, a small indexed read: in-process on SQLite (tens of microseconds, and a WAL
        read does not wait for writers: cheaper than the hop to a worker thread), in a worker thread
        on a database across the network."""
        if self.db.is_sqlite:
            return fn(*args)
        return await self.db_call(fn, *args)

    def fire(self, hook: str, **kwargs: Any) -> None:
        """Broadcast an event to plugins; a failing listener is logged, never the caller's problem."""
        try:
            getattr(self.pm.hook, hook)(**kwargs)
        except Exception:
            log.exception("plugin hook %s failed", hook)

    # -- access ------------------------------------------------------------------------------
    def repository(self, name: str) -> Repo:
        repo = self.repos.get(name)
        if repo is None:
            raise NotFound(f"repository {name!r} not found")
        return repo

    def require(self, principal: Principal, repo: Repo, action: str) -> None:
        """401 for an anonymous caller without the privilege, 403 for a known one."""
        if self.security.allowed(principal, repo.name, action):
            return
        if principal.anonymous:
            raise Unauthorized(f"{action} access to {repo.name} requires authentication")
        raise Forbidden(f"user {principal.username} may not {action} in {repo.name}")

    # -- reading -----------------------------------------------------------------------------
    async def get(
        self,
        repo: Repo,
        path: str,
        principal: Principal,
        stream: bool = True,
        seen: frozenset[str] = frozenset(),
    ) -> Content | None:
        """The content at `path`: stored, computed (a group's merge) or arriving from upstream."""
        if repo.type == HOSTED:
            hit = self.cached_asset(repo, path)
            if hit is not None:
                return hit
            found = await self.read_call(self._find_asset, repo.name, repo.id, path)
            if found is not None:
                self.remember_asset(repo, path, found)
            return found
        if repo.type == PROXY:
            return await self.proxy.get(repo, path, stream)
        return await self.group.get(repo, path, principal, stream, seen)

    def cached_asset(self, repo: Repo, path: str) -> StoredAsset | None:
        """A hosted file this process read at `repo`'s current revision moments ago, if any."""
        return self._assets.get((repo.id, repo.revision, path))

    def remember_asset(self, repo: Repo, path: str, asset: StoredAsset) -> None:
        """A hosted file just read (at `repo`'s revision), for `cached_asset`."""
        self._assets.put((repo.id, repo.revision, path), asset)

    def lookup(self, repo: Repo, path: str) -> StoredAsset | None:
        """A stored asset of this very repository (no proxy fetch, no group search). Blocking."""
        return self._find_asset(repo.name, repo.id, path)

    async def is_folder(self, repo: Repo, path: str, principal: Principal) -> bool:
        """Whether `path` (no trailing "/") names a folder the caller can list. After a file miss
        through a group, that miss's read of every leaf answers when it found nothing there."""
        folder = path + "/"
        if repo.type == GROUP and self.group.known_empty_folder(repo, folder):
            return False
        return bool(await self.listing(repo, folder, principal))

    async def listing(self, repo: Repo, prefix: str, principal: Principal) -> list[Entry]:
        """The folders and files directly under `prefix` (which ends with "/" or is empty), as a
        client may see them: a group leaves out what its proxy members hold of a name a hosted
        member holds (the dependency-confusion guard), and the index cache is never listed."""
        fmt = self.formats[repo.format]
        names: dict[str, Entry] = {}
        shadowed: dict[tuple[str, str], bool] = {}
        leaves = self.group.leaves(repo, principal)
        for member in leaves:
            if member.type == PROXY:
                await self.proxy.landed(member)
        # A folder that is not there (a raw file miss asks whether the path is a folder, a client
        # lists what it guessed) costs one indexed read per leaf, not a listing.
        if prefix and not await self.group.holds_any(leaves, prefix):
            return []
        # Every member's rows in one read transaction (a group's listing is one read, not one per member).
        listed = await self.db_call(self._under_each, leaves, prefix)
        for member, rows in zip(leaves, listed, strict=True):
            for asset in rows:
                if asset.path.startswith(INDEX_PREFIX):
                    continue
                rest = asset.path[len(prefix) :]
                head, sep, _tail = rest.partition("/")
                if not head or head in names:
                    continue
                if repo.type == GROUP and member.type == PROXY:
                    coordinates = fmt.coordinates(asset.path)
                    if coordinates is not None:
                        name = (coordinates.namespace, coordinates.name)
                        if name not in shadowed:
                            shadowed[name] = await self.group.shadowed_name(repo, *name)
                        if shadowed[name]:
                            continue
                names[head] = Entry(head, True) if sep else Entry(head, False, asset)
        return sorted(names.values(), key=lambda e: (not e.is_folder, e.name))

    def assets_under(self, repo: Repo, prefix: str) -> list[StoredAsset]:
        """Every asset of `repo` (itself only) whose path starts with `prefix`. Blocking."""
        return self._under(repo, prefix)

    def _under_each(self, repos: list[Repo], prefix: str) -> list[list[StoredAsset]]:
        with self.db.read() as session:
            return [
                [queries.to_asset(repo.name, row) for row in queries.assets_under(session, repo.id, prefix)]
                for repo in repos
            ]

    def _under(self, repo: Repo, prefix: str) -> list[StoredAsset]:
        with self.db.read() as session:
            return [
                queries.to_asset(repo.name, row) for row in queries.assets_under(session, repo.id, prefix)
            ]

    # -- writing -----------------------------------------------------------------------------
    def write_target(self, repo: Repo) -> Repo:
        """Where a write to `repo` goes: itself if hosted, a group's configured write member."""
        if repo.type == HOSTED:
            return repo
        if repo.type == GROUP and repo.config.get("write_member"):
            member = self.repository(str(repo.config["write_member"]))
            if member.type != HOSTED:
                raise MethodNotAllowed(f"{repo.name}'s write member {member.name} is not a hosted repository")
            return member
        if repo.type == GROUP:
            raise MethodNotAllowed(f"{repo.name} is a group: upload to one of its hosted members")
        raise MethodNotAllowed(
            f"{repo.name} is a proxy repository: it cannot be uploaded to", ("GET", "HEAD", "DELETE")
        )

    async def put(
        self, repo: Repo, chunks: AsyncIterable[bytes], upload: Upload, principal: Principal
    ) -> StoredAsset:
        try:
            target = self.write_target(repo)
            self.require(principal, target, "write")
        except BaseException:
            await self.hosted.discard(upload.companions)
            raise
        return await self.hosted.store(target, chunks, upload, principal)

    async def put_bytes(self, repo: Repo, data: bytes, upload: Upload, principal: Principal) -> StoredAsset:
        async def one() -> Any:
            yield data

        return await self.put(repo, one(), upload, principal)

    async def commit(
        self, repo: Repo, staged: StagedBlob, upload: Upload, principal: Principal
    ) -> StoredAsset:
        """Store bytes staged earlier (an upload session, a parsed upload) as the asset at upload.path,
        with `upload.companions` in the same transaction. Staged bytes that are refused are discarded."""
        try:
            target = self.write_target(repo)
            self.require(principal, target, "write")
            await self.hosted.precheck(target, upload)
        except BaseException:
            await self.hosted.discard([staged, *upload.companions])
            raise
        return await self.hosted.commit(target, staged, upload, principal)

    async def link(self, repo: Repo, sha256: str, upload: Upload, principal: Principal) -> StoredAsset | None:
        """Make a blob that is already stored the asset at upload.path, without copying its bytes
        (a registry's cross-repository mount). None when no such blob is stored."""
        target = self.write_target(repo)
        self.require(principal, target, "write")

        def known() -> BlobInfo | None:
            with self.db.read() as session:
                row = session.get(Blob, sha256)
                if row is None or (row.data is None and not self.blobs.exists(sha256)):
                    return None
                return BlobInfo(
                    sha256=row.sha256, size=row.size, sha1=row.sha1, md5=row.md5, sha512=row.sha512
                )

        info = await self.db_call(known)
        if info is None:
            return None
        for algorithm, value in (upload.expected or {}).items():
            if value and value.lower() != info.digest(algorithm):
                raise BadRequest(
                    f"checksum mismatch for {upload.path}: {algorithm} is {info.digest(algorithm)}"
                )
        await self.hosted.precheck(target, upload)
        try:
            return await self.hosted.commit(target, StagedBlob(info=info, temp_name=""), upload, principal)
        except BlobGone:
            return None

    async def stage(self, repo: Repo, chunks: AsyncIterable[bytes], upload: Upload) -> StagedBlob:
        """Receive and hash bytes without storing an asset yet (a format parses them first)."""
        target = self.write_target(repo)
        limit = int(target.config.get("max_upload_bytes") or self.settings.max_upload_bytes)
        return await self.hosted.stage(target, chunks, upload, limit)

    async def stage_bytes(self, data: bytes) -> StagedBlob:
        """Stage a small in-memory file (a companion derived from an upload) for `Upload.companions`."""
        return await self.blobs.ingest_bytes(data)

    async def discard(self, staged: StagedBlob) -> None:
        """Forget staged bytes that will not be committed (an upload that failed a format's checks)."""
        await self.blobs.discard(staged)

    def open_staged(self, staged: StagedBlob) -> BinaryIO:
        """A seekable file of staged bytes (blocking; run it with db_call and close it)."""
        return self.blobs.open_staged(staged)

    async def read_bytes(self, sha256: str, limit: int = 64 * 1024 * 1024) -> bytes:
        pending = self.proxy.pending(sha256)  # a proxied document answered before its blob is stored
        if pending is not None and len(pending) <= limit:
            return pending
        try:
            return await self.blobs.read_all(sha256, limit)
        except KeyError:
            kept = await self.inline_bytes(sha256)
            if kept is None:
                raise
            return _within(kept, limit)

    async def asset_bytes(self, asset: StoredAsset, limit: int = 64 * 1024 * 1024) -> bytes:
        """An asset's bytes: those read with it from its blob's row, or `read_bytes`."""
        if asset.inline is None:
            return await self.read_bytes(asset.sha256, limit)
        return _within(asset.inline, limit)

    async def inline_bytes(self, sha256: str) -> bytes | None:
        """The bytes of a small blob that its database row keeps (`Blob.data`), if it does."""

        def read() -> bytes | None:
            with self.db.read() as session:
                return queries.inline_bytes(session, sha256)

        return await self.db_call(read)

    async def update_document(
        self,
        repo: Repo,
        path: str,
        transform: Callable[[bytes | None], bytes | None],
        principal: Principal,
        content_type: str = "application/json",
        limit: int = 64 * 1024 * 1024,
    ) -> StoredAsset | None:
        """Change a mutable document under a lock: `transform(old bytes or None)` gives the new bytes
        (None deletes it). Runs inside one write transaction that holds the repository's row lock
        (BEGIN IMMEDIATE on SQLite), so concurrent updates on any node apply one after the other."""
        target = self.write_target(repo)
        self.require(principal, target, "write")
        return await self.db_call(
            self._update_document, target, path, transform, content_type, limit, principal
        )

    def _update_document(
        self,
        repo: Repo,
        path: str,
        transform: Callable[[bytes | None], bytes | None],
        content_type: str,
        limit: int,
        principal: Principal,
    ) -> StoredAsset | None:
        with self.db.write() as session:
            session.execute(select(Repository.id).where(Repository.id == repo.id).with_for_update())
            row = queries.find_asset(session, repo.id, path)
            old = row.inline if row is not None else None
            if row is not None and old is None:
                old = self.blobs.read_all_sync(row.blob_sha256, limit)
            new = transform(old)
            names = self.hosted.touched_names(repo, [path])
            if new is None:
                if row is not None:
                    queries.delete_asset(session, repo.id, path)
                    queries.bump_revision(session, repo.id)
                    queries.bump_generations(session, repo.id, names)
                    session.add(
                        AuditEvent(
                            actor=principal.username, action="asset.deleted", repository=repo.name, path=path
                        )
                    )
                result = None
            elif old == new and row is not None:
                return queries.to_asset(repo.name, row)
            else:
                staged = self.blobs.stage_bytes_sync(new)
                queries.touch_blob(session, staged.info)
                self.blobs.publish_sync(staged)
                queries.save_asset(session, repo.id, path, staged.info.sha256, content_type, {}, None)()
                queries.bump_revision(session, repo.id)
                queries.bump_generations(session, repo.id, names)
                session.add(
                    AuditEvent(
                        actor=principal.username, action="asset.stored", repository=repo.name, path=path
                    )
                )
                saved = queries.find_asset(session, repo.id, path)
                assert saved is not None
                result = queries.to_asset(repo.name, saved)
        self.repos.forget(repo.name)
        return result

    async def delete(self, repo: Repo, path: str, principal: Principal) -> StoredAsset | None:
        if repo.type == GROUP:
            raise MethodNotAllowed(f"{repo.name} is a group: remove the file from one of its members")
        self.require(principal, repo, "delete")
        return await self.hosted.delete(repo, path, principal)

    # -- components and documents -------------------------------------------------------------
    async def component_names(self, repo: Repo) -> list[tuple[str, str]]:
        """Every (namespace, name) with a component in `repo`, without loading any asset."""

        def run() -> list[tuple[str, str]]:
            with self.db.read() as session:
                return queries.component_names(session, repo.id)

        if repo.type == PROXY:
            await self.proxy.landed(repo)
        return await self.db_call(run)

    async def components(
        self, repo: Repo, name: str | None = None, namespace: str | None = None, version: str | None = None
    ) -> list[ComponentInfo]:
        def run() -> list[ComponentInfo]:
            with self.db.read() as session:
                return queries.components(session, (repo.id, repo.name), name, namespace, version)

        if repo.type == PROXY:
            await self.proxy.landed(repo)
        return await self.db_call(run)

    async def close(self) -> None:
        await self.proxy.close()
        await self.uploads.close()
        await self.upstreams.close()
        await to_thread.run_sync(self.downloads.close)


def _within(data: bytes, limit: int) -> bytes:
    """`data`, refused as the blob store refuses a read of more than `limit` bytes."""
    if len(data) > limit:
        raise TooLarge(limit)
    return data


__all__ = ["Engine", "Entry", "Upload", "BadRequest"]
