"""Hosted storage: store, fetch and delete assets, with write policies, written once for every format.

Order of a store (the rule that keeps a crash harmless): bytes are hashed into a temporary object;
the blob row is touched; the bytes are promoted to their content address (durable); only then does
the transaction that creates the asset commit. A crash at any point leaves at worst an unreferenced
blob or temporary object, which GC removes after its grace period.
"""

from __future__ import annotations

import mimetypes
from collections.abc import AsyncIterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from artifactory.blobstore.store import BlobError, DigestMismatch, StagedBlob, TooLarge
from artifactory.db import queries
from artifactory.db.models import AuditEvent
from artifactory.events import AssetEvent
from artifactory.formats import Coordinates
from artifactory.http.errors import BadRequest, HTTPProblem, PayloadTooLarge
from artifactory.repository.model import Repo, StoredAsset
from artifactory.security.principal import Principal

if TYPE_CHECKING:
    from artifactory.repository.engine import Engine


class WritePolicyViolation(BadRequest):
    pass


class BlobGone(Exception):
    """A linked blob was collected before the link took hold."""


@dataclass(frozen=True)
class Upload:
    """Everything a format knows about an upload besides its bytes."""

    path: str
    expected: Mapping[str, str | None] | None = None
    content_type: str | None = None
    component: Coordinates | None = None
    attributes: Mapping[str, Any] | None = None
    component_attributes: Mapping[str, Any] | None = None
    # Stores regardless of the write policy (server-generated files such as metadata documents).
    bypass_write_policy: bool = False
    # Assets whose attributes carry the same conflict key count as the same file for the write
    # policy (one release spelled two ways); checked inside the commit's transaction.
    conflict_key: str | None = None
    # Files derived from this upload (a wheel's .metadata), stored in the same transaction.
    companions: tuple[Companion, ...] = ()


@dataclass(frozen=True)
class Companion:
    """A file derived from an upload, committed with it or not at all."""

    path: str
    staged: StagedBlob
    content_type: str | None = None


def guess_content_type(path: str) -> str:
    return mimetypes.guess_type(path.rsplit("/", 1)[-1])[0] or "application/octet-stream"


class Hosted:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def check_write_policy(self, repo: Repo, path: str, exists: bool) -> None:
        policy = repo.write_policy
        if policy == "deny":
            raise WritePolicyViolation(f"repository {repo.name} is read-only (write policy deny)")
        if policy == "allow_once" and exists:
            raise WritePolicyViolation(
                f"repository {repo.name} does not allow updating assets (write policy allow_once): {path}"
            )

    async def stage(
        self, repo: Repo, chunks: AsyncIterable[bytes], upload: Upload, max_size: int | None
    ) -> StagedBlob:
        try:
            return await self.engine.blobs.ingest(chunks, upload.expected, max_size)
        except DigestMismatch as exc:
            raise BadRequest(f"checksum mismatch for {upload.path}: {exc}") from None
        except TooLarge as exc:
            raise PayloadTooLarge(str(exc)) from None
        except BlobError as exc:
            raise BadRequest(str(exc)) from None

    async def store(
        self, repo: Repo, chunks: AsyncIterable[bytes], upload: Upload, principal: Principal
    ) -> StoredAsset:
        engine = self.engine
        if not upload.bypass_write_policy:
            existing = await engine.db_call(self._exists, repo.id, upload.path)
            self.check_write_policy(repo, upload.path, existing)
        limit = int(repo.config.get("max_upload_bytes") or engine.settings.max_upload_bytes)
        staged = await self.stage(repo, chunks, upload, limit)
        return await self.commit(repo, staged, upload, principal)

    async def commit(
        self, repo: Repo, staged: StagedBlob, upload: Upload, principal: Principal
    ) -> StoredAsset:
        """Make staged bytes the asset at upload.path: plugin checks, blob row, promote, asset row."""
        engine = self.engine
        try:
            engine.pm.hook.artifactory_check_upload(
                repository=repo.name,
                format=repo.format,
                path=upload.path,
                size=staged.info.size,
                principal=principal,
            )
            await engine.db_call(self._touch, staged)
            if staged.temp_name:
                await engine.blobs.publish(staged)
            elif not await engine.db_call(engine.blobs.exists, staged.info.sha256):
                # A link to bytes already stored: after the touch GC can no longer take them,
                # but it may have taken them just before.
                raise BlobGone(staged.info.sha256)
        except BaseException:
            if staged.temp_name:
                await engine.blobs.discard(staged)
            raise
        content_type = upload.content_type or engine.formats[repo.format].content_type(upload.path)
        asset = await engine.db_call(
            self._save, repo, staged, upload, content_type or guess_content_type(upload.path), principal
        )
        engine.repos.forget(repo.name)
        engine.fire(
            "artifactory_asset_stored",
            event=AssetEvent(
                repository=repo.name,
                format=repo.format,
                path=upload.path,
                sha256=asset.sha256,
                size=asset.size,
                actor=principal.username,
                attributes=dict(asset.attributes),
            ),
        )
        return asset

    def _exists(self, repository_id: int, path: str) -> bool:
        with self.engine.db.read() as session:
            return queries.find_asset(session, repository_id, path) is not None

    def _touch(self, staged: StagedBlob) -> None:
        with self.engine.db.write() as session:
            queries.touch_blob(session, staged.info)

    def _save(
        self, repo: Repo, staged: StagedBlob, upload: Upload, content_type: str, principal: Principal
    ) -> StoredAsset:
        with self.engine.db.write() as session:
            if not upload.bypass_write_policy:
                self.check_write_policy(
                    repo, upload.path, queries.find_asset(session, repo.id, upload.path) is not None
                )
            queries.touch_blob(session, staged.info)
            component_id = None
            if upload.component is not None:
                c = upload.component
                component_id = queries.ensure_component(
                    session, repo.id, c.namespace, c.name, c.version, dict(upload.component_attributes or {})
                )
            queries.save_asset(
                session,
                repo.id,
                upload.path,
                staged.info.sha256,
                content_type,
                dict(upload.attributes or {}),
                component_id,
            )
            queries.bump_revision(session, repo.id)
            session.add(
                AuditEvent(
                    actor=principal.username,
                    action="asset.stored",
                    repository=repo.name,
                    path=upload.path,
                    details={"sha256": staged.info.sha256, "size": staged.info.size},
                )
            )
            row = queries.find_asset(session, repo.id, upload.path)
            assert row is not None
            return queries.to_asset(repo.name, row)

    async def delete(self, repo: Repo, path: str, principal: Principal) -> StoredAsset | None:
        deleted = await self.engine.db_call(self._delete, repo, path, principal)
        if deleted is not None:
            self.engine.repos.forget(repo.name)
            self.engine.fire(
                "artifactory_asset_deleted",
                event=AssetEvent(
                    repository=repo.name,
                    format=repo.format,
                    path=path,
                    sha256=deleted.sha256,
                    size=deleted.size,
                    actor=principal.username,
                ),
            )
        return deleted

    def _delete(self, repo: Repo, path: str, principal: Principal) -> StoredAsset | None:
        with self.engine.db.write() as session:
            row = queries.delete_asset(session, repo.id, path)
            if row is None:
                return None
            queries.bump_revision(session, repo.id)
            session.add(
                AuditEvent(actor=principal.username, action="asset.deleted", repository=repo.name, path=path)
            )
            return queries.to_asset(repo.name, row)


__all__ = ["Hosted", "Upload", "WritePolicyViolation", "HTTPProblem"]
