"""Hooks of the webhooks plugin: turn events into outbox rows, run the delivery loop.

An event hook runs on the server's event loop right after the change committed. It only matches the
event against the configured webhooks and hands one row per match to the spool; a worker thread
INSERTs what the spool holds in one short transaction and wakes the delivery loop. No HTTP call and no
database wait ever happens in the request that caused the event. A process that stops cleanly writes
what is still spooled before it exits.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from anyio import to_thread
from artifactory_plugins.webhooks.config import Webhook, parse_webhooks
from artifactory_plugins.webhooks.delivery import Deliverer
from artifactory_plugins.webhooks.outbox import NewDelivery, Outbox

from artifactory.plugin import AppState, AssetEvent, RepositoryEvent, hookimpl

log = logging.getLogger("artifactory.webhooks")
RETRY_WRITE_SECONDS = 1.0


class Spool:
    """Rows waiting for their INSERT. `put` may be called from any thread; `flush` blocks."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self._rows: list[NewDelivery] = []
        self._lock = threading.Lock()  # guards _rows
        self._writing = threading.Lock()  # held while a batch is written, so shutdown waits for it

    def put(self, rows: list[NewDelivery]) -> None:
        with self._lock:
            self._rows.extend(rows)

    def flush(self) -> int:
        with self._writing:
            with self._lock:
                rows, self._rows = self._rows, []
            try:
                self.outbox.add(rows, time.time())
            except BaseException:
                with self._lock:
                    self._rows[:0] = rows
                raise
            return len(rows)


class Runtime:
    """What one server process runs for webhooks, from `artifactory_startup` to `artifactory_shutdown`."""

    def __init__(self, state: AppState, webhooks: tuple[Webhook, ...]) -> None:
        self.state = state
        self.webhooks = webhooks
        self.outbox = Outbox(state.db.engine, state.db.read_engine)
        self.spool = Spool(self.outbox)
        self.deliverer = Deliverer(self.outbox, {w.name: w for w in webhooks})
        self.loop = asyncio.get_running_loop()
        self._spooled = asyncio.Event()
        self._tasks = [
            self.loop.create_task(self._write_loop(), name="webhooks-outbox-writer"),
            self.loop.create_task(self.deliverer.run(), name="webhooks-delivery"),
        ]

    def emit(self, event: str, repository: str, payload: dict[str, Any]) -> None:
        targets = [w for w in self.webhooks if w.wants(event, repository)]
        if not targets:
            return
        body = json.dumps(payload, separators=(",", ":"), sort_keys=True)
        self.spool.put([NewDelivery(w.name, event, body) for w in targets])
        self.loop.call_soon_threadsafe(self._spooled.set)

    async def _write_loop(self) -> None:
        while True:
            await self._spooled.wait()
            self._spooled.clear()
            try:
                if await to_thread.run_sync(self.spool.flush):
                    self.deliverer.wake()
            except Exception:  # noqa: BLE001 - keep the rows and try again shortly
                log.exception("webhooks: could not write to the outbox; retrying")
                await asyncio.sleep(RETRY_WRITE_SECONDS)
                self._spooled.set()

    def stop(self) -> None:
        """Stop delivering; write what is spooled and hand back what is mid-delivery (blocking)."""
        for task in self._tasks:
            task.cancel()
        try:
            written = self.spool.flush()
        except Exception:  # noqa: BLE001 - shutdown must go on; say what is lost
            log.exception("webhooks: could not write spooled deliveries at shutdown; they are lost")
        else:
            if written:
                log.info("webhooks: wrote %d spooled deliveries at shutdown", written)
        try:
            self.deliverer.release()
        except Exception:  # noqa: BLE001 - their leases run out instead
            log.exception("webhooks: could not hand back deliveries in progress")


_runtime: Runtime | None = None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _base(event: str, actor: str, repository: dict[str, str]) -> dict[str, Any]:
    return {"id": uuid.uuid4().hex, "event": event, "at": _now(), "actor": actor, "repository": repository}


def _asset_events(kind: str, event: AssetEvent) -> None:
    runtime = _runtime
    if runtime is None:
        return
    asset: dict[str, Any] = {"path": event.path, "sha256": event.sha256, "size": event.size}
    external = runtime.state.settings.external_url.rstrip("/")
    if external:
        asset["url"] = f"{external}/repository/{quote(event.repository)}/{quote(event.path)}"
    repository = {"name": event.repository, "format": event.format}
    fmt = runtime.state.formats.get(event.format)
    try:
        coordinates = fmt.coordinates(event.path) if fmt is not None else None
    except Exception:  # noqa: BLE001 - a format that cannot place the path: an asset event only
        log.exception("webhooks: %s could not name the component of %s", event.format, event.path)
        coordinates = None
    component = None
    if coordinates is not None:
        component = {
            "namespace": coordinates.namespace,
            "name": coordinates.name,
            "version": coordinates.version,
        }
    payload = {**_base(f"asset.{kind}", event.actor, repository), "asset": asset}
    if component is not None:
        payload["component"] = component
    runtime.emit(f"asset.{kind}", event.repository, payload)
    if component is not None:
        payload = {
            **_base(f"component.{kind}", event.actor, repository),
            "component": component,
            "asset": asset,
        }
        runtime.emit(f"component.{kind}", event.repository, payload)


def _repository_event(kind: str, event: RepositoryEvent) -> None:
    runtime = _runtime
    if runtime is None:
        return
    repository = {"name": event.name, "format": event.format, "type": event.type}
    runtime.emit(f"repository.{kind}", event.name, _base(f"repository.{kind}", event.actor, repository))


@hookimpl
def artifactory_startup(state: AppState) -> None:
    global _runtime
    webhooks = parse_webhooks(getattr(state.settings, "webhooks", None))  # malformed: refuse to start
    if _runtime is not None:
        _runtime.stop()
        _runtime = None
    if webhooks:
        _runtime = Runtime(state, webhooks)
        log.info("webhooks: delivering to %s", ", ".join(w.name for w in webhooks))


@hookimpl
def artifactory_shutdown(state: AppState) -> None:
    global _runtime
    if _runtime is not None:
        runtime, _runtime = _runtime, None
        runtime.stop()


@hookimpl
def artifactory_asset_stored(event: AssetEvent) -> None:
    _asset_events("stored", event)


@hookimpl
def artifactory_asset_deleted(event: AssetEvent) -> None:
    _asset_events("deleted", event)


@hookimpl
def artifactory_repository_created(event: RepositoryEvent) -> None:
    _repository_event("created", event)


@hookimpl
def artifactory_repository_deleted(event: RepositoryEvent) -> None:
    _repository_event("deleted", event)
