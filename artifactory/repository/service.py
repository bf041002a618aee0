"""The narrow, documented surface formats and plugins use: `Repositories` and `Access`.

A format reaches the engine only through these two objects (`artifactory.plugin.repositories(request)`
and `artifactory.plugin.access(request)`), never through `Engine`'s attributes, `AppState` or a
database session. Everything here is async unless it is a pure, in-memory answer; blocking work a
format must do itself (parsing a large archive) goes through `run_sync`.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
from anyio import to_thread
from starlette.requests import Request
from starlette.responses import Response

from artifactory.blobstore.store import StagedBlob
from artifactory.formats import Format, IndexKey, RenderContext, Rendered
from artifactory.http.errors import MethodNotAllowed
from artifactory.repository.errors import UpstreamUnavailable, WritePolicyViolation
from artifactory.repository.hosted import Upload
from artifactory.repository.index import MAX_DOCUMENT_BYTES, cache_path, upstream_url
from artifactory.repository.model import (
    GROUP,
    HOSTED,
    PROXY,
    ComponentInfo,
    Content,
    Repo,
    StoredAsset,
)
from artifactory.repository.uploads import UploadState
from artifactory.security.principal import ANONYMOUS, Credentials, Principal
from artifactory.text import ascii_digits

if TYPE_CHECKING:
    from artifactory.repository.engine import Engine, Entry
    from artifactory.state import AppState

T = TypeVar("T")


async def run_sync(fn: Callable[..., T], *args: Any) -> T:
    """Run blocking work (parsing an archive, hashing) in a worker thread."""
    return await to_thread.run_sync(fn, *args)


@dataclass(frozen=True)
class UpstreamAnswer:
    """What a proxy's upstream answered a request of the format's own (`Repositories.call_upstream`)."""

    status: int
    body: bytes
    headers: Mapping[str, str]


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
        """Every repository (blocking: a database read; from a coroutine use `run_sync`)."""
        return list(self._engine.repos.all())

    async def storing(self, format_id: str) -> list[Repo]:
        """The repositories of `format_id` that store assets of their own (hosted and proxy: a
        group's content is its members'), for a collector that walks what is stored."""
        found = await to_thread.run_sync(self._engine.repos.all)
        return [r for r in found if r.format == format_id and r.type != GROUP]

    def members(self, repo: Repo, principal: Principal) -> list[Repo]:
        """A group's members that `principal` may read through it, in order (nested groups as such)."""
        return self._engine.group.members(repo, principal)

    def proxies(self, repo: Repo, principal: Principal) -> list[Repo]:
        """The proxies whose upstreams a request to `repo` may ask on `principal`'s behalf, in order:
        `repo` itself if it is a proxy; for a group, the proxies among the members `principal` may
        read through it, nested groups expanded where they stand (each proxy once, cycles ignored).
        A proxy set `offline` is left out. For protocol requests the index cannot express (a
        search query, an audit body): send them with `call_upstream`."""
        leaves = self._engine.group.leaves(repo, principal)
        return [r for r in leaves if r.type == PROXY and not r.config.get("offline")]

    def write_target(self, repo: Repo, principal: Principal | None = None) -> Repo:
        """Where a write to `repo` goes: itself if hosted, a group's write member. MethodNotAllowed
        (405) for a proxy, or a group without a write member; given `principal`, that refusal names
        the hosted repositories behind the group that `principal` may read, so a client is told
        where to write instead."""
        try:
            return self._engine.write_target(repo)
        except MethodNotAllowed as refused:
            if principal is None or repo.type != GROUP or repo.config.get("write_member"):
                raise
            hosted = [r.name for r in self._engine.group.leaves(repo, principal) if r.type == HOSTED]
            if not hosted:
                raise
            raise MethodNotAllowed(f"{refused.message} ({', '.join(hosted)})") from None

    @property
    def max_upload_bytes(self) -> int:
        return int(self._engine.settings.max_upload_bytes)

    def upload_limit(self, repo: Repo) -> int:
        """The most bytes one upload to `repo` may have."""
        return int(repo.config.get("max_upload_bytes") or self._engine.settings.max_upload_bytes)

    # -- reading ---------------------------------------------------------------------------------
    async def get(self, repo: Repo, path: str, principal: Principal, stream: bool = True) -> Content | None:
        """The file at `path`: stored (hosted), cached or fetched (proxy), first member's (group).
        A fetched file streams unless a proxy that may serve it must check it whole first
        (`Format.verifies_whole_file`: then it is fetched in full, and a proxy whose older copy
        passed its check serves that copy when the new one fails). Checks nothing: call
        `Access.require` first."""
        if stream and repo.type != HOSTED:
            fmt = self._engine.formats[repo.format]
            if type(fmt).verifies_whole_file is not Format.verifies_whole_file:  # no walk for the others
                proxies = [r for r in self._engine.group.leaves(repo, principal) if r.type == PROXY]
                stream = not any(fmt.verifies_whole_file(proxy, path) for proxy in proxies)
        return await self._engine.get(repo, path, principal, stream=stream)

    async def get_checked(self, repo: Repo, path: str, principal: Principal) -> Content | None:
        """`get` for a client that must not read a byte of a file before all of it is checked (a
        file that fails its upstream's digests must be a 502 it can read, not a 200 broken off after
        its headers, which pip, uv and cargo retry as a network error). A file fetched now is
        fetched whole, never streamed through: a small one (up to the blob store's in-memory size)
        is answered from memory as soon as it is checked, its commit going on meanwhile, a larger
        one once it is at its content address. A failed transfer or check raises
        `UpstreamUnavailable` before anything is answered (unless a proxy holds an older copy of a
        file it revalidates, which it then serves)."""
        return await self.get(repo, path, principal, stream=False)

    async def lookup(self, repo: Repo, path: str) -> StoredAsset | None:
        """An asset stored in this very repository (no proxy fetch, no group walk)."""
        return await self._engine.read_call(self._engine.lookup, repo, path)

    async def under(self, repo: Repo, prefix: str) -> list[StoredAsset]:
        """Every asset stored in this very repository whose path starts with `prefix`."""
        return await self._engine.db_call(self._engine.assets_under, repo, prefix)

    async def listing(self, repo: Repo, prefix: str, principal: Principal) -> list[Entry]:
        return await self._engine.listing(repo, prefix, principal)

    async def is_folder(self, repo: Repo, path: str, principal: Principal) -> bool:
        """Whether `path` (no trailing "/") names a folder that `listing` would show non-empty; after
        a file miss through a group, answered by that miss's own read (formats whose paths name
        folders: `Format.folders`)."""
        return await self._engine.is_folder(repo, path, principal)

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

    async def held_index_model(self, repo: Repo, key: IndexKey) -> Any:
        """The model of `key` from what `repo` holds now, asking no upstream: a hosted repository's
        built document, or the one a proxy parses from the upstream copy it has cached, however
        old (None when it has cached none). A group holds nothing itself: None. For decisions that
        must not wait on or be steered by an upstream, such as what cleanup must keep."""
        if repo.type == HOSTED:
            model = await self._engine.index.model(repo, key, ANONYMOUS)  # hosted: whoever asks
            return None if model is None else model.value
        fmt = self._engine.formats[repo.format]
        where = fmt.upstream_document(key) if repo.type == PROXY else None
        cached = None if where is None else await self.lookup(repo, cache_path(key))
        if where is None or cached is None:
            return None
        body = await self.read(cached, MAX_DOCUMENT_BYTES)
        fetched_from = cached.attributes.get("proxy", {}).get("url")
        parsed = fmt.parse(key, body, str(fetched_from or upstream_url(str(repo.config["url"]), where.path)))
        return None if parsed is None else parsed.model

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
    async def call_upstream(
        self,
        proxy: Repo,
        method: str,
        path: str,
        limit: int,
        params: Mapping[str, Any] | None = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> UpstreamAnswer:
        """Send a request of the format's own (a search, an audit) to a proxy's upstream (one of
        `proxies(...)`): `path` relative to its `url`, with its credentials, TLS settings and
        timeouts, reading at most `limit` bytes of the answer. Nothing is cached; whatever the
        status, the format reads the answer. UpstreamUnavailable (502) when the proxy is offline,
        the upstream cannot be reached, or it answers more than `limit` bytes."""
        if proxy.type != PROXY:
            raise ValueError(f"{proxy.name} is not a proxy repository")
        if proxy.config.get("offline"):
            raise UpstreamUnavailable(f"{proxy.name} is offline: its upstream is not asked")
        fmt = self._engine.formats[proxy.format]
        client = self._engine.upstreams.get(proxy.id, proxy.config, fmt.upstream_auth)
        url = upstream_url(str(proxy.config["url"]), path)
        too_large = UpstreamUnavailable(f"the upstream of {proxy.name} answered more than {limit} bytes")
        try:
            async with client.stream(
                method, url, params=dict(params or {}), content=content, headers=dict(headers or {})
            ) as response:
                declared = response.headers.get("content-length", "")
                if ascii_digits(declared) and int(declared) > limit:
                    raise too_large
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > limit:
                        raise too_large
                return UpstreamAnswer(response.status_code, bytes(body), dict(response.headers))
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(f"the upstream of {proxy.name} cannot be reached: {exc}") from None


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

    async def writable(self, request: Request, action: str = "write") -> tuple[Repo, Principal]:
        """Where a change sent to the request's repository goes, and who sends it, once they may make
        it: the repository itself if hosted, a group's write member (405 for a proxy, or a group
        without one, naming the hosted repositories the caller may read), then 401/403 unless the
        caller may `action` (write, delete) there, then 400 for a write to a repository whose write
        policy is deny (read-only). Asked before a byte of the body is read."""
        principal = await self.principal(request)
        target = self._state.repositories.write_target(request.scope["artifactory.repo"], principal)
        self.require(principal, target, action)
        if action == "write" and target.write_policy == "deny":
            raise WritePolicyViolation(f"repository {target.name} is read-only (write policy deny)")
        return target, principal

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
