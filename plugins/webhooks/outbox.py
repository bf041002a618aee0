"""The durable outbox: one `webhook_delivery` row per (event, webhook), created by migration 0004.

A row is `pending` until a POST to its webhook answers 2xx (`delivered`) or it has used up its
attempts (`failed`). `due_at` (epoch seconds, like every time column here) is when it may next be
tried; claiming a row moves `due_at` a lease ahead and stamps `lease`, so exactly one process (on any
node) holds it at a time and a process that dies mid-delivery only delays it until the lease runs
out. A holder records the outcome only while its lease is still the row's. Every method blocks:
call them from a worker thread.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import sqlalchemy as sa

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
MAX_ERROR = 500

metadata = sa.MetaData()
deliveries = sa.Table(
    "webhook_delivery",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
    sa.Column("webhook", sa.String(200), nullable=False),
    sa.Column("event", sa.String(50), nullable=False),
    sa.Column("payload", sa.Text(), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.Column("due_at", sa.Double(), nullable=False),
    sa.Column("lease", sa.String(32), nullable=True),
    sa.Column("created_at", sa.Double(), nullable=False),
    sa.Column("finished_at", sa.Double(), nullable=True),
    sa.Column("last_status", sa.Integer(), nullable=True),
    sa.Column("last_error", sa.String(MAX_ERROR), nullable=True),
    sa.Index("ix_webhook_delivery_status_due_at", "status", "due_at"),
)
t = deliveries.c


@dataclass(frozen=True)
class NewDelivery:
    webhook: str
    event: str
    payload: str


@dataclass(frozen=True)
class Claimed:
    id: int
    webhook: str
    event: str
    payload: str
    attempts: int  # including the one this claim is for
    lease: str


class Outbox:
    def __init__(self, engine: sa.Engine, read_engine: sa.Engine | None = None) -> None:
        self.engine = engine
        self.read_engine = read_engine or engine

    def add(self, rows: Sequence[NewDelivery], now: float) -> None:
        if not rows:
            return
        values = [
            {
                "webhook": r.webhook,
                "event": r.event,
                "payload": r.payload,
                "status": PENDING,
                "attempts": 0,
                "due_at": now,
                "created_at": now,
            }
            for r in rows
        ]
        with self.engine.begin() as connection:
            connection.execute(deliveries.insert(), values)

    def due(self, webhooks: Collection[str], now: float, limit: int) -> list[tuple[int, str]]:
        """(id, webhook) of pending rows of these webhooks whose time has come, oldest first; a read."""
        if not webhooks or limit <= 0:
            return []
        query = (
            sa.select(t.id, t.webhook)
            .where(t.status == PENDING, t.due_at <= now, t.webhook.in_(sorted(webhooks)))
            .order_by(t.due_at)
            .limit(limit)
        )
        with self.read_engine.connect() as connection:
            due = [(row.id, row.webhook) for row in connection.execute(query)]
            # Ended by COMMIT: on PostgreSQL a ROLLBACK makes psycopg forget the connection's
            # prepared statements (see `Database.read`).
            connection.commit()
            return due

    def claim(self, ids: Collection[int], now: float, lease_seconds: float) -> list[Claimed]:
        """Take those of `ids` that are still pending and due; rows another process took are skipped.

        One conditional UPDATE: on PostgreSQL a concurrent claimer blocks on the row and then finds it
        no longer due; on SQLite write transactions run one at a time.
        """
        if not ids:
            return []
        token = uuid.uuid4().hex
        claim = (
            deliveries.update()
            .where(t.id.in_(sorted(ids)), t.status == PENDING, t.due_at <= now)
            .values(lease=token, due_at=now + lease_seconds, attempts=t.attempts + 1)
        )
        query = sa.select(t.id, t.webhook, t.event, t.payload, t.attempts).where(
            t.id.in_(sorted(ids)), t.lease == token
        )
        with self.engine.begin() as connection:
            connection.execute(claim)
            rows = connection.execute(query).all()
        return [Claimed(r.id, r.webhook, r.event, r.payload, r.attempts, token) for r in rows]

    def delivered(self, claimed: Claimed, now: float, status: int) -> bool:
        return self._finish(claimed, status=DELIVERED, finished_at=now, last_status=status, last_error=None)

    def retry(self, claimed: Claimed, due_at: float, status: int | None, error: str) -> bool:
        return self._finish(claimed, due_at=due_at, last_status=status, last_error=error[:MAX_ERROR])

    def failed(self, claimed: Claimed, now: float, status: int | None, error: str) -> bool:
        return self._finish(
            claimed, status=FAILED, finished_at=now, last_status=status, last_error=error[:MAX_ERROR]
        )

    def release(self, claimed: Sequence[Claimed], now: float) -> None:
        """Give rows back undecided (this process is stopping mid-delivery): due again at once."""
        with self.engine.begin() as connection:
            for row in claimed:
                connection.execute(
                    deliveries.update()
                    .where(t.id == row.id, t.lease == row.lease)
                    .values(lease=None, due_at=now)
                )

    def _finish(self, claimed: Claimed, **values: object) -> bool:
        """Record an outcome if the lease is still ours (False: it ran out and the row moved on)."""
        with self.engine.begin() as connection:
            result = connection.execute(
                deliveries.update()
                .where(t.id == claimed.id, t.lease == claimed.lease)
                .values(lease=None, **values)
            )
        return bool(result.rowcount)

    def prune(self, delivered_before: float, failed_before: float, pending_before: float) -> int:
        """Delete delivered and failed rows finished before these times, and pending rows created before
        `pending_before` (those of a webhook no longer configured anywhere). Returns how many went."""
        with self.engine.begin() as connection:
            removed = 0
            for condition in (
                sa.and_(t.status == DELIVERED, t.finished_at < delivered_before),
                sa.and_(t.status == FAILED, t.finished_at < failed_before),
                sa.and_(t.status == PENDING, t.created_at < pending_before),
            ):
                removed += connection.execute(deliveries.delete().where(condition)).rowcount or 0
        return removed
