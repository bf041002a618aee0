"""The delivery loop: one asyncio task per server process claims due outbox rows and POSTs them.

Any process on any node may deliver any row; the outbox lease makes each row go out once at a time.
Deliveries run as their own tasks, at most PER_WEBHOOK_IN_FLIGHT per webhook per process, so a
receiver that hangs holds up only its own deliveries (each for at most its timeout), never a
request and never another webhook.

A process that stops settles every row it leased before it exits (`release`), so the next process
sends them at once instead of waiting for the lease to run out: that includes rows whose claim was
still committing when the stop came (a claim notes its rows as held in the same step that takes
them, and `release` waits for it) and rows whose POST has answered but whose outcome was not written
yet (`release` writes the outcome rather than handing back a delivery the receiver already took).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import httpx
from anyio import to_thread
from artifactory_plugins.webhooks.config import Webhook
from artifactory_plugins.webhooks.outbox import Claimed, Outbox

log = logging.getLogger("artifactory.webhooks")
T = TypeVar("T")

PER_WEBHOOK_IN_FLIGHT = 4
POLL_SECONDS = 1.0  # how often a process looks for rows other processes added or scheduled
LEASE_MARGIN_SECONDS = 30.0  # a claim outlives the longest POST by this much
CLAIM_WAIT_SECONDS = 5.0  # how long a stopping process waits for a claim that is still committing
PRUNE_EVERY_SECONDS = 600.0
DELIVERED_RETENTION_SECONDS = 7 * 86400.0
FAILED_RETENTION_SECONDS = 30 * 86400.0
PENDING_RETENTION_SECONDS = 30 * 86400.0
ERROR_BODY_BYTES = 200
USER_AGENT = "artifactory-webhooks/1"


def signature(secret: str, body: bytes) -> str:
    """The X-Artifactory-Signature value: "sha256=" and the hex HMAC-SHA256 of the body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def request_headers(webhook: Webhook, claimed: Claimed, body: bytes) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "x-artifactory-event": claimed.event,
        "x-artifactory-delivery": str(claimed.id),
        "x-artifactory-signature": signature(webhook.secret, body),
    }


