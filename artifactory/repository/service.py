"""The narrow, documented surface formats and plugins use: `Repositories` and `Access`.

A format reaches the engine only through these two objects (`artifactory.plugin.repositories(request)`
and `artifactory.plugin.access(request)`), never through `Engine`'s attributes, `AppState` or a
database session. Everything here is async unless it is a pure, in-memory answer; blocking work a
format must do itself (parsing a large archive) goes through `run_sync`.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
from anyio import to_thread
from starlette.requests import Request
from starlette.responses import Response

from artifactory.blobstore.store import StagedBlob
from artifactory.formats import IndexKey, RenderContext, Rendered
from artifactory.repository.hosted import Upload
from artifactory.repository.model import ComponentInfo, Content, Repo, StoredAsset
from artifactory.repository.uploads import UploadState
from artifactory.security.principal import Credentials, Principal

if TYPE_CHECKING:
    from artifactory.repository.engine import Engine, Entry
    from artifactory.state import AppState

T = TypeVar("T")


async def run_sync(fn: Callable[..., T], *args: Any) -> T:
    """Run blocking work (parsing an archive, hashing) in a worker thread."""
    return await to_thread.run_sync(fn, *args)


class Repositories:
    """Repositories as a format sees them: find, read, write, delete, index documents."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # -- finding ---------------------------------------------------------------------------------
    def find(self, name: str) -> Repo | None:
        """The repository called `name`, or None."""
        return self._engine.repos.get(name)

    def repository(self, name: str) -> Repo:
        """The repository called `name` (NotFound when there is none)."""
        return self._engine.repository(name)

    def all(self) -> list[Repo]:
        return list(self._engine.repos.all())

    def members(self, repo: Repo, principal: Principal) -> list[Repo]:
        """A group's members that `principal` may read through it, in order (nested groups as such)."""
        return self._engine.group.members(repo, principal)

    def write_target(self, repo: Repo) -> Repo:
        """Where a write to `repo` goes: itself if hosted, a group's write member (else 405)."""
        return self._engine.write_target(repo)

    @property
    def max_upload_bytes(self) -> int:
        return int(self._engine.settings.max_upload_bytes)

    def upload_limit(self, repo: Repo) -> int:
        """The most bytes one upload to `repo` may have."""
        return int(repo.config.get("max_upload_bytes") or self._engine.settings.max_upload_bytes)

    # -- reading ---------------------------------------------------------------------------------
    async def get(self, repo: Repo, path: str, principal: Principal, stream: bool = True) -> Content | None:
        """The file at `path`: stored (hosted), cached or fetched (proxy), first member's (group).
        Checks nothing: call `Access.require` first."""
        return await self._engine.get(repo, path, principal, stream=stream)

    async def lookup(self, repo: Repo, path: str) -> StoredAsset | None:
        """An asset stored in this very repository (no proxy fetch, no group walk)."""
        if self._engine.db.is_sqlite:
            return self._engine.lookup(repo, path)
        return await self._engine.db_call(self._engine.lookup, repo, path)

    async def under(self, repo: Repo, prefix: str) -> list[StoredAsset]:
        """Every asset stored in this very repository whose path starts with `prefix`."""
        return await self._engine.db_call(self._engine.assets_under, repo, prefix)

    async def listing(self, repo: Repo, prefix: str, principal: Principal) -> list[Entry]:
        return await self._engine.listing(repo, prefix, principal)

    async def read(self, asset: StoredAsset | str, limit: int = 64 * 1024 * 1024) -> bytes:
        """The bytes of an asset (or of a blob by sha256), at most `limit` (else TooLarge)."""
        sha256 = asset if isinstance(asset, str) else asset.sha256
        return await self._engine.read_bytes(sha256, limit)

    async def components(
        self, repo: Repo, name: str | None = None, namespace: str | None = None, version: str | None = None
    ) -> list[ComponentInfo]:
        return await self._engine.components(repo, name, namespace, version)

    async def component_names(self, repo: Repo) -> list[tuple[str, str]]:
        return await self._engine.component_names(repo)

    # -- index documents -------------------------------------------------------------------------
    async def index(
        self, request: Request, repo: Repo, key: IndexKey, principal: Principal, media_type: str | None = None
    ) -> Response:
        """Serve the computed document `key` (see `Format.build/parse/merge/render`), in the media
        type negotiated from Accept among `Format.media_types(key)`, or in `media_type`."""
        return await self._engine.index.respond(request, repo, key, principal, media_type)

    async def index_model(self, repo: Repo, key: IndexKey, principal: Principal) -> Any:
        """The model of `key` as `principal` sees it in `repo` (None: no such document)."""
        model = await self._engine.index.model(repo, key, principal)
        return None if model is None else model.value

    async def render_index(
        self, repo: Repo, key: IndexKey, principal: Principal, context: RenderContext
    ) -> Rendered | None:
        return await self._engine.index.render(repo, key, principal, context)

    # -- writing ---------------------------------------------------------------------------------
    async def put(
        self, repo: Repo, chunks: AsyncIterable[bytes], upload: Upload, principal: Principal
    ) -> StoredAsset:
        return await self._engine.put(repo, chunks, upload, principal)

    async def put_bytes(self, repo: Repo, data: bytes, upload: Upload, principal: Principal) -> StoredAsset:
        return await self._engine.put_bytes(repo, data, upload, principal)

    async def stage(self, repo: Repo, chunks: AsyncIterable[bytes], upload: Upload) -> StagedBlob:
        """Receive and hash bytes (within the repository's limit) without storing an asset yet."""
        return await self._engine.stage(repo, chunks, upload)

    async def stage_bytes(self, data: bytes) -> StagedBlob:
        return await self._engine.stage_bytes(data)

    async def read_staged(self, staged: StagedBlob, fn: Callable[[Any], T]) -> T:
        """Call `fn(file)` on a seekable file of staged bytes in a worker thread (parse an archive)."""

        def run() -> T:
            with self._engine.open_staged(staged) as handle:
                return fn(handle)

        return await to_thread.run_sync(run)

    async def discard(self, staged: StagedBlob) -> None:
        await self._engine.discard(staged)

    async def commit(
        self, repo: Repo, staged: StagedBlob, upload: Upload, principal: Principal
    ) -> StoredAsset:
        return await self._engine.commit(repo, staged, upload, principal)

    async def link(self, repo: Repo, sha256: str, upload: Upload, principal: Principal) -> StoredAsset | None:
        return await self._engine.link(repo, sha256, upload, principal)

    async def update_document(
        self,
        repo: Repo,
        path: str,
        transform: Callable[[bytes | None], bytes | None],
        principal: Principal,
        content_type: str = "application/json",
        limit: int = 64 * 1024 * 1024,
    ) -> StoredAsset | None:
        """Change a stored document under the repository's lock: `transform(old or None)` gives the
        new bytes (None deletes it); concurrent updates on any node apply one after the other."""
        return await self._engine.update_document(repo, path, transform, principal, content_type, limit)

    async def delete(self, repo: Repo, path: str, principal: Principal) -> StoredAsset | None:
        return await self._engine.delete(repo, path, principal)

    # -- resumable uploads (OCI) -----------------------------------------------------------------
    async def start_upload(
        self, repo: Repo, path: str = "", attributes: Mapping[str, Any] | None = None
    ) -> UploadState:
        return await self._engine.uploads.start(repo, path, attributes)

    async def append_upload(
        self, repo: Repo, session_id: str, chunks: AsyncIterable[bytes], start: int | None = None
    ) -> UploadState:
        return await self._engine.uploads.append(repo, session_id, chunks, start)

    async def upload_status(self, repo: Repo, session_id: str) -> UploadState:
        return await self._engine.uploads.status(repo, session_id)

    async def finish_upload(
        self, repo: Repo, session_id: str, expected: Mapping[str, str | None] | None = None
    ) -> tuple[UploadState, StagedBlob]:
        return await self._engine.uploads.finish(repo, session_id, expected)

    async def cancel_upload(self, repo: Repo, session_id: str) -> None:
        await self._engine.uploads.cancel(repo, session_id)

    # -- upstreams -------------------------------------------------------------------------------
    def upstream_client(self, repo: Repo) -> httpx.AsyncClient:
        """The pooled HTTP client of a proxy's upstream (its TLS settings, timeouts and auth)."""
        fmt = self._engine.formats[repo.format]
        return self._engine.upstreams.get(repo.id, repo.config, fmt.upstream_auth)


