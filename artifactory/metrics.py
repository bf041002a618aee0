"""Prometheus metrics at /metrics, the access log and request ids.

Several worker processes share one set of metrics through prometheus_client's multiprocess mode:
`artifactory serve` points PROMETHEUS_MULTIPROC_DIR at a fresh folder in the data dir before any
worker starts, every worker records into its own memory-mapped files there, and a scrape of any
worker adds them up. Without that variable (the app served some other way) each process reports
its own counts.

Labels never carry unbounded values: the repository label is a configured repository's name (or
empty), the method one of a fixed set, the status a number; never a path or a package name.
Gauges that describe stored data (blob bytes and count, proxy health) are read from the database
at scrape time, so every node reports the same numbers.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from starlette.types import Message, Receive, Scope, Send

from artifactory.db.models import AuditEvent, Blob, ProxyHealth, Repository, utcnow
from artifactory.events import AssetEvent

if TYPE_CHECKING:
    from artifactory.state import AppState

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
METHODS = frozenset({"GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "OPTIONS"})
REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
PROXY_ACTOR = "system:proxy"
access = logging.getLogger("artifactory.access")
hookimpl = pluggy.HookimplMarker("artifactory")

REQUESTS = Counter(
    "artifactory_http_requests_total",
    "HTTP requests answered, by format, repository, method and status.",
    ["format", "repository", "method", "status"],
)
LATENCY = Histogram(
    "artifactory_http_request_duration_seconds",
    "Time from a request's arrival to the end of its response.",
    ["format", "repository", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
UPLOAD_BYTES = Counter(
    "artifactory_upload_bytes_total",
    "Bytes of assets stored, by format and repository.",
    ["format", "repository"],
)
PROXY_FETCHES = Counter(
    "artifactory_proxy_fetches_total",
    "Proxy cache outcomes: hit (served from cache), miss (fetched from upstream), error.",
    ["repository", "outcome"],
)


def prepare_multiprocess(data_dir: Path) -> None:
    """Called once by `artifactory serve` before workers start: a fresh folder for their metrics."""
    folder = data_dir / "metrics"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    os.environ[MULTIPROC_ENV] = str(folder)


class StoredData(Collector):
    """Gauges read from the database at scrape time (cached for a few seconds)."""

    def __init__(self, state: AppState, cache_seconds: float = 5.0) -> None:
        self.state = state
        self.cache_seconds = cache_seconds
        self._at = 0.0
        self._families: list[Any] = []

    def collect(self) -> Iterator[Any]:
        now = time.monotonic()
        if now - self._at > self.cache_seconds:
            self._families = self._read()
            self._at = now
        yield from self._families

    def _read(self) -> list[Any]:
        blob_bytes = GaugeMetricFamily("artifactory_blob_store_bytes", "Bytes of every stored blob.")
        blob_count = GaugeMetricFamily("artifactory_blob_store_objects", "Stored blobs.")
        blocked = GaugeMetricFamily(
            "artifactory_proxy_blocked",
            "1 while a proxy has blocked its failing upstream.",
            labels=["repository"],
        )
        failures = GaugeMetricFamily(
            "artifactory_proxy_upstream_failures",
            "Upstream failures in the proxy's current run of failures.",
            labels=["repository"],
        )
        runs = CounterMetricFamily(
            "artifactory_maintenance_runs", "GC and cleanup runs recorded in the audit log.", labels=["kind"]
        )
        with self.state.db.read() as session:
            count, total = session.execute(select(func.count(), func.coalesce(func.sum(Blob.size), 0))).one()
            blob_count.add_metric([], count)
            blob_bytes.add_metric([], total)
            now = utcnow()
            for name, health in session.execute(
                select(Repository.name, ProxyHealth).join(
                    ProxyHealth, ProxyHealth.repository_id == Repository.id
                )
            ):
                is_blocked = health.blocked_until is not None and health.blocked_until > now
                blocked.add_metric([name], 1 if is_blocked else 0)
                failures.add_metric([name], health.failures)
            for kind in ("gc", "cleanup"):
                n = session.scalar(select(func.count()).where(AuditEvent.action == f"{kind}.run"))
                runs.add_metric([kind], n or 0)
        return [blob_bytes, blob_count, blocked, failures, runs]


class Metrics:
    """The per-process registry view that /metrics renders."""

    def __init__(self, state: AppState) -> None:
        self.registry = CollectorRegistry()
        if os.environ.get(MULTIPROC_ENV):
            MultiProcessCollector(self.registry)
        else:
            for collector in (REQUESTS, LATENCY, UPLOAD_BYTES, PROXY_FETCHES):
                self.registry.register(collector)
        self.registry.register(StoredData(state))

    def render(self) -> bytes:
        return generate_latest(self.registry)


def labels_for(scope: Scope, state: AppState) -> tuple[str, str]:
    """(format, repository) of a request, bounded: only configured repositories are named."""
    repo = scope.get("artifactory.repo")
    if repo is not None:
        return repo.format, repo.name
    path: str = scope.get("artifactory.request_path", "")
    if path.startswith("/v2/"):
        name = path[4:].partition("/")[0]
        known = state.engine.repos.get(name) if name and not name.startswith("_") else None
        return "oci", known.name if known is not None else ""
    if path.startswith("/api/"):
        return "api", ""
    if path.startswith("/ui"):
        return "ui", ""
    if path.startswith("/repository/"):
        return "", ""
    return "other", ""


def observe(state: AppState, app: Any) -> Any:
    """Wrap an ASGI app: request id, metrics and the access log for every HTTP request."""
    mode = state.settings.access_log
    if mode != "off" and not access.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        access.addHandler(handler)
        access.setLevel(logging.INFO)
        access.propagate = False

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = ""
        for key, value in scope.get("headers", ()):
            if key == b"x-request-id":
                candidate = value.decode("latin-1")
                request_id = candidate if REQUEST_ID.match(candidate) else ""
                break
        request_id = request_id or uuid.uuid4().hex
        scope["artifactory.request_id"] = request_id
        status = 500
        sent = 0
        header_value = request_id.encode()

        async def sender(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {
                    **message,
                    "headers": [*message.get("headers", []), (b"x-request-id", header_value)],
                }
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await app(scope, receive, sender)
        finally:
            elapsed = time.perf_counter() - started
            fmt, repository = labels_for(scope, state)
            method = scope["method"] if scope["method"] in METHODS else "OTHER"
            REQUESTS.labels(fmt, repository, method, str(status)).inc()
            LATENCY.labels(fmt, repository, method).observe(elapsed)
            if mode != "off":
                _log_access(mode, scope, status, sent, elapsed, request_id)

    return wrapped


@hookimpl
def artifactory_asset_stored(event: AssetEvent) -> None:
    if event.actor == PROXY_ACTOR:
        PROXY_FETCHES.labels(event.repository, "miss").inc()
    else:
        UPLOAD_BYTES.labels(event.format, event.repository).inc(event.size)


def _log_access(mode: str, scope: Scope, status: int, sent: int, elapsed: float, request_id: str) -> None:
    client = scope.get("client") or ("-", 0)
    principal = scope.get("artifactory.principal")
    user = principal.username if principal is not None and not principal.anonymous else "-"
    path = scope.get("artifactory.request_path") or scope.get("path", "")
    if mode == "json":
        access.info(
            json.dumps(
                {
                    "time": utcnow().isoformat(),
                    "request_id": request_id,
                    "client": client[0],
                    "user": user,
                    "method": scope["method"],
                    "path": path,
                    "status": status,
                    "bytes": sent,
                    "seconds": round(elapsed, 6),
                },
                separators=(",", ":"),
            )
        )
        return
    stamp = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime())
    access.info(
        '%s - %s [%s] "%s %s HTTP/%s" %d %d %s',
        client[0],
        user,
        stamp,
        scope["method"],
        path,
        scope.get("http_version", "1.1"),
        status,
        sent,
        request_id,
    )
