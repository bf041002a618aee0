"""Upload policy and audit sink: a small, complete example of a non-format plugin.

Environment (read once, when the server starts):

- `ARTIFACTORY_UPLOAD_POLICY_DENY`: comma-separated glob patterns, e.g. `*.exe,*.sh,tmp/*`. An upload
  whose path below the repository root matches one is refused. Matching ignores case and `*` also
  matches `/`, so `*.exe` refuses `bin/setup.EXE` too.
- `ARTIFACTORY_UPLOAD_POLICY_MAX_BYTES`: refuse uploads larger than this many bytes.
- `ARTIFACTORY_UPLOAD_POLICY_EVENT_LOG`: append one JSON line per stored or deleted asset and per
  created or deleted repository to this file.

The checks apply to everything about to be stored, including files a proxy repository caches.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from artifactory.plugin import (
    AppState,
    AssetEvent,
    Principal,
    RepositoryEvent,
    UploadRefused,
    hookimpl,
)

DENY_ENV = "ARTIFACTORY_UPLOAD_POLICY_DENY"
MAX_BYTES_ENV = "ARTIFACTORY_UPLOAD_POLICY_MAX_BYTES"
EVENT_LOG_ENV = "ARTIFACTORY_UPLOAD_POLICY_EVENT_LOG"


@dataclass(frozen=True)
class Policy:
    deny: tuple[str, ...] = ()
    max_bytes: int | None = None
    event_log: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Policy:
        deny = tuple(p.strip().lower() for p in env.get(DENY_ENV, "").split(",") if p.strip())
        raw_max = env.get(MAX_BYTES_ENV, "").strip()
        max_bytes = None
        if raw_max:
            try:
                max_bytes = int(raw_max)
            except ValueError:
                raise ValueError(f"{MAX_BYTES_ENV} must be a number of bytes, not {raw_max!r}") from None
            if max_bytes < 0:
                raise ValueError(f"{MAX_BYTES_ENV} must not be negative")
        return cls(deny=deny, max_bytes=max_bytes, event_log=env.get(EVENT_LOG_ENV, "").strip())

    def denied_by(self, path: str) -> str | None:
        lowered = path.lower()
        return next((p for p in self.deny if fnmatch.fnmatchcase(lowered, p)), None)


class EventLog:
    """An append-only JSON-lines file; each line is one write(2) on an O_APPEND descriptor, so
    lines from several worker processes never interleave."""

    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        self._lock = threading.Lock()

    def write(self, record: dict[str, Any]) -> None:
        line = (json.dumps(record, sort_keys=True, default=str) + "\n").encode()
        with self._lock:
            if self._fd >= 0:
                os.write(self._fd, line)

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1


_policy: Policy | None = None
_log: EventLog | None = None


def _current() -> Policy:
    # Normally set by artifactory_startup; a process that never ran the start-up hook still gets the
    # configured policy rather than none at all.
    global _policy
    if _policy is None:
        _policy = Policy.from_env(os.environ)
    return _policy


def _record(kind: str, event: AssetEvent | RepositoryEvent) -> None:
    if _log is not None:
        _log.write({"event": kind, "time": datetime.now(UTC).isoformat(), **dataclasses.asdict(event)})


@hookimpl
def artifactory_startup(state: AppState) -> None:
    global _policy, _log
    _policy = Policy.from_env(os.environ)  # a malformed setting raises: the server refuses to start
    if _log is not None:
        _log.close()
        _log = None
    if _policy.event_log:
        _log = EventLog(_policy.event_log)


@hookimpl
def artifactory_shutdown(state: AppState) -> None:
    global _policy, _log
    if _log is not None:
        _log.close()
    _policy, _log = None, None


@hookimpl
def artifactory_check_upload(
    repository: str, format: str, path: str, size: int, principal: Principal
) -> None:
    policy = _current()
    pattern = policy.denied_by(path)
    if pattern is not None:
        raise UploadRefused(f"upload policy: {path} matches the denied pattern {pattern!r}")
    if policy.max_bytes is not None and size > policy.max_bytes:
        raise UploadRefused(
            f"upload policy: {path} is {size} bytes, more than the limit of {policy.max_bytes} bytes"
        )


@hookimpl
def artifactory_asset_stored(event: AssetEvent) -> None:
    _record("asset.stored", event)


@hookimpl
def artifactory_asset_deleted(event: AssetEvent) -> None:
    _record("asset.deleted", event)


@hookimpl
def artifactory_repository_created(event: RepositoryEvent) -> None:
    _record("repository.created", event)


@hookimpl
def artifactory_repository_deleted(event: RepositoryEvent) -> None:
    _record("repository.deleted", event)