class Access:
    """Who may do what: authentication, the one permission check, tokens."""

    def __init__(self, state: AppState) -> None:
        self._state = state

    async def principal(self, request: Request) -> Principal:
        """Who sent `request` (401 for credentials that prove nothing)."""
        return await self._state.principal(request)

    async def authenticate(self, credentials: Credentials) -> Principal:
        """The principal these credentials prove (InvalidCredentials when they prove nothing)."""
        return await to_thread.run_sync(self._state.security.verify, credentials)

    async def check_password(self, username: str, password: str) -> bool:
        return await to_thread.run_sync(self._state.security.check_password, username, password)

    def allowed(self, principal: Principal, repo: Repo | str, action: str) -> bool:
        """The one answer to "may `principal` do `action` (read, write, delete) in `repo`"."""
        name = repo if isinstance(repo, str) else repo.name
        return self._state.security.allowed(principal, name, action)

    def require(self, principal: Principal, repo: Repo, action: str) -> None:
        """401 for an anonymous caller without the privilege, 403 for a known one."""
        self._state.engine.require(principal, repo, action)

    @property
    def token_secret(self) -> bytes:
        """The server's key for signing short-lived tokens of its own (OCI registry tokens). It is
        shared by every node; never send it anywhere."""
        return self._state.token_secret

    @property
    def anonymous_read(self) -> bool:
        return bool(self._state.security.anonymous_read)

    async def create_user(self, username: str, password: str, roles: list[str]) -> dict[str, Any]:
        return await to_thread.run_sync(self._state.security.create_user, username, password, roles)

    async def create_token(
        self,
        principal: Principal,
        name: str = "",
        expires_in_seconds: int | None = None,
        scope: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A new API token that never outlives or exceeds `principal`'s own credential."""
        security = self._state.security
        return await to_thread.run_sync(
            lambda: security.create_token(principal, name, expires_in_seconds, scope)
        )

    async def list_tokens(self, username: str) -> list[dict[str, Any]]:
        return await to_thread.run_sync(self._state.security.list_tokens, username)

    async def revoke_token(self, username: str, token_id: str, any_user: bool = False) -> bool:
        return await to_thread.run_sync(self._state.security.revoke_token, username, token_id, any_user)