class Deliverer:
    def __init__(self, outbox: Outbox, webhooks: Mapping[str, Webhook]) -> None:
        self.outbox = outbox
        self.webhooks = dict(webhooks)
        self.lease_seconds = max(w.timeout_seconds for w in self.webhooks.values()) + LEASE_MARGIN_SECONDS
        self._in_flight = dict.fromkeys(self.webhooks, 0)
        self._holding: dict[int, Claimed] = {}  # claimed rows whose outcome is not recorded yet
        self._outcomes: dict[int, Callable[[], bool]] = {}  # of those, the ones whose POST answered
        self._claiming = threading.Lock()  # held by a worker thread while a claim commits
        self._stopped = False  # set by release(): claim nothing more
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._next_retry = float("inf")
        self._next_prune = 0.0

    def wake(self) -> None:
        """Look for due rows now (call on the event loop's thread)."""
        self._wake.set()

    async def run(self) -> None:
        async with httpx.AsyncClient(follow_redirects=False, trust_env=False) as client:
            try:
                while True:
                    self._wake.clear()
                    await self._round(client)
                    now = time.time()
                    pause = max(0.0, min(POLL_SECONDS, self._next_retry - now))
                    try:
                        await asyncio.wait_for(self._wake.wait(), pause)
                    except TimeoutError:
                        pass
            finally:
                for task in list(self._tasks):
                    task.cancel()

    async def _round(self, client: httpx.AsyncClient) -> None:
        now = time.time()
        if self._next_retry <= now:
            self._next_retry = float("inf")
        try:
            if now >= self._next_prune:
                self._next_prune = now + PRUNE_EVERY_SECONDS
                await self._prune(now)
            free = {
                name: PER_WEBHOOK_IN_FLIGHT - n
                for name, n in self._in_flight.items()
                if n < PER_WEBHOOK_IN_FLIGHT
            }
            due = await _blocking(self.outbox.due, free.keys(), now, sum(free.values()) * 4)
            wanted = []
            for row_id, name in due:
                if free.get(name, 0) > 0:
                    free[name] -= 1
                    wanted.append(row_id)
            claimed = await _blocking(self._claim, wanted, now) if wanted else []
        except Exception:  # noqa: BLE001 - the database may be briefly unavailable; try again later
            log.exception("webhooks: could not read the outbox")
            return
        for row in claimed:
            self._in_flight[row.webhook] += 1
            task = asyncio.create_task(self._deliver(client, row))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _claim(self, ids: list[int], now: float) -> list[Claimed]:
        """Claim rows and note them as held in one step (in a worker thread), so that release() sees
        every row this process leased, however late the claim's thread hands its result back."""
        with self._claiming:
            if self._stopped:
                return []
            claimed = self.outbox.claim(ids, now, self.lease_seconds)
            for row in claimed:
                self._holding[row.id] = row
            return claimed

    async def _prune(self, now: float) -> None:
        removed = await _blocking(
            self.outbox.prune,
            now - DELIVERED_RETENTION_SECONDS,
            now - FAILED_RETENTION_SECONDS,
            now - PENDING_RETENTION_SECONDS,
        )
        if removed:
            log.info("webhooks: pruned %d old deliveries", removed)

    async def _deliver(self, client: httpx.AsyncClient, row: Claimed) -> None:
        webhook = self.webhooks[row.webhook]
        try:
            status, error = await self._post(client, webhook, row)
            record = self._outcome(webhook, row, status, error)
            self._outcomes[row.id] = record
            await _blocking(record)
            self._settled(row)
        except asyncio.CancelledError:
            raise  # shutting down: release() records the outcome or hands the row back
        except Exception:  # noqa: BLE001 - the outcome could not be stored: the lease runs out, it goes again
            self._settled(row)
            log.exception("webhooks: could not record the outcome of delivery %d", row.id)
        finally:
            self._in_flight[row.webhook] -= 1
            self._wake.set()

    def _outcome(self, webhook: Webhook, row: Claimed, status: int | None, error: str) -> Callable[[], bool]:
        """The outbox write that records what this attempt came to (it checks the lease, so writing
        it twice, by the delivery task and by release(), records it once)."""
        now = time.time()
        if status is not None and 200 <= status < 300:
            return functools.partial(self.outbox.delivered, row, now, status)
        if row.attempts >= webhook.max_attempts:
            log.warning(
                "webhooks: giving up on delivery %d (%s) to %s after %d attempts: %s",
                row.id,
                row.event,
                webhook.name,
                row.attempts,
                error,
            )
            return functools.partial(self.outbox.failed, row, now, status, error)
        due_at = now + webhook.backoff(row.attempts)
        self._next_retry = min(self._next_retry, due_at)
        return functools.partial(self.outbox.retry, row, due_at, status, error)

    def _settled(self, row: Claimed) -> None:
        self._holding.pop(row.id, None)
        self._outcomes.pop(row.id, None)

    def release(self) -> int:
        """Stop claiming and settle every row this process still holds: write the outcome of those
        whose POST has answered, and hand back the rest due at once, so that a restarted or another
        process sends them without waiting for the lease to run out (blocking; at shutdown, on the
        event loop's thread). A claim still committing is waited for, up to CLAIM_WAIT_SECONDS."""
        waited = self._claiming.acquire(timeout=CLAIM_WAIT_SECONDS)
        try:
            self._stopped = True
            held, self._holding = list(self._holding.values()), {}
            outcomes, self._outcomes = self._outcomes, {}
        finally:
            if waited:
                self._claiming.release()
            else:
                log.warning("webhooks: a claim was still running at shutdown; its rows wait for their lease")
        undecided = [row for row in held if row.id not in outcomes]
        if undecided:
            self.outbox.release(undecided, time.time())
        for row_id, record in outcomes.items():
            try:
                record()
            except Exception:  # noqa: BLE001 - the others still get theirs; this one's lease runs out
                log.exception("webhooks: could not record the outcome of delivery %d at shutdown", row_id)
        return len(held)

    async def _post(
        self, client: httpx.AsyncClient, webhook: Webhook, row: Claimed
    ) -> tuple[int | None, str]:
        """(HTTP status or None, what went wrong or "")."""
        body = row.payload.encode()
        try:
            async with asyncio.timeout(webhook.timeout_seconds):
                async with client.stream(
                    "POST", webhook.url, content=body, headers=request_headers(webhook, row, body)
                ) as response:
                    if 200 <= response.status_code < 300:
                        return response.status_code, ""
                    head = b""
                    async for chunk in response.aiter_raw():
                        head += chunk
                        if len(head) >= ERROR_BODY_BYTES:
                            break
                    text = head[:ERROR_BODY_BYTES].decode("utf-8", "replace").strip()
                    return response.status_code, f"HTTP {response.status_code}: {text}".strip(": ")
        except TimeoutError:
            return None, f"no answer within {webhook.timeout_seconds:g} s"
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


async def _blocking(fn: Callable[..., T], *args: Any) -> T:
    return await to_thread.run_sync(fn, *args)
