"""Garbage collection: removes blobs no asset references, and leftovers of interrupted uploads.

Safe while the server runs: a blob is collected only when no asset points at it and it was last
touched before the grace period. Ingest touches a blob's row *before* promoting its bytes, and GC
removes the bytes inside the same transaction that deletes the row, so an upload that reuses a blob
either sees the row gone (and writes the bytes again) or keeps it alive. Work is done in small
batches, each its own transaction, so GC can be interrupted and run again at any time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, exists, select

from artifactory.blobstore.store import BlobStore
from artifactory.db.engine import Database
from artifactory.db.models import Asset, Blob, ProxyLease, ProxyMiss, UploadSession, utcnow

log = logging.getLogger(__name__)
DEFAULT_GRACE_SECONDS = 24 * 3600
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
    db: Database, store: BlobStore, grace_seconds: int = DEFAULT_GRACE_SECONDS, dry_run: bool = False
) -> GcReport:
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
        if dry_run:
            report.blobs += len(batch)
            report.bytes += sum(row.size for row in batch)
            continue
        with db.write() as session:
            for row in batch:
                gone = session.execute(
                    delete(Blob).where(Blob.sha256 == row.sha256, Blob.touched_at < cutoff, unreferenced)
                )
                if getattr(gone, "rowcount", 0):
                    store.delete(row.sha256)  # inside the transaction: see the module docstring
                    report.blobs += 1
                    report.bytes += row.size
    _orphans(db, store, cutoff.timestamp(), dry_run, report)
    _temps(db, store, cutoff.timestamp(), dry_run, report)
    if not dry_run:
        with db.write() as session:
            now = utcnow()
            session.execute(delete(ProxyLease).where(ProxyLease.expires_at < now))
            session.execute(delete(ProxyMiss).where(ProxyMiss.expires_at < now))
            session.execute(delete(UploadSession).where(UploadSession.updated_at < cutoff))
    return report


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
