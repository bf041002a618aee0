"""Index documents: hosted, proxy and group for computed metadata, written once for every format.

A client reads documents that are not stored but computed (a simple page, a packument,
maven-metadata.xml, a tag list, a Go version list, a Cargo index file). The format supplies four
pure steps on `Format` (build, parse, merge, render) and names each document by an `IndexKey`;
this module does the rest:

- hosted: `build` over the repository's content, cached under the name's generation, which the
  engine moves in the very transaction that changes one of that name's assets (so a change made on
  any node is seen as soon as that node's repository revision is; nothing else is rebuilt);
- proxy: the upstream's copy fetched through the engine's proxy (single-flight, TTL, conditional
  revalidation, stale copy on upstream failure, negative cache), checked by `parse` before it is
  cached, parsed once per distinct body. The files it declares are fetched from the URL it gives
  and verified against the digests it gives, while they stream (`file_ref`);
- group: the members the caller may read, in order, with the dependency-confusion guard (while a
  hosted repository anywhere in the group holds the name, no proxy member contributes), nested
  groups included, merged by `merge` and cached under the members' identities; a walk is reused
  for the same group, key and caller while the registry's change token holds (`_walked`);
- responding: the media type negotiated from Accept, `render` cached per (model identity, media
  type, repository URL), then ETag, 304 and gzip through the one document responder. The answer
  (its bytes, gzip form and header lists) is kept per (repository, key, media type or Accept,
  repository URL) with the model identity it came from, so a warm read is one lookup: a hosted
  document's while the repository's revision is the one it was confirmed at (a generation moves
  only with the revision, on whichever node wrote), a proxy's or group's while its model, checked
  on every request through the caches above, has the same identity.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Hashable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit, urlunsplit

from anyio import to_thread
from starlette.requests import Request
from starlette.responses import Response

from artifactory.db import queries
from artifactory.formats import (
    NOTHING_NEEDED,
    FileRef,
    IndexKey,
    Parsed,
    RenderContext,
    Rendered,
    UpstreamDocument,
)
from artifactory.http.documents import RenderedDocument, request_headers
from artifactory.http.errors import BadGateway, NotFound
from artifactory.http.urls import repository_url
from artifactory.lru import Lru
from artifactory.repository.model import (
    GROUP,
    HOSTED,
    INLINE_CACHE_BYTES,
    PROXY,
    ComponentInfo,
    Repo,
    StoredAsset,
    inline_size,
)
from artifactory.repository.probe import Probed
from artifactory.repository.proxy import PATH_SAFE, UNKNOWN, DocumentSource, Known
from artifactory.security.principal import Principal

if TYPE_CHECKING:
    from artifactory.repository.engine import Engine

# Where a proxy caches the upstream's copy of a document: outside every format's own paths.
INDEX_PREFIX = ".index/"
MAX_DOCUMENT_BYTES = 64 * 1024 * 1024
MAX_NEEDS_DEPTH = 3  # a document that needs one that needs one...
# True in a /repository/{name}/ request's scope once the caller's read of that repository is checked.
READ_CHECKED_KEY = "artifactory.read_checked"
RENDERED_BYTES = 64 * 1024 * 1024
# The request headers an answer depends on (besides those a proxy's X-Forwarded-* may add).
ANSWER_HEADERS = (b"host", b"accept", b"accept-encoding", b"if-none-match")
GZIP_IN_THREAD = 256 * 1024  # compress a document at least this big off the event loop


class _Answer:
    """A document as last answered: the model identity it was rendered from, and the repository
    revision at which that identity was last confirmed."""

    __slots__ = ("revision", "identity", "document", "vary")

    def __init__(self, revision: int, identity: Hashable, document: RenderedDocument, vary: str) -> None:
        self.revision = revision
        self.identity = identity
        self.document = document
        self.vary = vary


@dataclass(frozen=True)
class Model:
    """A model with the identity of everything it was computed from (its cache key)."""

    value: Any
    identity: Hashable


class HostedView:
    """What `Format.build` may read of one hosted repository (read only)."""

    def __init__(
        self, engine: Engine, repo: Repo, known: dict[str, StoredAsset | None] | None = None
    ) -> None:
        self._engine = engine
        self.repository = repo
        self._known = known or {}  # assets the engine has just read (a group's probe)

    async def components(
        self, name: str | None = None, namespace: str | None = None, version: str | None = None
    ) -> list[ComponentInfo]:
        return await self._engine.components(self.repository, name, namespace, version)

    async def component_names(self) -> list[tuple[str, str]]:
        return await self._engine.component_names(self.repository)

    async def lookup(self, path: str) -> StoredAsset | None:
        if path in self._known:
            return self._known[path]
        return await self._engine.db_call(self._engine.lookup, self.repository, path)

    async def under(self, prefix: str) -> list[StoredAsset]:
        """Every asset whose path starts with `prefix`."""
        return await self._engine.db_call(self._engine.assets_under, self.repository, prefix)

    async def read(self, path: str, limit: int = MAX_DOCUMENT_BYTES) -> bytes | None:
        asset = await self.lookup(path)
        return None if asset is None else await self._engine.asset_bytes(asset, limit)


@functools.lru_cache(maxsize=16384)
def cache_path(key: IndexKey) -> str:
    """The proxy's cache path of a document's upstream copy (every part percent-encoded). Kept per
    key: every file request through a group asks for the path of the document declaring the file
    (four `quote`s, 5 us; a cached answer costs the key's hash)."""
    parts = [key.kind, key.namespace or "-", key.name or "-", key.variant or "-"]
    return INDEX_PREFIX + "/".join(quote(part, safe="") for part in parts)


def negotiate(accept: str | None, offered: Sequence[str]) -> str:
    """The offered media type the client prefers (RFC 9110: each candidate takes the q of the most
    specific range that matches it; ties go to the server's order); the first offered one when the
    client accepts none of them or sends no Accept."""
    if not offered:
        return "application/octet-stream"
    if not accept:
        return offered[0]
    ranges: list[tuple[str, float]] = []
    for item in accept.split(","):
        kind, _, params = item.strip().partition(";")
        match = re.search(r"(?:^|;)\s*q=([0-9.]+)", params)
        try:
            quality = float(match.group(1)) if match else 1.0
        except ValueError:
            quality = 0.0
        ranges.append((kind.strip().lower(), quality))
    best, best_q = offered[0], 0.0
    for candidate in offered:
        major = candidate.split("/")[0]
        weights = (
            next((value for kind, value in ranges if kind == pattern), None)
            for pattern in (candidate, f"{major}/*", "*/*")
        )
        weight = next((w for w in weights if w is not None), 0.0)
        if weight > best_q:
            best, best_q = candidate, weight
    return best


# The models a read request has computed (see `Index.model`); the principal is kept with each, so
# that the id in the slot stays its own for the request.
_Memo = dict[tuple[int, int, IndexKey, int], tuple[Principal, "Model | None"]]
_REQUEST_MODELS: ContextVar[_Memo | None] = ContextVar("artifactory_request_models", default=None)


@contextmanager
def one_model_per_request() -> Iterator[None]:
    """Within the block (a read request), each document model is computed once."""
    reset = _REQUEST_MODELS.set({})
    try:
        yield
    finally:
        _REQUEST_MODELS.reset(reset)


class Index:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._built: Lru[tuple[int, IndexKey, int], Model | None] = Lru(4096)
        self._generations: Lru[tuple[int, str, str], tuple[int, int]] = Lru(100_000)
        self._parsed: Lru[tuple[int, IndexKey, str, tuple[str, ...]], Parsed | None] = Lru(2048)
        self._merged: Lru[Hashable, Model] = Lru(1024)
        # A group's walk, per (group id, key, principal): its model while no snapshot it read can
        # have moved (the registry's token) and for at most the snapshots' own lifetime.
        self._walks: Lru[tuple[int, IndexKey, Principal], _Walk] = Lru(4096)
        self._fresh: Lru[tuple[int, IndexKey], StoredAsset] = Lru(
            8192, max_weight=INLINE_CACHE_BYTES, weigh=inline_size
        )
        # Clients send a handful of distinct Accept headers: negotiate each once per media-type list.
        self._negotiated: Lru[tuple[str | None, Sequence[str]], str] = Lru(512)
        self._rendered: Lru[Hashable, RenderedDocument] = Lru(
            8192, max_weight=RENDERED_BYTES, weigh=lambda r: len(r.body)
        )
        # The answers given, per (repository id, key, media type or Accept, repository URL).
        self._answers: Lru[Hashable, _Answer] = Lru(
            8192, max_weight=RENDERED_BYTES, weigh=lambda a: len(a.document.body)
        )
        self._urls: Lru[tuple[str, object, str | None], str] = Lru(1024)

    # -- the public entry points ---------------------------------------------------------------
    async def respond(
        self, request: Request, repo: Repo, key: IndexKey, principal: Principal, media_type: str | None = None
    ) -> Response:
        """The document `key` of `repo` as this client asked for it (404 when there is none), in
        `media_type` when the format chose one (a checksum of the document), else as negotiated.

        The answer is kept per (repository, key, media type or Accept, repository URL) with the
        identity of the model it was rendered from. A hosted document is answered from it while the
        repository's revision is the one it was last checked at (a name's generation moves only
        with the revision); anything else checks its model first (which is cached at every level:
        a proxy's fresh copy, a group's members) and reuses the answer while the identity holds."""
        scope = request.scope
        if not (scope.get(READ_CHECKED_KEY) and scope.get("artifactory.repo") is repo):
            self.engine.require(principal, repo, "read")
        host, accept, accept_encoding, if_none_match = request_headers(scope, *ANSWER_HEADERS)
        url = self._repository_url(request, repo, host)
        if media_type is not None:
            accept = None
        slot = (repo.id, key, media_type, accept, url)
        answer = self._answers.get(slot)
        if answer is None or answer.revision != repo.revision or repo.type != HOSTED:
            model = await self.model(repo, key, principal)
            if model is None:
                self._answers.pop(slot)
                raise NotFound(f"{key.name or key.kind} not found in {repo.name}")
            if answer is None or answer.identity != model.identity:
                document, vary = self._rendered_document(request, repo, key, model, media_type, url)
                answer = self._answers.put(slot, _Answer(repo.revision, model.identity, document, vary))
            else:
                answer.revision = repo.revision
        document = answer.document
        if len(document.body) >= GZIP_IN_THREAD and document.gzip_pending(accept_encoding):
            await to_thread.run_sync(document.gzipped)  # a big page: not on the event loop
        return document.response(if_none_match, accept_encoding, scope["method"] == "HEAD", answer.vary)

    def _rendered_document(
        self, request: Request, repo: Repo, key: IndexKey, model: Model, media_type: str | None, url: str
    ) -> tuple[RenderedDocument, str]:
        """The document rendered from `model` for this request (shared by every Accept header that
        negotiates the same media type), and its Vary header."""
        fmt = self.engine.formats[repo.format]
        offered = tuple(fmt.media_types(key))
        if media_type is None:
            accept = request.headers.get("accept")
            media_type = self._negotiated.get((accept, offered))
            if media_type is None:
                media_type = self._negotiated.put((accept, offered), negotiate(accept, offered))
        elif media_type not in offered:
            raise ValueError(f"{fmt.id} does not render {key.kind} as {media_type}")
        cache_key = (repo.id, key, model.identity, media_type, url)
        document = self._rendered.get(cache_key)
        if document is None:
            context = RenderContext(media_type=media_type, repository_url=url, repository=repo.name)
            rendered = fmt.render(key, model.value, context)
            document = self._rendered.put(cache_key, RenderedDocument.of(rendered))
        return document, ("Accept, Accept-Encoding" if len(offered) > 1 else "Accept-Encoding")

    def _repository_url(self, request: Request, repo: Repo, host: str | None) -> str:
        """`repository_url(request, repo.name)`, remembered per (repository, scheme, Host) unless
        X-Forwarded-* headers from a trusted reverse proxy may change it."""
        if self.engine.settings.trusted_proxies:
            return repository_url(request, repo.name)
        key = (repo.name, request.scope.get("scheme"), host)
        found = self._urls.get(key)
        if found is None:
            found = self._urls.put(key, repository_url(request, repo.name))
        return found

    async def render(
        self, repo: Repo, key: IndexKey, principal: Principal, context: RenderContext
    ) -> Rendered | None:
        """The rendered document without an HTTP response (for a format that wraps it)."""
        model = await self.model(repo, key, principal)
        if model is None:
            return None
        return self.engine.formats[repo.format].render(key, model.value, context)

    async def model(
        self,
        repo: Repo,
        key: IndexKey,
        principal: Principal,
        seen: frozenset[str] = frozenset(),
        guarded: bool = False,
        probed: Probed | None = None,
    ) -> Model | None:
        """The model of `key` in `repo` as `principal` may see it (None: no such document).
        `probed`: an enclosing group's read of its leaves for `key` (see `_group`). Inside
        `one_model_per_request`, a request asking twice (a route choosing which document a path
        names, then answering it) is answered the second time from the first."""
        memo = _REQUEST_MODELS.get()
        if memo is None or probed is not None or seen or guarded:
            return await self._model(repo, key, principal, seen, guarded, probed)
        slot = (repo.id, repo.revision, key, id(principal))
        if slot not in memo:
            memo[slot] = (principal, await self._model(repo, key, principal))
        return memo[slot][1]

    async def _model(
        self,
        repo: Repo,
        key: IndexKey,
        principal: Principal,
        seen: frozenset[str] = frozenset(),
        guarded: bool = False,
        probed: Probed | None = None,
    ) -> Model | None:
        if probed is not None and not probed.covers(repo) and repo.type != GROUP:
            probed = None
        if repo.type == HOSTED:
            return await self._hosted(repo, key, probed)
        if repo.type == PROXY:
            known = UNKNOWN if probed is None else probed.asset(repo, cache_path(key))
            return await self._proxied(repo, key, known)
        if seen or guarded or probed is not None:
            return await self._group(repo, key, principal, seen, guarded, probed)
        return await self._walked(repo, key, principal)

    async def file_ref(self, repo: Repo, path: str, declaring: Known = UNKNOWN) -> FileRef | None:
        """Where a proxy fetches the file at `path` and what it must hash to, from the upstream
        document that lists it (fetched now if it is not cached; `declaring`: its cached copy as a
        group's probe has just read it). None: not a listed file."""
        key = self.engine.formats[repo.format].declared_by(path)
        if key is None:
            return None
        parsed, _identity = await self._parsed_upstream(repo, key, declaring)
        return None if parsed is None else parsed.files.get(path)

    def hosted_source(self, format_id: str, key: IndexKey) -> str | None:
        """What a hosted repository's `key` is built from, as the format declares it (its optional
        `index_source(key)`): "" for nothing but the components of the key's name, a path for
        nothing but the asset at that path (which belongs to that name), None for anything else
        (built everywhere). A hosted leaf a group's probe finds without them has no such document,
        and is not built."""
        if key.whole_repository or not key.name:
            return None
        source = self.engine.formats[format_id].index_source(key)
        return source if isinstance(source, str) else None

    # -- hosted ----------------------------------------------------------------------------------
    async def generation(self, repo: Repo, key: IndexKey) -> int:
        """What a hosted document depends on: its name's generation, or the repository's revision."""
        if key.whole_repository:
            return repo.revision
        cache_key = (repo.id, key.namespace, key.name)
        seen = self._generations.get(cache_key)
        if seen is not None and seen[0] == repo.revision:
            return seen[1]
        found = await self.engine.db_call(self._read_generation, repo.id, key.namespace, key.name)
        self._generations.put(cache_key, (repo.revision, found))
        return found

    def _read_generation(self, repository_id: int, namespace: str, name: str) -> int:
        with self.engine.db.read() as session:
            return queries.generation(session, repository_id, namespace, name)

    async def _hosted(self, repo: Repo, key: IndexKey, probed: Probed | None = None) -> Model | None:
        assets: dict[str, StoredAsset | None] = {}
        if probed is not None and probed.name == (key.namespace, key.name) and not key.whole_repository:
            generation = probed.generations.get(repo.id, 0)
            self._generations.put((repo.id, key.namespace, key.name), (repo.revision, generation))
            source = self.hosted_source(repo.format, key)
            if source is not None:
                if source:
                    assets[source] = probed.asset(repo, source)
                if (source == "" and not probed.named.get(repo.id)) or (source and assets[source] is None):
                    return self._built.put((repo.id, key, generation), None)
        else:
            generation = await self.generation(repo, key)
        cache_key = (repo.id, key, generation)
        known, cached = self._built.lookup(cache_key)  # a cached None (no such document) is an answer too
        if known:
            return cached
        value = await self.engine.formats[repo.format].build(key, HostedView(self.engine, repo, assets))
        model = None if value is None else Model(value, ("hosted", repo.id, generation))
        return self._built.put(cache_key, model)

    # -- proxy -----------------------------------------------------------------------------------
    async def _proxied(self, repo: Repo, key: IndexKey, known: Known = UNKNOWN) -> Model | None:
        parsed, identity = await self._parsed_upstream(repo, key, known)
        if parsed is None:
            return None
        return Model(parsed.model, ("proxy", repo.id, identity))

    async def _parsed_upstream(
        self, repo: Repo, key: IndexKey, known: Known = UNKNOWN, depth: int = 0
    ) -> tuple[Parsed | None, str]:
        """The parsed upstream copy of `key` and the sha256 of the cached bytes it was parsed from
        (`known`: the cached copy, or None, as a group's probe has just read it)."""
        fmt = self.engine.formats[repo.format]
        where = fmt.upstream_document(key)
        if where is None:
            return None, ""
        url = upstream_url(str(repo.config["url"]), where.path)
        needed, needed_identity = await self._needed(repo, where, depth)

        def parse(body: bytes, final_url: str) -> Parsed | None:
            # `needed` only where the document declares needs: a format that declares none may
            # define `parse(key, body, url)`.
            if where.needs:
                return fmt.parse(key, body, final_url, needed)
            return fmt.parse(key, body, final_url)

        def check(body: bytes, final_url: str, sha256: str) -> None:
            self._parsed.put((repo.id, key, sha256, needed_identity), parse(body, final_url))

        # The copy this process last read, while it is fresh: no lookup per page hit or per file miss.
        asset = self._fresh.get((repo.id, key))
        if asset is None or not self.engine.proxy.fresh(repo, asset):
            source = DocumentSource(url=url, accept=where.accept, check=check)
            found = await self.engine.proxy.get(
                repo, cache_path(key), stream=False, document=source, known=known
            )
            if not isinstance(found, StoredAsset):
                self._fresh.pop((repo.id, key))
                return None, ""
            asset = self._fresh.put((repo.id, key), found)
        cache_key = (repo.id, key, asset.sha256, needed_identity)
        parsed_before, cached = self._parsed.lookup(cache_key)
        if parsed_before:
            return cached, asset.sha256
        body = await self.engine.asset_bytes(asset, MAX_DOCUMENT_BYTES)
        fetched_from = str(asset.attributes.get("proxy", {}).get("url") or url)
        try:
            parsed = parse(body, fetched_from)
        except ValueError as exc:
            raise BadGateway(f"the cached upstream document of {repo.name} is unusable: {exc}") from None
        return self._parsed.put(cache_key, parsed), asset.sha256

    async def _needed(
        self, repo: Repo, where: UpstreamDocument, depth: int
    ) -> tuple[Mapping[IndexKey, Any], tuple[str, ...]]:
        """The models of the documents `where` needs, from the same proxy (absent where the
        upstream has none), and the sha256s of the copies they were parsed from (what a document
        parsed with them is cached by)."""
        if not where.needs:
            return NOTHING_NEEDED, ()
        if depth >= MAX_NEEDS_DEPTH:
            raise BadGateway(f"{repo.format}: upstream documents need each other too deeply")
        needed: dict[IndexKey, Any] = {}
        identity: list[str] = []
        for need in where.needs:
            parsed, sha256 = await self._parsed_upstream(repo, need, depth=depth + 1)
            if parsed is not None:
                needed[need] = parsed.model
            identity.append(sha256)
        return needed, tuple(identity)

    # -- group -----------------------------------------------------------------------------------
    async def _walked(self, repo: Repo, key: IndexKey, principal: Principal) -> Model | None:
        """`_group` from the top, answered from the last walk of the same group, key and principal
        while the registry's token is the one that walk was stamped with (taken before it read
        anything): no commit anywhere, nor any change this process made, can have moved what it
        read. Time-bound reads (a proxy's TTL, roles) are at most `cache_seconds` late, as the
        snapshots themselves are."""
        repos = self.engine.repos
        token = repos.token()
        if token is None:
            return await self._group(repo, key, principal, frozenset(), False)
        slot = (repo.id, key, principal)
        now = time.monotonic()
        walk = self._walks.get(slot)
        if walk is not None and walk.token == token and now < walk.until:
            return walk.model
        model = await self._group(repo, key, principal, frozenset(), False)
        self._walks.put(slot, _Walk(token, now + repos.cache_seconds, model))
        return model

    async def _group(
        self,
        repo: Repo,
        key: IndexKey,
        principal: Principal,
        seen: frozenset[str],
        guarded: bool,
        probed: Probed | None = None,
    ) -> Model | None:
        if repo.name in seen:
            return None
        seen = seen | {repo.name}
        group = self.engine.group
        every = group.existing(repo)  # looked up once for the guard and the walk
        named = bool(key.name) and not key.whole_repository
        members, reader = group.members(repo, principal, every), group.reader(repo, principal)
        known = group.known_guard(repo, key.namespace, key.name, every) if named and not guarded else guarded
        if probed is None and (known is None or not self._known(key, members, guarded or known)):
            # One read of every leaf instead of one or two per member: the guard, each hosted
            # leaf's generation and whether it holds the name (or the document's source), and
            # each proxy's cached copy of the upstream's document.
            paths = [cache_path(key)]
            source = self.hosted_source(repo.format, key)
            if source:
                paths.append(source)
            name = (key.namespace, key.name) if named else None
            probed = await group.probe(repo, every, paths, name)
        if not guarded and named:
            if known is None or probed is not None:
                known = await group.shadowed_name(repo, key.namespace, key.name, every, probed)
            guarded = known
        found: list[Model] = []
        failure: BadGateway | None = None
        for member in members:
            if guarded and member.type == PROXY:
                continue
            try:
                model = await self.model(member, key, reader, seen, guarded, probed)
            except BadGateway as exc:
                failure = exc
                continue
            if model is not None:
                found.append(model)
        if not found:
            if failure is not None:
                raise failure
            return None
        if len(found) == 1:
            return found[0]
        identity = ("group", repo.id, key, tuple(m.identity for m in found))
        cached = self._merged.get(identity)
        if cached is not None:
            return cached
        merged = self.engine.formats[repo.format].merge(key, [m.value for m in found])
        return self._merged.put(identity, Model(merged, identity))

    def _known(self, key: IndexKey, members: list[Repo], guarded: bool) -> bool:
        """Whether this process can answer `key` through a group from its caches alone (its guard's
        answer, `guarded`, is known): the generation and model of every hosted repository the walk
        may build in, the fresh copy of every proxy it may read (none while `guarded`)."""
        group = self.engine.group
        for member in members:
            for leaf in group._leaves(member) if member.type == GROUP else (member,):
                if leaf.type == HOSTED:
                    if key.whole_repository:
                        generation = leaf.revision
                    else:
                        seen = self._generations.get((leaf.id, key.namespace, key.name))
                        if seen is None or seen[0] != leaf.revision:
                            return False
                        generation = seen[1]
                    if not self._built.lookup((leaf.id, key, generation))[0]:
                        return False
                elif not guarded:
                    asset = self._fresh.get((leaf.id, key))
                    if asset is None or not self.engine.proxy.fresh(leaf, asset):
                        return False
        return True


@dataclass(slots=True)
class _Walk:
    token: Hashable
    until: float
    model: Model | None


@functools.lru_cache(maxsize=16384)
def upstream_url(base: str, path: str) -> str:
    """`path` (relative, or absolute) below a proxy's upstream URL, each segment percent-encoded
    (kept per (base, path): asked for each time a proxy's document is looked at)."""
    if "://" in path:
        return path
    parts = urlsplit(base)
    folder = parts.path if parts.path.endswith("/") else parts.path + "/"
    return urlunsplit(parts._replace(path=folder + quote(path, safe=PATH_SAFE), fragment=""))
