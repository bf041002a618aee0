"""PyPI routes under /repository/{name}/: the legacy upload API, the simple API (PEP 503/691/658/
700/714), distribution files and the read-only JSON API. Handlers parse, call the engine or a pure
builder, and answer. Index documents are cached with their gzip form under the identity of what they
were built from (a hosted project's generation, a proxied page's digest, a group's members' identities;
the hosted root index under the repository revision), so a read never rebuilds them.
"""

from __future__ import annotations

import gzip
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from urllib.parse import quote

from artifactory_formats.pypi import metadata, negotiation, operations, sources
from artifactory_formats.pypi.coordinates import (
    file_path,
    metadata_path,
    normalize,
    split_file_path,
    valid_project_name,
)
from artifactory_formats.pypi.metadata import File
from artifactory_formats.pypi.upload import UploadForm, check_form, file_attributes, inspect
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from artifactory.plugin import (
    BadRequest,
    Companion,
    Coordinates,
    Engine,
    HTTPProblem,
    NotFound,
    Repo,
    StoredAsset,
    Upload,
    app_state,
    current_path,
    current_principal,
    current_repository,
    engine,
    repository_url,
    respond,
)

log = logging.getLogger(__name__)
HOSTED = "hosted"
GZIP_MIN_BYTES = 1024
FILE_TYPE = "application/octet-stream"
# Index pages hold links and nothing else: no script, style, frame or form may ever run in them.
HTML_POLICY = b"default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"


class NotAcceptable(HTTPProblem):
    status = 406


# -- helpers ----------------------------------------------------------------------------------
def _etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    if header.strip() == "*":
        return True
    return any(c.strip().removeprefix("W/").strip('"') == etag for c in header.split(","))


