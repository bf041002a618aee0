"""The audit log: who changed what, who failed to sign in, who was refused.

Rows live in the `audit_event` table (asset writes are recorded by the engine inside the transaction
that makes them; everything else through `Audit.record`). `GET /api/v1/audit` pages through them
newest first. With the `audit_log` setting naming a file, every event is also appended to it as one
JSON line (the built-in plugin below writes the engine's asset events there too), for shipping to a
log system; lines from several processes never interleave because each is one O_APPEND write.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pluggy
from sqlalchemy import select

from artifactory.db.engine import Database
from artifactory.db.models import AuditEvent, utcnow
from artifactory.db.queries import starts_with
from artifactory.events import AssetEvent

log = logging.getLogger(__name__)
hookimpl = pluggy.HookimplMarker("artifactory")
MAX_PAGE = 1000


class JsonLines:
    """Append-only JSON-lines file, shared safely by every process of one node."""

    def __init__(self, path: str) -> None:
        self.path = path

    def write(self, event: dict[str, Any]) -> None:
        if not self.path:
            return
        line = (json.dumps(event, default=str, separators=(",", ":")) + "\n").encode()
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)
        except OSError as exc:  # the sink is a copy; the database row is the record
            log.warning("audit log %s: %s", self.path, exc)


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    next: str | None


class Audit:
    def __init__(self, db: Database, sink_path: str = "") -> None:
        self.db = db
        self.sink = JsonLines(sink_path)

    def record(
        self,
        actor: str,
        action: str,
        repository: str = "",
        path: str = "",
        details: dict[str, Any] | None = None,
    ) -> None:
        """Store one event (blocking: call it from a worker thread)."""
        row = AuditEvent(
            at=utcnow(),
            actor=actor[:100],
            action=action[:50],
            repository=repository[:200],
            path=path[:1024],
            details=details or {},
        )
        with self.db.write() as session:
            session.add(row)
            session.flush()
            event = as_dict(row)
        self.sink.write(event)

    def query(
        self,
        actor: str | None = None,
        action: str | None = None,
        repository: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        cursor: int | None = None,
        limit: int = 100,
    ) -> Page:
        """Events newest first; `next` is the cursor of the following page (None on the last)."""
        query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(min(limit, MAX_PAGE) + 1)
        if actor:
            query = query.where(AuditEvent.actor == actor)
        if action:
            query = query.where(
                starts_with(AuditEvent.action, action[:-1])  # exact case, as `==` below
                if action.endswith("*")
                else AuditEvent.action == action
            )
        if repository:
            query = query.where(AuditEvent.repository == repository)
        if since:
            query = query.where(AuditEvent.at >= since)
        if until:
            query = query.where(AuditEvent.at < until)
        if cursor is not None:
            query = query.where(AuditEvent.id < cursor)
        with self.db.read() as session:
            rows = list(session.scalars(query))
        page = rows[: min(limit, MAX_PAGE)]
        more = len(rows) > len(page)
        return Page([as_dict(r) for r in page], str(page[-1].id) if more and page else None)


def as_dict(row: AuditEvent) -> dict[str, Any]:
    at = row.at if row.at.tzinfo else row.at.replace(tzinfo=UTC)
    return {
        "id": row.id,
        "at": at.isoformat().replace("+00:00", "Z"),
        "actor": row.actor,
        "action": row.action,
        "repository": row.repository,
        "path": row.path,
        "details": row.details or {},
    }


# -- the built-in plugin that copies the engine's own events to the JSON-lines sink ----------------
_sink = JsonLines("")


@hookimpl
def artifactory_startup(state: Any) -> None:
    _sink.path = str(getattr(state.settings, "audit_log", "") or "")


def _now() -> str:
    return utcnow().isoformat().replace("+00:00", "Z")


@hookimpl
def artifactory_asset_stored(event: AssetEvent) -> None:
    if not _sink.path:  # no copy wanted: spare every upload building an event nobody writes
        return
    _sink.write(
        {
            "at": _now(),
            "actor": event.actor,
            "action": "asset.stored",
            "repository": event.repository,
            "path": event.path,
            "details": {"sha256": event.sha256, "size": event.size},
        }
    )


@hookimpl
def artifactory_asset_deleted(event: AssetEvent) -> None:
    if not _sink.path:
        return
    _sink.write(
        {
            "at": _now(),
            "actor": event.actor,
            "action": "asset.deleted",
            "repository": event.repository,
            "path": event.path,
            "details": {"sha256": event.sha256},
        }
    )
