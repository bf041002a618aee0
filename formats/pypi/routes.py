"""PyPI routes under /repository/{name}/: the legacy upload API, the simple API (PEP 503/691/658/
700/714), distribution files and the read-only JSON API. Handlers parse, call the repository service
or a pure builder, and answer. Simple pages are the engine's index documents (see format.py): the
route negotiates the media type as PEP 691 says (Accept, else `?format=`, else 406) and hands the
choice to the engine, which builds, fetches, merges, renders and caches them, with ETag, 304 and gzip.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from artifactory_formats.pypi import metadata, negotiation
from artifactory_formats.pypi.coordinates import (
    ROOT,
    file_path,
    metadata_path,
    normalize,
    project_key,
    split_file_path,
    valid_project_name,
)
from artifactory_formats.pypi.upload import UploadForm, check_form, file_attributes, inspect
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from artifactory.plugin import (
    BadRequest,
    Companion,
    Coordinates,
    HTTPProblem,
    IndexKey,
    Lru,
    NotFound,
    Rendered,
    RenderedDocument,
    Repo,
    Upload,
    WritePolicyViolation,
    access,
    current_path,
    current_principal,
    current_repository,
    repositories,
    repository_url,
    respond,
    respond_document,
)

FILE_TYPE = "application/octet-stream"
JSON_API_TYPE = "application/json"


class NotAcceptable(HTTPProblem):
    status = 406


# -- helpers ----------------------------------------------------------------------------------
# The media type chosen for each (Accept, ?format=) seen: clients send a handful of distinct headers.
_choices: Lru[tuple[str | None, str | None], str | None] = Lru(1024)


def _negotiated(request: Request) -> str:
    """The one media type PEP 691 negotiation chose (`?format=` overrides Accept; 406 when none of
    ours is acceptable), which the engine then renders."""
    query = (
        request.query_params.get("format") if b"format=" in request.scope.get("query_string", b"") else None
    )
    asked = (request.headers.get("accept"), query)
    known, chosen = _choices.lookup(asked)
    if not known:
        chosen = _choices.put(asked, negotiation.choose(*asked))
    if chosen is None:
        raise NotAcceptable(
            f"acceptable: {metadata.JSON_TYPE}, {metadata.HTML_TYPE}, {negotiation.TEXT_HTML}"
        )
    return chosen


async def _document(request: Request, key: IndexKey) -> Response:
    repo = current_repository(request)
    media_type = _negotiated(request)
    principal = await current_principal(request)
    return await repositories(request).index(request, repo, key, principal, media_type)


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
    return await _document(request, ROOT)


# The page key of each name asked for as it was spelt (None: not the normalised spelling): a hot page
# costs neither the name's check, its normalisation nor a new key.
_page_keys: Lru[str, IndexKey | None] = Lru(8192)


async def project_page(request: Request) -> Response:
    raw = str(request.path_params["project"])
    known, key = _page_keys.lookup(raw)
    if not known:
        project = normalize(_project_name(request))
        key = _page_keys.put(raw, project_key(project) if raw == project else None)
    if key is None:
        return _redirect(request, current_repository(request), f"simple/{normalize(raw)}/")
    return await _document(request, key)


async def add_slash(request: Request) -> Response:
    return _redirect(request, current_repository(request), current_path(request) + "/")


async def to_simple(request: Request) -> Response:
    return _redirect(request, current_repository(request), "simple/")


async def project_slash(request: Request) -> Response:
    project = _project_name(request)
    return _redirect(request, current_repository(request), f"simple/{normalize(project)}/")


# -- files ------------------------------------------------------------------------------------
async def get_file(request: Request) -> Response:
    """A file: stored, or fetched from where the upstream's page says and checked against the
    digests it declares (the engine's proxy; a mismatch is never cached). Answered only once the
    whole file is checked (`get_checked`), never streamed through; ranges as for any stored file
    (uv sends HEAD first, and reads a wheel's METADATA with range requests only when it sees
    Accept-Ranges)."""
    repo, path = current_repository(request), current_path(request)
    parts = split_file_path(path)
    if parts is None or parts[0] != normalize(parts[0]):
        raise NotFound(f"{path} not found in {repo.name}")
    content = await repositories(request).get_checked(repo, path, await current_principal(request))
    if content is None:
        raise NotFound(f"{path} not found in {repo.name}")
    return respond(request, content, immutable=True)


async def delete_file(request: Request) -> Response:
    repo, path = current_repository(request), current_path(request)
    if split_file_path(path) is None:
        raise NotFound(f"{path} not found in {repo.name}")
    if await repositories(request).delete(repo, path, await current_principal(request)) is None:
        raise NotFound(f"{path} not found in {repo.name}")
    return Response(status_code=204)


# -- upload (the legacy API twine speaks) -----------------------------------------------------
async def upload(request: Request) -> Response:
    repos, (target, principal) = repositories(request), await access(request).writable(request)
    form = UploadForm()
    staged = await repos.stage(target, form.file_chunks(request), Upload(path="packages/"))
    companions: list[Companion] = []
    try:
        digests = {
            "sha256": staged.info.sha256,
            "md5": staged.info.md5,
            "blake2b_256": form.blake2b.hexdigest(),
        }
        dist = check_form(form, digests)
        path = file_path(dist.project, dist.filename)
        inspected = await repos.read_staged(staged, lambda handle: inspect(handle, dist, staged.info.size))
        if inspected.served_metadata:
            # The .metadata is the wheel's own METADATA: committed with the wheel, in one transaction,
            # or not at all, so a page never pairs one upload's file with another's metadata.
            meta = await repos.stage_bytes(inspected.metadata)
            companions.append(Companion(metadata_path(dist.project, dist.filename), meta, FILE_TYPE))
    except BaseException:
        for item in (staged, *(c.staged for c in companions)):
            await repos.discard(item)
        raise
    asset = Upload(
        path=path,
        content_type=FILE_TYPE,
        component=Coordinates(name=dist.project, version=str(dist.version)),
        attributes=file_attributes(
            dist, inspected, digests["blake2b_256"], companions[0].staged.info.sha256 if companions else None
        ),
        component_attributes=inspected.info,
        # The same key the file's deletion leaves as its tombstone (format.tombstone): no spelling
        # of a stored or deleted release file is accepted again under allow_once.
        conflict_key=dist.release_file,
        companions=tuple(companions),
    )
    try:
        await repos.commit(target, staged, asset, principal)
    except WritePolicyViolation as refused:
        if refused.existing and target.write_policy != "allow":
            raise BadRequest(_exists_message(dist.filename, refused.existing)) from None
        raise
    return PlainTextResponse("OK\n")


def _exists_message(filename: str, existing: str | None = None) -> str:
    stored = existing.rsplit("/", 1)[-1] if existing else filename
    same = "" if stored == filename else f": it is the same release file as {stored!r}"
    return (
        f"File already exists ({filename!r}{same}). A filename can be uploaded once and is never "
        "reused, even after deletion; upload a new version instead."
    )


# -- JSON API ---------------------------------------------------------------------------------
# Rendered JSON API documents, each with the model it was rendered from: the engine hands the same
# model object until the project changes, so a hit costs neither a render nor a hash.
_api_documents: Lru[tuple[int, str, str | None, str, int], tuple[object, RenderedDocument]] = Lru(1024)


async def json_api(request: Request) -> Response:
    repo = current_repository(request)
    raw = _project_name(request)
    project = normalize(raw)
    version = request.path_params.get("version")
    principal = await current_principal(request)
    found = await repositories(request).index_model(repo, project_key(project), principal)
    if found is None:
        raise NotFound(f"project {project} not found in {repo.name}")
    base = repository_url(request, repo.name)
    cache_key = (repo.id, project, version, base, repo.revision)
    hit = _api_documents.get(cache_key)
    if hit is None or hit[0] is not found:
        document = metadata.json_api(
            found, version, metadata.file_url(base), f"{base}pypi/{project}/", repo.revision
        )
        if document is None:
            raise NotFound(f"{project} has no version {version} in {repo.name}")
        body = json.dumps(document).encode()
        hit = _api_documents.put(cache_key, (found, RenderedDocument.of(Rendered(body, JSON_API_TYPE))))
    return respond_document(request, hit[1])


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