class _Prebuilt(Response):
    """A cached document with the header list built once for it (the hot read path)."""

    def __init__(self, status_code: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        self.status_code = status_code
        self.background = None
        self.body = body
        self.raw_headers = headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        body = b"" if scope["method"] == "HEAD" else self.body
        await send({"type": "http.response.body", "body": body, "more_body": False})


_headers: sources.Lru[tuple[str, str, bool, int], list[tuple[bytes, bytes]]] = sources.Lru(4096)


def _header_list(etag: str, media_type: str, gzipped: bool, length: int) -> list[tuple[bytes, bytes]]:
    key = (etag, media_type, gzipped, length)
    found = _headers.get(key)
    if found is None:
        found = [
            (b"etag", f'"{etag}"'.encode()),
            (b"vary", b"Accept, Accept-Encoding"),
            (b"cache-control", b"no-cache"),
            (b"x-content-type-options", b"nosniff"),
        ]
        if length >= 0:
            content_type = media_type + ("; charset=utf-8" if media_type.startswith("text/") else "")
            found += [(b"content-type", content_type.encode()), (b"content-length", str(length).encode())]
            if gzipped:
                found.append((b"content-encoding", b"gzip"))
        if "html" in media_type:
            found.append((b"content-security-policy", HTML_POLICY))
        _headers.put(key, found)
    return found


Build = Callable[[], Awaitable[bytes]]
Cache = Callable[[str, Build], Awaitable[tuple[bytes, str]]]


def _by_identity(eng: Engine, repo: Repo) -> Cache:
    """The engine's document cache for keys that name what the document was built from."""

    def cache(key: str, build: Build) -> Awaitable[tuple[bytes, str]]:
        return eng.document(repo, key, build, stamp="identity")

    return cache


async def _document(
    request: Request, eng: Engine, cache: Cache, key: str, build: Build, media_type: str
) -> Response:
    """A cached index document with ETag/304 and a cached gzip form. `cache` is the engine's
    per-revision document cache, or `_by_identity(eng, repo)` for keys that name what they were built from."""
    body, etag = await cache(key, build)
    headers = request.headers
    if _etag_matches(headers.get("if-none-match"), etag):
        return _Prebuilt(304, _header_list(etag, media_type, False, -1), b"")
    gzipped = len(body) >= GZIP_MIN_BYTES and "gzip" in headers.get("accept-encoding", "")
    if gzipped:
        plain = body

        async def compress() -> bytes:
            return await eng.db_call(gzip.compress, plain, 6)

        body, _ = await cache(f"{key}:{etag}:gzip", compress)
    return _Prebuilt(200, _header_list(etag, media_type, gzipped, len(body)), body)


_chosen: dict[tuple[str | None, str | None], str | None] = {}


def _media(request: Request) -> str:
    """The negotiated media type (remembered per distinct Accept header and ?format=)."""
    query = (
        request.query_params.get("format") if b"format=" in request.scope.get("query_string", b"") else None
    )
    key = (request.headers.get("accept"), query)
    if key in _chosen:
        chosen = _chosen[key]
    else:
        chosen = negotiation.choose(*key)
        if len(_chosen) > 1024:
            _chosen.clear()
        _chosen[key] = chosen
    if chosen is None:
        raise NotAcceptable(
            f"acceptable: {metadata.JSON_TYPE}, {metadata.HTML_TYPE}, {negotiation.TEXT_HTML}"
        )
    return chosen


_bases: dict[tuple[str, str, str | None, str], str] = {}


def _base(request: Request, repo: Repo) -> str:
    """repository_url(request, repo.name), remembered per (scheme, Host) when no reverse proxy's
    X-Forwarded-* headers are trusted (then those inputs alone decide the URL)."""
    settings = app_state(request).settings
    if settings.trusted_proxies:
        return repository_url(request, repo.name)
    key = (repo.name, str(request.scope.get("scheme")), request.headers.get("host"), settings.external_url)
    found = _bases.get(key)
    if found is None:
        if len(_bases) > 1024:
            _bases.clear()
        found = _bases[key] = repository_url(request, repo.name)
    return found


def _file_url(base: str) -> Callable[[File], str]:
    return lambda f: base + quote(f.path, safe="/+!~")


def _project_name(request: Request) -> str:
    raw = str(request.path_params["project"])
    if not valid_project_name(raw):
        raise NotFound(f"{raw!r} is not a valid project name")
    return raw


def _redirect(request: Request, repo: Repo, path: str) -> Response:
    query = f"?{request.url.query}" if request.url.query else ""
    return RedirectResponse(repository_url(request, repo.name) + path + query, status_code=301)


# -- simple API -------------------------------------------------------------------------------
async def simple_root(request: Request) -> Response:
    repo, eng = current_repository(request), engine(request)
    media = _media(request)
    base = _base(request, repo)

    def project_url(name: str) -> str:
        return f"{base}simple/{metadata.project_href(name)}"

    def render(names: list[str]) -> bytes:
        if media == metadata.JSON_TYPE:
            return metadata.render_root_json(names)
        return metadata.render_root_html(names, project_url)

    if repo.type == HOSTED:
        # Every project is in it: cached per repository revision.

        async def build_hosted() -> bytes:
            return await eng.db_call(render, await sources.hosted_names(eng, repo))

        def per_revision(key: str, build: Build) -> Awaitable[tuple[bytes, str]]:
            return eng.document(repo, key, build)

        return await _document(request, eng, per_revision, f"root:{media}:{base}", build_hosted, media)
    names, identity = await sources.root_view(eng, repo, await current_principal(request))

    async def build() -> bytes:
        return await eng.db_call(render, names)

    key = f"root:{repo.id}:{media}:{base}:{identity}"
    return await _document(request, eng, _by_identity(eng, repo), key, build, media)


async def project_page(request: Request) -> Response:
    repo, eng = current_repository(request), engine(request)
    raw = _project_name(request)
    project = normalize(raw)
    if raw != project:
        return _redirect(request, repo, f"simple/{project}/")
    media = _media(request)
    base = _base(request, repo)
    view, identity = await sources.project_view(eng, repo, project, await current_principal(request))
    if view is None:
        raise NotFound(f"project {project} not found in {repo.name}")
    found = view

    def render() -> bytes:
        if media == metadata.JSON_TYPE:
            return metadata.render_json(found, _file_url(base))
        return metadata.render_html(found, _file_url(base))

    async def build() -> bytes:
        return await eng.db_call(render)

    key = f"page:{repo.id}:{media}:{project}:{base}:{identity}"
    return await _document(request, eng, _by_identity(eng, repo), key, build, media)


async def add_slash(request: Request) -> Response:
    return _redirect(request, current_repository(request), current_path(request) + "/")


async def to_simple(request: Request) -> Response:
    return _redirect(request, current_repository(request), "simple/")


async def project_slash(request: Request) -> Response:
    project = _project_name(request)
    return _redirect(request, current_repository(request), f"simple/{normalize(project)}/")


# -- files ------------------------------------------------------------------------------------
async def get_file(request: Request) -> Response:
    repo, path, eng = current_repository(request), current_path(request), engine(request)
    parts = split_file_path(path)
    if parts is None or parts[0] != normalize(parts[0]):
        raise NotFound(f"{path} not found in {repo.name}")
    principal = await current_principal(request)
    if repo.type != HOSTED:
        await sources.link_file(eng, repo, path, principal)
    content = await eng.get(repo, path, principal, stream=request.method == "GET")
    if content is None:
        raise NotFound(f"{path} not found in {repo.name}")
    if repo.type != HOSTED and isinstance(content, StoredAsset):
        await sources.verify_cached(eng, path, content, principal)
    return respond(request, content, immutable=True)


async def delete_file(request: Request) -> Response:
    repo, path, eng = current_repository(request), current_path(request), engine(request)
    if split_file_path(path) is None:
        raise NotFound(f"{path} not found in {repo.name}")
    if not await operations.delete_path(eng, repo, path, await current_principal(request)):
        raise NotFound(f"{path} not found in {repo.name}")
    return Response(status_code=204)


# -- upload (the legacy API twine speaks) -----------------------------------------------------
async def upload(request: Request) -> Response:
    repo, eng = current_repository(request), engine(request)
    principal = await current_principal(request)
    target = eng.write_target(repo)
    eng.require(principal, target, "write")
    if target.write_policy == "deny":
        raise BadRequest(f"repository {target.name} is read-only (write policy deny)")
    form = UploadForm()
    staged = await eng.stage(target, form.file_chunks(request), Upload(path="packages/"))
    companions: list[Companion] = []
    try:
        digests = {
            "sha256": staged.info.sha256,
            "md5": staged.info.md5,
            "blake2b_256": form.blake2b.hexdigest(),
        }
        dist = check_form(form, digests)
        path = file_path(dist.project, dist.filename)
        if target.write_policy != "allow" and await eng.was_ever_stored(target, path):
            raise BadRequest(_exists_message(dist.filename))
        handle = await eng.db_call(eng.open_staged, staged)
        try:
            inspected = await eng.db_call(inspect, handle, dist, staged.info.size)
        finally:
            handle.close()
        if inspected.served_metadata:
            # The .metadata is the wheel's own METADATA: committed with the wheel, in one transaction,
            # or not at all, so a page never pairs one upload's file with another's metadata.
            meta = await eng.stage_bytes(inspected.metadata)
            companions.append(Companion(metadata_path(dist.project, dist.filename), meta, FILE_TYPE))
    except BaseException:
        for item in (staged, *(c.staged for c in companions)):
            await eng.discard(item)
        raise
    asset = Upload(
        path=path,
        content_type=FILE_TYPE,
        component=Coordinates(name=dist.project, version=str(dist.version)),
        attributes=file_attributes(
            dist, inspected, digests["blake2b_256"], companions[0].staged.info.sha256 if companions else None
        ),
        component_attributes=inspected.info,
        conflict_key=dist.release_file,
        companions=tuple(companions),
    )
    try:
        await eng.commit(target, staged, asset, principal)
    except HTTPProblem as problem:
        existing = getattr(problem, "existing", None)
        if problem.status == 400 and existing and target.write_policy != "allow":
            raise BadRequest(_exists_message(dist.filename, existing)) from None
        raise
    await sources.touch(eng, target, dist.project)
    return PlainTextResponse("OK\n")


def _exists_message(filename: str, existing: str | None = None) -> str:
    stored = existing.rsplit("/", 1)[-1] if existing else filename
    same = "" if stored == filename else f": it is the same release file as {stored!r}"
    return (
        f"File already exists ({filename!r}{same}). A filename can be uploaded once and is never "
        "reused, even after deletion; upload a new version instead."
    )


# -- JSON API ---------------------------------------------------------------------------------
async def json_api(request: Request) -> Response:
    repo, eng = current_repository(request), engine(request)
    raw = _project_name(request)
    project = normalize(raw)
    version = request.path_params.get("version")
    base = _base(request, repo)
    project_url = f"{base}pypi/{project}/"
    view, identity = await sources.project_view(eng, repo, project, await current_principal(request))
    if view is None:
        raise NotFound(f"project {project} not found in {repo.name}")
    found = view

    async def build() -> bytes:
        document = metadata.json_api(found, version, _file_url(base), project_url, repo.revision)
        if document is None:
            raise NotFound(f"{project} has no version {version} in {repo.name}")
        return json.dumps(document).encode()

    key = f"api:{repo.id}:{project}:{version}:{base}:{identity}"
    return await _document(request, eng, _by_identity(eng, repo), key, build, "application/json")


ROUTES: Sequence[BaseRoute] = (
    # The read path first: a request is matched against these in order.
    Route("/simple/{project}/", project_page, methods=["GET"]),
    Route("/packages/{project}/{filename}", get_file, methods=["GET"]),
    Route("/simple/", simple_root, methods=["GET"]),
    Route("/", upload, methods=["POST"]),
    Route("/legacy/", upload, methods=["POST"]),
    Route("/", to_simple, methods=["GET"]),
    Route("/simple", add_slash, methods=["GET"]),
    Route("/simple/{project}", project_slash, methods=["GET"]),
    Route("/packages/{project}/{filename}", delete_file, methods=["DELETE"]),
    Route("/pypi/{project}/json", json_api, methods=["GET"]),
    Route("/pypi/{project}/{version}/json", json_api, methods=["GET"]),
)
