"""Validation of repository definitions as the admin API and the CLI receive them.

The stored `config` holds every setting except name, format and type. An upstream password is never
returned: GET shows MASK, and a PUT that sends MASK back (or omits the password) keeps the stored one.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from artifactory.formats import FormatRegistry
from artifactory.repository.model import GROUP, HOSTED, PROXY, REPOSITORY_TYPES, WRITE_POLICIES

MASK = "********"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
READ_ONLY_FIELDS = ("revision", "status", "url_of_repository", "created_at")

PROXY_DEFAULTS: dict[str, Any] = {
    "metadata_ttl_seconds": 3600,
    "negative_cache_seconds": 300,
    "offline": False,
    "timeout_seconds": 30.0,
    "transfer_timeout_seconds": 3600.0,
    "block_after_failures": 3,
    "block_seconds": 60,
    "include": [],
    "exclude": [],
}
COMMON_KEYS = {"write_policy", "allow_inline", "max_upload_bytes", "cleanup_policies"}
TYPE_KEYS = {
    HOSTED: set(),
    PROXY: set(PROXY_DEFAULTS) | {"url", "username", "password", "ca_bundle"},
    GROUP: {"members", "allow_proxy_shadowing", "write_member"},
}


MAX_CONFIG_BYTES = 256 * 1024
MAX_SECONDS = 10 * 366 * 24 * 3600
MAX_URL = 2000


class ConfigError(ValueError):
    pass


def _expect(config: dict[str, Any], key: str, kind: type | tuple[type, ...], what: str) -> None:
    if key in config and (not isinstance(config[key], kind) or isinstance(config[key], bool) and kind is int):
        raise ConfigError(f"{key} must be {what}")


def validate(body: Any, formats: FormatRegistry, existing: dict[str, Any] | None = None) -> dict[str, Any]:
    """Check a POST/PUT body; returns {"name", "format", "type", "config"} ready to store."""
    if not isinstance(body, dict):
        raise ConfigError("the body must be a JSON object")
    body = {k: v for k, v in body.items() if k not in READ_ONLY_FIELDS}
    name, fmt, kind = body.pop("name", None), body.pop("format", None), body.pop("type", None)
    if not isinstance(name, str) or not NAME.match(name):
        raise ConfigError(
            "name must be 1-200 characters: letters, digits, '.', '_' and '-', not starting with a symbol"
        )
    if existing is not None:
        if name != existing["name"] or fmt != existing["format"]:
            raise ConfigError("the name and format of a repository cannot change")
        if kind != existing["type"]:
            raise ConfigError("the type of a repository cannot change")
    if not isinstance(fmt, str) or fmt not in formats:
        raise ConfigError(f"unknown format {fmt!r}; known: {', '.join(formats.ids())}")
    if not isinstance(kind, str) or kind not in REPOSITORY_TYPES:
        raise ConfigError(f"type must be one of {', '.join(REPOSITORY_TYPES)}")
    config = dict(body)
    plugin_format = formats[fmt]
    if kind == HOSTED:
        config.setdefault("write_policy", plugin_format.default_write_policy(config))
    if "write_policy" in config and config["write_policy"] not in WRITE_POLICIES:
        raise ConfigError(f"write_policy must be one of {', '.join(WRITE_POLICIES)}")
    _expect(config, "allow_inline", bool, "a boolean")
    _expect(config, "max_upload_bytes", int, "an integer")
    if not 0 <= config.get("max_upload_bytes", 0) <= 2**53:
        raise ConfigError("max_upload_bytes must be a non-negative integer")
    cleanup = config.get("cleanup_policies", [])
    if not isinstance(cleanup, list) or not all(isinstance(p, str) and 0 < len(p) <= 100 for p in cleanup):
        raise ConfigError("cleanup_policies must be a list of cleanup policy names")
    if len(json.dumps(config, default=str)) > MAX_CONFIG_BYTES:
        raise ConfigError(f"the settings are larger than {MAX_CONFIG_BYTES} bytes")
    if kind == PROXY:
        _validate_proxy(config, existing)
    elif kind == GROUP:
        _validate_group(config, name)
    try:
        config = plugin_format.validate_config(kind, config)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    allowed = COMMON_KEYS | TYPE_KEYS[kind] | set(plugin_format.config_keys)
    unknown = sorted(set(config) - allowed)
    if unknown:
        raise ConfigError(f"unknown settings for a {fmt} {kind} repository: {', '.join(unknown)}")
    return {"name": name, "format": fmt, "type": kind, "config": config}


def _split_credentials(config: dict[str, Any]) -> str:
    """The upstream URL without user:password@; credentials written into it move to the username and
    password settings (where they are masked and never logged), unless those are given already."""
    url = config.get("url")
    try:
        parts = urlsplit(url) if isinstance(url, str) and len(url) <= MAX_URL else None
        port_ok = parts is not None and (parts.port is None or 0 < parts.port < 65536)
    except ValueError:
        parts, port_ok = None, False
    if parts is None or not port_ok or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError("a proxy needs url: an absolute http(s) URL of the upstream")
    if parts.username is None and parts.password is None:
        return str(url)
    if parts.username and not config.get("username"):
        config["username"] = unquote(parts.username)
    if parts.password and config.get("password") in (None, MASK):
        config["password"] = unquote(parts.password)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=host))


def _validate_proxy(config: dict[str, Any], existing: dict[str, Any] | None) -> None:
    url = config["url"] = _split_credentials(config)
    for key, default in PROXY_DEFAULTS.items():
        config.setdefault(key, default)
    _expect(config, "offline", bool, "a boolean")
    for key in ("metadata_ttl_seconds", "negative_cache_seconds", "block_after_failures", "block_seconds"):
        _expect(config, key, int, "an integer")
        if not 0 <= config[key] <= MAX_SECONDS:
            raise ConfigError(f"{key} must be an integer from 0 to {MAX_SECONDS}")
    _expect(config, "timeout_seconds", (int, float), "a number")
    timeout = config["timeout_seconds"]
    if isinstance(timeout, bool) or not (math.isfinite(timeout) and 0 < timeout <= 3600):
        raise ConfigError("timeout_seconds must be a number of seconds above 0 and at most 3600")
    _expect(config, "transfer_timeout_seconds", (int, float), "a number")
    transfer = config["transfer_timeout_seconds"]
    if isinstance(transfer, bool) or not (math.isfinite(transfer) and 0 < transfer <= MAX_SECONDS):
        raise ConfigError("transfer_timeout_seconds (the whole-transfer deadline) must be a positive number")
    for key in ("include", "exclude"):
        if not isinstance(config[key], list) or not all(isinstance(p, str) for p in config[key]):
            raise ConfigError(f"{key} must be a list of path patterns")
    for key in ("username", "password", "ca_bundle"):
        _expect(config, key, str, "a string")
    if "ca_bundle" in config and "BEGIN CERTIFICATE" not in config["ca_bundle"]:
        raise ConfigError("ca_bundle must hold PEM certificates")
    stored = (existing or {}).get("config", {})
    stored_password = stored.get("password")
    moved = bool(stored) and urlsplit(str(stored.get("url", ""))).netloc != urlsplit(url).netloc
    if moved and stored_password is not None and config.get("password") in (None, MASK):
        raise ConfigError(
            "the upstream host changed: send the password again (it is never sent to a new host)"
        )
    if config.get("password") in (None, MASK):
        config.pop("password", None)
        if stored_password is not None:
            config["password"] = stored_password


def _validate_group(config: dict[str, Any], name: str) -> None:
    members = config.get("members")
    if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
        raise ConfigError("a group needs members: a list of repository names")
    if len(set(members)) != len(members):
        raise ConfigError("a group lists each member once")
    if name in members:
        raise ConfigError("a group cannot contain itself")
    config.setdefault("allow_proxy_shadowing", False)
    _expect(config, "allow_proxy_shadowing", bool, "a boolean")
    if "write_member" in config and config["write_member"] not in members:
        raise ConfigError("write_member must be one of the members")


def public_view(row: dict[str, Any], admin: bool = True) -> dict[str, Any]:
    """What GET answers: the definition with secrets masked (and, for anyone but an admin, without
    the upstream account name or any credentials an old definition kept inside its URL)."""
    config = dict(row["config"])
    if config.get("password"):
        config["password"] = MASK
    if isinstance(config.get("url"), str) and "@" in config["url"]:
        parts = urlsplit(config["url"])
        config["url"] = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
    if not admin:
        config.pop("username", None)
        config.pop("password", None)
        config.pop("ca_bundle", None)
    view = {"name": row["name"], "format": row["format"], "type": row["type"], **config}
    if row["type"] == PROXY:
        view["offline"] = bool(config.get("offline", False))
    view["revision"] = row["revision"]
    return view
