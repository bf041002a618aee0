"""Server settings: embedded defaults, then a TOML config file, then environment, then CLI flags."""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

ENV_PREFIX = "ARTIFACTORY_"
_SERIALISED_ENV = "ARTIFACTORY_SETTINGS_JSON"


@dataclass
class S3Settings:
    endpoint: str = ""
    bucket: str = "artifactory"
    access_key: str = ""
    secret_key: str = ""
    region: str = ""
    secure: bool = True
    prefix: str = ""


@dataclass
class Settings:
    data_dir: Path = Path("./artifactory-data")
    host: str = "127.0.0.1"
    port: int = 8081
    workers: int = 1
    server: str = "uvicorn"
    database_url: str = ""
    s3: S3Settings = field(default_factory=S3Settings)
    # Absolute base URL handed to clients, e.g. "https://repo.example.com/prefix". Empty: from the request.
    external_url: str = ""
    # Client addresses whose X-Forwarded-Proto/-Host/-Prefix are believed; "*" trusts every peer.
    trusted_proxies: list[str] = field(default_factory=list)
    max_upload_bytes: int = 20 * 1024**3
    # Bytes of a stored file up to which a hosted commit keeps them in the database row of their
    # blob rather than in the blob store (one durable commit instead of file flushes). 0: never.
    inline_blob_bytes: int = 16 * 1024
    ssl_certfile: str = ""
    ssl_keyfile: str = ""
    admin_password: str = ""
    log_level: str = "info"
    # Seconds a proxy keeps remembering that an upstream path does not exist.
    negative_cache_seconds: int = 300
    upstream_timeout_seconds: float = 30.0
    # How long cached repository config and security data may be used before re-checking the database.
    config_cache_seconds: float = 1.0
    # Extra plugin modules to load besides the `artifactory` entry-point group.
    plugins: list[str] = field(default_factory=list)
    # Seconds between scheduled cleanup runs (docs/cleanup.md); one node at a time runs it. 0: off.
    cleanup_interval_seconds: int = 0
    # Count downloads and remember when each asset was last downloaded (written in batches).
    download_counting: bool = True
    download_flush_seconds: float = 10.0
    # One line per request on standard error: "off", "common" (Apache-like) or "json" (JSON lines).
    access_log: str = "off"
    # Whether /metrics answers without credentials (else it needs an admin's, e.g. a token).
    metrics_public: bool = False
    # A file that receives every audit event as one JSON line ("" for none; the database keeps them all).
    audit_log: str = ""
    # Secret that signs container registry tokens; generated into the data dir when empty.
    token_secret: str = ""
    # Webhooks (the built-in webhooks plugin, docs/webhooks.md): [[webhooks]] tables in the config
    # file, or ARTIFACTORY_WEBHOOKS as a JSON array of objects with url, secret, events, repositories.
    webhooks: list[dict[str, object]] = field(default_factory=list)

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'artifactory.db').resolve()}"

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"

    @property
    def changes_file(self) -> Path:
        """Where the processes sharing this data directory count their commits on PostgreSQL
        (`db.changes.NodeChanges`)."""
        return self.data_dir / "node-changes"

    def secure_data_dir(self) -> None:
        """Create the data dir readable by this user only, and keep everything made below it so.

        It holds upstream passwords, password hashes, the token secret and private blobs: the dir
        is 0700 and this process's umask becomes 077, whatever umask it was started with, so the
        database, blobs and temporary files are created 0600 (directories 0700).
        """
        os.umask(0o077)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.data_dir, 0o700)

    def to_json(self) -> str:
        data = dataclasses.asdict(self)
        data["data_dir"] = str(self.data_dir)
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> Settings:
        data = json.loads(text)
        data["data_dir"] = Path(data["data_dir"])
        data["s3"] = S3Settings(**data["s3"])
        return cls(**data)

    def export(self) -> None:
        """Hand these settings to worker processes started by the ASGI server."""
        os.environ[_SERIALISED_ENV] = self.to_json()


def _coerce(value: str, current: object) -> object:
    if isinstance(current, bool):
        return value.strip().lower() in {"1", "true", "yes", "on"}
    if isinstance(current, int):
        return int(value)
    if isinstance(current, float):
        return float(value)
    if isinstance(current, list):
        if value.lstrip().startswith("["):  # a JSON array, e.g. ARTIFACTORY_WEBHOOKS
            try:
                parsed = json.loads(value)
            except ValueError:
                parsed = None  # not JSON after all, e.g. "[::1]": a comma-separated list
            if isinstance(parsed, list):
                return parsed
        return [item.strip() for item in value.split(",") if item.strip()]
    if isinstance(current, Path):
        return Path(value)
    return value


def _apply(target: object, values: dict[str, object]) -> None:
    for key, value in values.items():
        if not hasattr(target, key):
            raise ValueError(f"unknown setting {key!r}")
        current = getattr(target, key)
        if dataclasses.is_dataclass(current) and isinstance(value, dict):
            _apply(current, value)
        elif isinstance(value, str) and not isinstance(current, str):
            setattr(target, key, _coerce(value, current))
        elif isinstance(current, Path):
            setattr(target, key, Path(str(value)))
        else:
            setattr(target, key, value)


def load_settings(config_file: str | Path | None = None, **overrides: object) -> Settings:
    """Build settings in precedence order; `overrides` (CLI flags) win, None means "not given"."""
    serialised = os.environ.get(_SERIALISED_ENV)
    if serialised and config_file is None and not overrides:
        return Settings.from_json(serialised)
    settings = Settings()
    if config_file:
        with open(config_file, "rb") as handle:
            _apply(settings, tomllib.load(handle))
    env = os.environ
    for f in dataclasses.fields(Settings):
        name = ENV_PREFIX + f.name.upper()
        if f.name != "s3" and name in env:
            setattr(settings, f.name, _coerce(env[name], getattr(settings, f.name)))
    for f in dataclasses.fields(S3Settings):
        name = f"{ENV_PREFIX}S3_{f.name.upper()}"
        if name in env:
            setattr(settings.s3, f.name, _coerce(env[name], getattr(settings.s3, f.name)))
    _apply(settings, {k: v for k, v in overrides.items() if v is not None})
    if settings.access_log not in ("off", "common", "json"):
        raise ValueError(f"access_log must be off, common or json, not {settings.access_log!r}")
    return settings
