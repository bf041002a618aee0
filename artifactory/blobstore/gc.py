"""Garbage collection: removes blobs no asset references, and leftovers of interrupted uploads.

Safe while the server runs, at any grace (even 0): a blob is collected only when no asset points at
it and it was last touched before the grace period. A commit promotes new bytes before their row
exists (objects without a row are left alone for LEFTOVER_SECONDS), keeps its temporary copy when
the bytes were stored already, and touches the row inside the transaction that saves the asset,
then checks the bytes (promoting its kept copy if they are gone); an import reserves rows (touched
an hour ahead) first. GC locks the row, checks both again and removes the bytes inside the same
transaction that deletes the row. So an upload that reuses a blob either waits for GC and writes the
bytes again, or keeps the blob alive; it never links bytes GC is removing.

Temporary objects, upload sessions and objects without a blob row are left alone for at least
LEFTOVER_SECONDS whatever the grace: nothing in the database says whether a temporary object belongs
to an upload still arriving, only its age does. Upstream links (absolute upstream URLs and digests
that proxied documents named) not refreshed for LINK_SECONDS (or the grace, if longer) are dropped.
Work is done in small batches, each its own transaction, so GC can be interrupted and run again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, exists, select
from sqlalchemy.orm import Session

from artifactory.blobstore.store import BlobStore
from artifactory.db.engine import Database
from artifactory.db.models import Asset, Blob, ProxyLease, ProxyMiss, UploadSession, utcnow

log = logging.getLogger(__name__)
DEFAULT_GRACE_SECONDS = 24 * 3600
# The least age of a temporary object or row-less object before GC takes it: an upload still
# arriving writes its temporary object at least this often.
LEFTOVER_SECONDS = 3600
# An upload session untouched this long is abandoned, its temporary object with it (a client may
# pause between chunks; incomplete uploads are kept a day, as Nexus's cleanup task keeps them). An
# append touches its session while it runs (`Uploads.append`).
SESSION_SECONDS = 24 * 3600
BATCH = 200


@dataclass
class GcReport:
    blobs: int = 0
    bytes: int = 0
    orphan_objects: int = 0
    temps: int = 0
    dry_run: bool = False
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "blobs": self.blobs,
            "bytes": self.bytes,
            "orphan_objects": self.orphan_objects,
            "temps": self.temps,
            "dry_run": self.dry_run,
            "errors": self.errors,
        }


def collect(
    db: Database,
    store: BlobStore,
    grace_seconds: int = DEFAULT_GRACE_SECONDS,
    dry_run: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> GcReport:
    """Collect what nothing references; `progress(blobs, bytes)` hears of each batch as it goes."""
    report = GcReport(dry_run=dry_run)
    cutoff = utcnow() - timedelta(seconds=grace_seconds)
    unreferenced = ~exists().where(Asset.blob_sha256 == Blob.sha256)
    last_seen = ""
    while True:
        with db.read() as session:
            batch = list(
                session.execute(
                    select(Blob.sha256, Blob.size)
                    .where(Blob.sha256 > last_seen, Blob.touched_at < cutoff, unreferenced)
                    .order_by(Blob.sha256)
                    .limit(BATCH)
                )
            )
        if not batch:
            break
        last_seen = batch[-1].sha256
        before = (report.blobs, report.bytes)
        if dry_run:
            report.blobs += len(batch)
            report.bytes += sum(row.size for row in batch)
        else:
            with db.write() as session:
                for row in batch:
                    if _collect_blob(session, store, row.sha256, cutoff):
                        report.blobs += 1
                        report.bytes += row.size
        if progress is not None:
            progress(report.blobs - before[0], report.bytes - before[1])
    leftovers = min(cutoff, utcnow() - timedelta(seconds=LEFTOVER_SECONDS))
    _orphans(db, store, leftovers.timestamp(), dry_run, report)
    _temps(db, store, leftovers.timestamp(), dry_run, report)
    if not dry_run:
        with db.write() as session:
            now = utcnow()
            session.execute(delete(ProxyLease).where(ProxyLease.expires_at < now))
            session.execute(delete(ProxyMiss).where(ProxyMiss.expires_at < now))
            abandoned = utcnow() - timedelta(seconds=SESSION_SECONDS)
            session.execute(delete(UploadSession).where(UploadSession.updated_at < abandoned))
    return report


def _collect_blob(session: Session, store: BlobStore, sha256: str, cutoff: datetime) -> bool:
    """Delete one blob's row and bytes if it is still unreferenced and untouched since `cutoff`.

    The row lock (PostgreSQL; SQLite's write transaction is exclusive) waits for a commit that is
    touching or linking the blob; the reference check after it is a new statement, so it sees that
    commit's asset. A commit that comes later waits on this lock and then finds the row gone.
    """
    locked = session.scalar(
        select(Blob.sha256).where(Blob.sha256 == sha256, Blob.touched_at < cutoff).with_for_update()
    )
    if locked is None:
        return False
    if session.scalar(select(Asset.id).where(Asset.blob_sha256 == sha256).limit(1)) is not None:
        return False
    session.execute(delete(Blob).where(Blob.sha256 == sha256))
    store.delete(sha256)  # inside the transaction: see the module docstring
    return True


def _orphans(db: Database, store: BlobStore, cutoff: float, dry_run: bool, report: GcReport) -> None:
    """Objects in the store that no blob row names (a crash between promote and the row's removal)."""
    pending: list[str] = []

    def flush() -> None:
        with db.read() as session:
            known = set(session.scalars(select(Blob.sha256).where(Blob.sha256.in_(pending))))
        for sha256 in pending:
            if sha256 not in known:
                report.orphan_objects += 1
                if not dry_run:
                    store.delete(sha256)
        pending.clear()

    for key, mtime in store.driver.list_keys():
        sha256 = key.rsplit("/", 1)[-1]
        if mtime < cutoff and len(sha256) == 64:
            pending.append(sha256)
            if len(pending) >= BATCH:
                flush()
    if pending:
        flush()


def _temps(db: Database, store: BlobStore, cutoff: float, dry_run: bool, report: GcReport) -> None:
    with db.read() as session:
        live = set(session.scalars(select(UploadSession.temp_key)))
    for name, mtime in list(store.driver.list_temps()):
        if mtime < cutoff and name not in live:
            report.temps += 1
            if not dry_run:
                store.driver.delete_temp(name)
