"""Resumable upload sessions that live in the database and blob store, not in process memory,
so consecutive chunks of one upload may reach different processes or nodes (OCI chunked pushes).

A session row records the bytes accepted so far (`offset`). An append claims the session by moving
its offset to -1 (compare-and-set), writes, then records the new offset; an append that fails half
way drops the session, since a temporary object cannot be truncated back. Blob GC drops sessions
untouched for `SESSION_SECONDS` (a day): an append that takes longer (a large layer over a slow
link) touches its session every TOUCH_SECONDS while it runs.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select, update

from artifactory.blobstore import store as blobstore
from artifactory.blobstore.gc import SESSION_SECONDS
from artifactory.blobstore.store import StagedBlob
from artifactory.db.models import UploadSession, utcnow
from artifactory.keeper import Keeper
from artifactory.repository.errors import DigestMismatch, TooLarge, UploadOffsetMismatch, UploadUnknown
from artifactory.repository.model import Repo

if TYPE_CHECKING:
    from artifactory.repository.engine import Engine

BUSY = -1
TOUCH_SECONDS = SESSION_SECONDS / 24


@dataclass(frozen=True)
class UploadState:
    id: str
    offset: int
    path: str
    attributes: Mapping[str, Any]


class Uploads:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # The sessions a chunk is being appended to, touched while it arrives.
        self._appending: Keeper[str] = Keeper(lambda: TOUCH_SECONDS, self._touch, "upload sessions")

    async def start(
        self, repo: Repo, path: str = "", attributes: Mapping[str, Any] | None = None
    ) -> UploadState:
        temp = await self.engine.blobs.open_temp()
        session_id = uuid.uuid4().hex

        def create() -> None:
            with self.engine.db.write() as session:
                session.add(
                    UploadSession(
                        id=session_id,
                        repository_id=repo.id,
                        path=path,
                        temp_key=temp,
                        offset=0,
                        attributes=dict(attributes or {}),
                    )
                )

        await self.engine.db_call(create)
        return UploadState(session_id, 0, path, dict(attributes or {}))

    def _get(self, repo: Repo, session_id: str) -> UploadSession | None:
        with self.engine.db.read() as session:
            return session.scalar(
                select(UploadSession).where(
                    UploadSession.id == session_id, UploadSession.repository_id == repo.id
                )
            )

    async def status(self, repo: Repo, session_id: str) -> UploadState:
        row = await self.engine.db_call(self._get, repo, session_id)
        if row is None:
            raise UploadUnknown(f"upload {session_id} not found")
        return UploadState(row.id, row.offset, row.path, row.attributes or {})

    def _claim(self, session_id: str, offset: int) -> bool:
        with self.engine.db.write() as session:
            result = session.execute(
                update(UploadSession)
                .where(UploadSession.id == session_id, UploadSession.offset == offset)
                .values(offset=BUSY, updated_at=utcnow())
            )
            return bool(getattr(result, "rowcount", 0))

    async def close(self) -> None:
        await self._appending.close()

    async def _touch(self, session_ids: list[str]) -> None:
        await self.engine.db_call(self._touch_rows, session_ids)

    def _touch_rows(self, session_ids: list[str]) -> None:
        with self.engine.db.write(durable=False) as session:
            session.execute(
                update(UploadSession)
                .where(UploadSession.id.in_(session_ids), UploadSession.offset == BUSY)
                .values(updated_at=utcnow())
            )

    def _record(self, session_id: str, offset: int) -> None:
        with self.engine.db.write() as session:
            session.execute(
                update(UploadSession)
                .where(UploadSession.id == session_id)
                .values(offset=offset, updated_at=utcnow())
            )

    def _remove(self, session_id: str) -> None:
        with self.engine.db.write() as session:
            session.execute(delete(UploadSession).where(UploadSession.id == session_id))

    async def append(
        self, repo: Repo, session_id: str, chunks: AsyncIterable[bytes], start: int | None = None
    ) -> UploadState:
        """Append bytes; `start` (from a Content-Range) must equal the current offset."""
        row = await self.engine.db_call(self._get, repo, session_id)
        if row is None:
            raise UploadUnknown(f"upload {session_id} not found")
        if row.offset == BUSY:
            raise UploadOffsetMismatch(0)
        if start is not None and start != row.offset:
            raise UploadOffsetMismatch(row.offset)
        if not await self.engine.db_call(self._claim, session_id, row.offset):
            raise UploadOffsetMismatch(row.offset)
        limit = int(repo.config.get("max_upload_bytes") or self.engine.settings.max_upload_bytes)
        self._appending.hold(session_id)
        try:
            size = await self.engine.blobs.append(row.temp_key, chunks, limit)
        except BaseException as exc:
            await self.engine.blobs.drop_temp(row.temp_key)
            await self.engine.db_call(self._remove, session_id)
            if isinstance(exc, blobstore.TooLarge):
                raise TooLarge(str(exc)) from None
            raise
        finally:
            self._appending.release(session_id)
        await self.engine.db_call(self._record, session_id, size)
        return UploadState(row.id, size, row.path, row.attributes or {})

    async def finish(
        self, repo: Repo, session_id: str, expected: Mapping[str, str | None] | None = None
    ) -> tuple[UploadState, StagedBlob]:
        """Close the session: its bytes, verified against `expected`, ready for `Engine.commit`."""
        row = await self.engine.db_call(self._get, repo, session_id)
        if row is None:
            raise UploadUnknown(f"upload {session_id} not found")
        if row.offset == BUSY or not await self.engine.db_call(self._claim, session_id, row.offset):
            raise UploadOffsetMismatch(max(row.offset, 0))
        try:
            staged = await self.engine.blobs.finish(row.temp_key, expected)
        except blobstore.DigestMismatch as exc:
            await self.engine.db_call(self._remove, session_id)
            raise DigestMismatch(f"digest mismatch: {exc}", exc.algorithm, exc.expected, exc.actual) from None
        await self.engine.db_call(self._remove, session_id)
        return UploadState(row.id, staged.info.size, row.path, row.attributes or {}), staged

    async def cancel(self, repo: Repo, session_id: str) -> None:
        row = await self.engine.db_call(self._get, repo, session_id)
        if row is None:
            raise UploadUnknown(f"upload {session_id} not found")
        await self.engine.db_call(self._remove, session_id)
        await self.engine.blobs.drop_temp(row.temp_key)
