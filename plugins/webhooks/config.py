"""The `webhooks` setting: a list of objects, checked once when the server starts.

[[webhooks]]
name = "ci"                                   # optional, default: the url; unique
url = "https://ci.example.internal/artifactory-hook"
secret = "..."                                # HMAC-SHA256 key of X-Artifactory-Signature
events = ["asset.stored", "component.*"]      # globs over EVENTS; default every event
repositories = ["release-*"]                  # globs over repository names; default every one
timeout_seconds = 10                          # and max_attempts, backoff_seconds, backoff_max_seconds
"""

from __future__ import annotations

import fnmatch
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

EVENTS = (
    "asset.stored",
    "asset.deleted",
    "component.stored",
    "component.deleted",
    "repository.created",
    "repository.deleted",
)
MAX_NAME = 200


@dataclass(frozen=True)
class Webhook:
    name: str
    url: str
    secret: str = field(repr=False)
    events: tuple[str, ...] = ("*",)
    repositories: tuple[str, ...] = ("*",)
    timeout_seconds: float = 10.0
    max_attempts: int = 12
    backoff_seconds: float = 10.0
    backoff_max_seconds: float = 3600.0

    def wants(self, event: str, repository: str) -> bool:
        return any(fnmatch.fnmatchcase(event, p) for p in self.events) and any(
            fnmatch.fnmatchcase(repository, p) for p in self.repositories
        )

    def backoff(self, attempts: int) -> float:
        """Seconds to wait after failed attempt number `attempts` (1 for the first): doubling from
        `backoff_seconds` up to `backoff_max_seconds`, less up to a tenth at random so that rows
        failed together do not retry together."""
        delay = min(self.backoff_max_seconds, self.backoff_seconds * 2 ** min(attempts - 1, 62))
        return delay * random.uniform(0.9, 1.0)


_NUMBERS: dict[str, type] = {
    "timeout_seconds": float,
    "max_attempts": int,
    "backoff_seconds": float,
    "backoff_max_seconds": float,
}
_KEYS = {"name", "url", "secret", "events", "repositories", *_NUMBERS}


def parse_webhooks(raw: object) -> tuple[Webhook, ...]:
    """The configured webhooks; ValueError naming the entry and field for anything malformed."""
    if raw is None or raw == "" or raw == []:
        return ()
    if not isinstance(raw, list | tuple):
        raise ValueError("webhooks must be a list of objects (ARTIFACTORY_WEBHOOKS: a JSON array)")
    hooks = tuple(_parse_one(f"webhooks[{i}]", entry) for i, entry in enumerate(raw))
    seen: set[str] = set()
    for hook in hooks:
        if hook.name in seen:
            raise ValueError(f"webhooks: two webhooks are named {hook.name!r}; give each a unique name")
        seen.add(hook.name)
    return hooks


def _parse_one(where: str, entry: object) -> Webhook:
    if not isinstance(entry, Mapping):
        raise ValueError(
            f"{where} must be an object with url and secret, not {type(entry).__name__}"
            " (ARTIFACTORY_WEBHOOKS must be a JSON array of objects)"
        )
    unknown = sorted(set(entry) - _KEYS)
    if unknown:
        raise ValueError(f"{where}: unknown field {unknown[0]!r} (known: {', '.join(sorted(_KEYS))})")
    url = entry.get("url")
    if not isinstance(url, str) or not url:
        raise ValueError(f"{where}.url is required: the http(s) URL to POST events to")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{where}.url must be an absolute http or https URL, not {url!r}")
    secret = entry.get("secret")
    if not isinstance(secret, str) or not secret:
        raise ValueError(f"{where}.secret is required: the key that signs every delivery")
    name = entry.get("name", url)
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
        raise ValueError(f"{where}.name must be a non-empty string of at most {MAX_NAME} characters")
    events = _globs(where, "events", entry.get("events", ["*"]))
    for pattern in events:
        if not any(fnmatch.fnmatchcase(e, pattern) for e in EVENTS):
            raise ValueError(f"{where}.events: {pattern!r} matches no event (events: {', '.join(EVENTS)})")
    numbers: dict[str, Any] = {}
    for key, kind in _NUMBERS.items():
        if key in entry:
            numbers[key] = _positive(where, key, entry[key], kind)
    hook = Webhook(
        name=name,
        url=url,
        secret=secret,
        events=events,
        repositories=_globs(where, "repositories", entry.get("repositories", ["*"])),
        **numbers,
    )
    if hook.backoff_max_seconds < hook.backoff_seconds:
        raise ValueError(f"{where}.backoff_max_seconds must not be less than backoff_seconds")
    return hook


def _globs(where: str, key: str, value: object) -> tuple[str, ...]:
    items: Sequence[object] = [value] if isinstance(value, str) else value  # type: ignore[assignment]
    if not isinstance(items, list | tuple) or not items or not all(isinstance(i, str) and i for i in items):
        raise ValueError(f"{where}.{key} must be a glob or a non-empty list of globs")
    return tuple(str(i) for i in items)


def _positive(where: str, key: str, value: object, kind: type) -> float | int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{where}.{key} must be a number, not {value!r}")
    if kind is int and not float(value).is_integer():
        raise ValueError(f"{where}.{key} must be a whole number, not {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{where}.{key} must be greater than zero, not {value!r}")
    return int(value) if kind is int else float(value)
