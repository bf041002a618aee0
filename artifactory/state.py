"""Everything one server process holds: settings, database, blob store, formats, plugins, engine."""

from __future__ import annotations

import logging
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

import pluggy
from anyio import to_thread
from starlette.requests import HTTPConnection

from artifactory.audit import Audit
from artifactory.blobstore.filesystem import fsync_dir
from artifactory.blobstore.store import BlobStore, open_driver
from artifactory.db.engine import Database
from artifactory.formats import FormatRegistry
from artifactory.http.errors import Unauthorized
from artifactory.plugins import plugin_manager
from artifactory.repository.engine import Engine
from artifactory.repository.service import Access, Repositories
from artifactory.security.principal import ANONYMOUS, Principal
from artifactory.security.service import InvalidCredentials, Security, parse_authorization
from artifactory.settings import Settings

log = logging.getLogger(__name__)
PRINCIPAL_KEY = "artifactory.principal"
REQUEST_PATH_KEY = "artifactory.request_path"  # the path as the client sent it, set by the app


@dataclass
class AppState:
    settings: Settings
    db: Database
    blobs: BlobStore
    formats: FormatRegistry
    pm: pluggy.PluginManager
    security: Security
    engine: Engine
    token_secret: bytes
    audit: Audit
    repositories: Repositories = field(init=False)
    access: Access = field(init=False)

    def __post_init__(self) -> None:
        self.repositories = Repositories(self.engine)
        self.access = Access(self)

    @classmethod
    def build(cls, settings: Settings) -> AppState:
        settings.secure_data_dir()
        pm = plugin_manager(settings.plugins)
        formats = FormatRegistry()
        pm.hook.artifactory_register_formats(registry=formats)
        db = Database(settings.resolved_database_url, settings.changes_file)
        blobs = BlobStore(open_driver(settings))
        security = Security(db, settings.config_cache_seconds)
        engine = Engine(settings, db, blobs, formats, security, pm)
        audit = Audit(db, settings.audit_log)
        return cls(settings, db, blobs, formats, pm, security, engine, _token_secret(settings), audit)

    async def principal(self, connection: HTTPConnection) -> Principal:
        """Who sent this request (cached on the request); 401 for credentials that prove nothing."""
        scope = connection.scope
        cached = scope.get(PRINCIPAL_KEY)
        if cached is not None:
            return cached  # type: ignore[no-any-return]
        header = connection.headers.get("authorization")
        if not header:
            principal = ANONYMOUS
        else:
            credentials = None
            try:
                credentials = parse_authorization(header)
                # A credential the built-in check proved within the cache lifetime needs no thread
                # hop (the chain reached it for these same credentials, so no earlier plugin claims
                # them); anything else runs the authentication chain off the event loop.
                found = self.security.cached(credentials)
                if found is None:
                    found = await to_thread.run_sync(self._authenticate, credentials)
            except (InvalidCredentials, Unauthorized) as exc:
                await self.record(
                    credentials.username if credentials else "",
                    "auth.failed",
                    details={"reason": str(exc), "address": _address(connection)},
                    path=scope.get(REQUEST_PATH_KEY, ""),
                )
                raise Unauthorized(str(exc)) from None
            principal = found or ANONYMOUS
            path = scope.get(REQUEST_PATH_KEY) or scope.get("path", "")
            if principal.only_under and not path.startswith(principal.only_under):
                raise Unauthorized(f"this credential is valid only under {principal.only_under}")
            if principal.expires_at is not None and principal.expires_at <= time.time():
                raise Unauthorized("the credential has expired")
        scope[PRINCIPAL_KEY] = principal
        return principal

    async def record(
        self, actor: str, action: str, repository: str = "", path: str = "", details: dict | None = None
    ) -> None:
        """Add an event to the audit log without holding up the event loop; never fails the caller."""
        try:
            await to_thread.run_sync(self.audit.record, actor, action, repository, path, details)
        except Exception:  # noqa: BLE001 - an audit write must not turn a request into a 500
            log.exception("could not record audit event %s", action)

    def _authenticate(self, credentials: object) -> Principal | None:
        result: Principal | None = self.pm.hook.artifactory_authenticate(credentials=credentials, state=self)
        return result


def _address(connection: HTTPConnection) -> str:
    return connection.client.host if connection.client else ""


def _token_secret(settings: Settings) -> bytes:
    """The key that signs registry tokens: from settings, else a file in the data dir made once.

    Several nodes must share it: set `token_secret` (ARTIFACTORY_TOKEN_SECRET) for them.
    """
    if settings.token_secret:
        return settings.token_secret.encode()
    path = Path(settings.data_dir) / "token.secret"
    try:
        return _read_secret(path)
    except FileNotFoundError:
        pass
    # The workers of a server start together, and each may find no file: each writes a secret of
    # its own under a name of its own and links it into place, which only the first link does; the
    # others read that one. The name never appears before every byte is written.
    value = secrets.token_hex(32).encode()
    temp = path.with_name(f".token.secret.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            os.write(fd, value)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(temp, path)
        except FileExistsError:
            return _read_secret(path)
    finally:
        temp.unlink(missing_ok=True)
    fsync_dir(path.parent)  # the name survives a crash: tokens signed with it stay valid
    return value


def _read_secret(path: Path) -> bytes:
    value = path.read_bytes().strip()
    if not value:
        raise RuntimeError(f"{path} is empty: delete it (a new secret is made) or set token_secret")
    return value
