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

What runs on every request is kept small (a small GET is the hot path): the app's one ASGI wrapper
calls `request_id` and `RequestMetrics.done`, and `RequestMetrics.log` only when the access log is on.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import re
import shutil
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from starlette.types import Scope

from artifactory.db.models import AuditEvent, Blob, ProxyHealth, Repository, utcnow
from artifactory.events import AssetEvent

if TYPE_CHECKING:
    from artifactory.state import AppState

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
METHODS = frozenset({"GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "OPTIONS"})
REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
REQUEST_ID_KEY = "artifactory.request_id"
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


def request_id(headers: Iterable[tuple[bytes, bytes]]) -> str:
    """The request's X-Request-Id: the client's own when it is well formed, else a new one.

    A new id is 32 hex digits like a uuid4's, at a fraction of the cost: a random 64-bit prefix drawn
    once per process (and drawn again in a forked child) followed by a 64-bit counter. Ids stay unique
    across workers and nodes as long as no two processes draw the same prefix, which among n processes
    happens with a probability of about n**2 / 2**65.
    """
    for key, value in headers:
        if key == b"x-request-id":
            candidate = value.decode("latin-1")
            if REQUEST_ID.match(candidate):
                return candidate
            break
    return f"{_id_prefix}{next(_id_counter):016x}"


def _new_id_prefix() -> None:
    global _id_prefix, _id_counter
    _id_prefix = os.urandom(8).hex()
    _id_counter = itertools.count()


_id_prefix = ""
_id_counter = itertools.count()
_new_id_prefix()
os.register_at_fork(after_in_child=_new_id_prefix)


class RequestMetrics:
    """Counts and times answered requests, with the access log when it is on.

    The labelled children are looked up once per (format, repository, method, status) and kept: a
    request costs one dictionary lookup besides the writes themselves. The keys stay bounded for
    the same reason the labels do.
    """

    def __init__(self, state: AppState) -> None:
        self.state = state
        self.access_mode = state.settings.access_log
        self._children: dict[tuple[str, str, str, int], tuple[Any, Any]] = {}
        if self.access_mode != "off" and not access.handlers:
            handler = logging.StreamHandler()
            handler.setFormatter(logging.Formatter("%(message)s"))
            access.addHandler(handler)
            access.setLevel(logging.INFO)
            access.propagate = False

    def done(self, scope: Scope, status: int, elapsed: float) -> None:
        repo = scope.get("artifactory.repo")
        if repo is not None:
            fmt, repository = repo.format, repo.name
        else:
            fmt, repository = _labels_outside_repositories(scope, self.state)
        method = scope["method"]
        if method not in METHODS:
            method = "OTHER"
        key = (fmt, repository, method, status)
        children = self._children.get(key)
        if children is None:
            children = (
                REQUESTS.labels(fmt, repository, method, str(status)),
                LATENCY.labels(fmt, repository, method),
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(elapsed)

    def log(self, scope: Scope, status: int, sent: int, elapsed: float) -> None:
        _log_access(self.access_mode, scope, status, sent, elapsed, scope.get(REQUEST_ID_KEY, ""))


def _labels_outside_repositories(scope: Scope, state: AppState) -> tuple[str, str]:
    """(format, repository) of a request that did not reach a repository, bounded: only configured
    repositories are named."""
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
