"""Maven routes: GET/HEAD of files, checksums, generated metadata and folder listings; PUT; DELETE."""

from __future__ import annotations

import dataclasses
import functools
import html
from typing import Any, BinaryIO
from urllib.parse import quote

from artifactory_formats.maven import content, documents
from artifactory_formats.maven.coordinates import (
    METADATA,
    Artifact,
    LayoutError,
    is_metadata,
    parse_artifact,
    split_checksum,
    try_artifact,
)
from artifactory_formats.maven.upload import (
    MAX_CHECKSUM_BYTES,
    MAX_POM_BYTES,
    InvalidUpload,
    check_pom,
    read_checksum,
    read_plugin_descriptor,
    read_pom,
)
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from artifactory.plugin import (
    BadRequest,
    Coordinates,
    IndexKey,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    Principal,
    Rendered,
    RenderedDocument,
    Repo,
    Repositories,
    StagedBlob,
    StoredAsset,
    Upload,
    access,
    current_path,
    current_repository,
    read_body,
    repositories,
    repository_url,
    respond,
    respond_document,
)

CHECKSUM_HEADERS = {"sha256": "x-checksum-sha256", "sha1": "x-checksum-sha1", "md5": "x-checksum-md5"}
MAX_IGNORED_BYTES = 16 * 1024 * 1024
# A listing loads nothing (no script, style, frame or form); its links still navigate.
LISTING_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
}
MEDIA_TYPE_OF_CHECKSUM = {algorithm: media for media, algorithm in documents.CHECKSUM_TYPES.items()}


# -- reading -------------------------------------------------------------------------------------
async def get(request: Request) -> Response:
    repo, path, service = current_repository(request), current_path(request), repositories(request)
    principal = await access(request).principal(request)
    if path == "" or path.endswith("/"):
        return await listing(request, path)
    base, algorithm = split_checksum(path)
    if is_metadata(base):
        return await metadata(request, repo, base, algorithm, principal)
    if algorithm is not None:
        return await checksum(request, base, algorithm)
    found = await service.get(repo, path, principal, stream=request.method == "GET")
    if found is None:
        # A path that names an artifact's file is no folder: only another path is looked for as one
        # (which costs a cold miss a read of every member).
        if try_artifact(path) is None and await service.listing(repo, path + "/", principal):
            return RedirectResponse(f"{request.scope['root_path']}/{_encoded(path)}/", status_code=301)
        raise NotFound(f"{path} not found in {repo.name}")
    return respond(request, found)


async def metadata(
    request: Request, repo: Repo, path: str, algorithm: str | None, principal: Principal
) -> Response:
    """A maven-metadata.xml, or one of its checksums (the same model rendered as a digest), served
    by the engine's index for hosted, proxy and group repositories alike."""
    service = repositories(request)
    key = await _document_key(service, repo, path, principal)
    if algorithm is not None:
        request = _accepting(request, MEDIA_TYPE_OF_CHECKSUM[algorithm])
    return await service.index(request, repo, key, principal)


async def _document_key(service: Repositories, repo: Repo, path: str, principal: Principal) -> IndexKey:
    """The document at `path`: an artifact's versions when it has any, else a group's plugins."""
    keys = documents.keys_for(path)
    if not keys:
        raise NotFound(f"{path} not found in {repo.name}")
    for key in keys[:-1]:
        if await service.index_model(repo, key, principal) is not None:
            return key
    return keys[-1]


def _accepting(request: Request, media_type: str) -> Request:
    """The request as if it asked for `media_type`: how a checksum path selects the checksum
    rendering of its document (the facade's `index` negotiates from the Accept header)."""
    headers = [(k, v) for k, v in request.scope["headers"] if k != b"accept"]
    headers.append((b"accept", media_type.encode()))
    return Request({**request.scope, "headers": headers}, request.receive)


async def checksum(request: Request, base: str, algorithm: str) -> Response:
    """Checksums of files are never stored: they come from the digests of the file itself."""
    repo, service = current_repository(request), repositories(request)
    principal = await access(request).principal(request)
    digest = None
    if split_checksum(base)[1] is None:
        found = await service.get(repo, base, principal, stream=False)
        if isinstance(found, StoredAsset):
            digest = str(getattr(found, algorithm))
    if digest is None:
        raise NotFound(f"{base}.{algorithm} not found in {repo.name}")
    return respond_document(request, RenderedDocument.of(Rendered(digest.encode(), "text/plain")))


async def listing(request: Request, prefix: str) -> Response:
    repo, service = current_repository(request), repositories(request)
    principal = await access(request).principal(request)
    # The engine's listing already leaves out, in a group, a proxy's cached files of an artifact a
    # hosted member holds (the dependency-confusion guard), and the engine's own .index/ cache.
    entries = await service.listing(repo, prefix, principal)
    names = {entry.name for entry in entries}
    generated: list[tuple[str, int | None]] = []
    # A proxy lists the files it has cached; its upstream's documents are the engine's, not files,
    # and a listing never makes the engine fetch one.
    if prefix and METADATA not in names and repo.type != "proxy":
        path = prefix + METADATA
        keys = documents.keys_for(path)
        if keys and await service.index_model(repo, keys[0], principal) is not None:
            generated.append((METADATA, None))
    if not entries and not generated and prefix:
        raise NotFound(f"{prefix} not found in {repo.name}")
    title = html.escape(f"{repo.name}/{prefix}")
    lines = ['<li><a href="../">../</a></li>'] if prefix else []
    files: list[tuple[str, int | None]] = [
        (e.name, e.asset.size) for e in entries if not e.is_folder and e.asset is not None
    ]
    for entry in entries:
        if entry.is_folder:
            lines.append(_link(entry.name, folder=True))
    for name, size in sorted(files + generated, key=lambda item: item[0]):
        lines.append(_link(name, folder=False, size=size))
    body = (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{title}</title></head>'
        f"<body><h1>{title}</h1><ul>{''.join(lines)}</ul></body></html>"
    )
    return HTMLResponse(body, headers={**LISTING_HEADERS, "Cache-Control": "no-cache"})


def _link(name: str, folder: bool, size: int | None = None) -> str:
    """One <li>: a relative href ("./" first, so no name reads as a URL scheme), percent-encoded,
    and an HTML-escaped label. A proxy caches whatever names its upstream answers for."""
    slash = "/" if folder else ""
    href = html.escape("./" + quote(name, safe="") + slash, quote=True)
    tail = "" if size is None else f" {size} bytes"
    return f'<li><a href="{href}">{html.escape(name + slash)}</a>{tail}</li>'


def _encoded(path: str) -> str:
    """A decoded repository path as it goes into a URL or a header (Location): percent-encoded."""
    return quote(path, safe="/")


# -- writing -------------------------------------------------------------------------------------
async def put(request: Request) -> Response:
    repo, path, service = current_repository(request), current_path(request), repositories(request)
    target, principal = await access(request).writable(request)
    if path == "" or path.endswith("/"):
        raise BadRequest("cannot upload to a folder path")
    base, algorithm = split_checksum(path)
    if is_metadata(base):
        # The server generates maven-metadata.xml and its checksums; clients' copies are not kept.
        await _drain(request, MAX_IGNORED_BYTES)
        return Response(status_code=201)
    if algorithm is not None:
        await _check_uploaded_checksum(request, service, target, base, algorithm)
        return Response(status_code=201)
    try:
        artifact = parse_artifact(path)
    except LayoutError as exc:
        raise BadRequest(str(exc)) from None
    _check_version_policy(target, artifact)
    upload = Upload(
        path=path,
        expected={name: request.headers.get(header) for name, header in CHECKSUM_HEADERS.items()},
        component=Coordinates(
            name=artifact.artifact_id, version=artifact.base_version, namespace=artifact.group_id
        ),
        attributes={"maven": artifact.describe()},
        # A snapshot is mutable by definition: allow_once guards releases (deny still refuses all).
        bypass_write_policy=artifact.snapshot and target.write_policy == "allow_once",
    )
    if artifact.is_pom or artifact.is_main_jar:
        asset = await _put_inspected(request, service, repo, artifact, upload, principal)
    else:
        asset = await service.put(repo, request.stream(), upload, principal)
    await content.apply_retention(service, service.repository(target.name), artifact)
    return Response(
        status_code=201,
        headers={
            "ETag": f'"{asset.sha256}"',
            "X-Checksum-Sha256": asset.sha256,
            "Location": repository_url(request, target.name) + _encoded(path),
        },
    )


def _check_version_policy(target: Repo, artifact: Artifact) -> None:
    policy = target.config.get("version_policy", "release")
    coordinates = f"{artifact.group_id}:{artifact.artifact_id}:{artifact.base_version}"
    if policy == "release" and artifact.snapshot:
        raise BadRequest(
            f"repository {target.name} has version policy release: it does not take SNAPSHOT "
            f"versions ({coordinates}); deploy snapshots to a snapshot repository"
        )
    if policy == "snapshot" and not artifact.snapshot:
        raise BadRequest(
            f"repository {target.name} has version policy snapshot: it takes only SNAPSHOT versions, "
            f"not the release {coordinates}; deploy releases to a release repository"
        )


async def _put_inspected(
    request: Request,
    service: Repositories,
    repo: Repo,
    artifact: Artifact,
    upload: Upload,
    principal: Principal,
) -> StoredAsset:
    """POMs and main jars are read before they become visible: a POM must be safe XML describing the
    coordinates of its path; a plugin jar's descriptor gives the group's plugin prefix."""
    staged: StagedBlob = await service.stage(repo, request.stream(), upload)
    try:
        facts = await service.read_staged(staged, functools.partial(_inspect, artifact))
    except InvalidUpload as exc:
        await service.discard(staged)
        raise BadRequest(f"{artifact.path}: {exc}") from None
    except BaseException:
        await service.discard(staged)
        raise
    attributes = {"maven": {**artifact.describe(), **facts}}
    return await service.commit(repo, staged, dataclasses.replace(upload, attributes=attributes), principal)


def _inspect(artifact: Artifact, handle: BinaryIO) -> dict[str, Any]:
    if artifact.is_pom:
        pom = read_pom(handle.read(MAX_POM_BYTES + 1))
        check_pom(pom, artifact)
        return {"packaging": pom.packaging}
    descriptor = read_plugin_descriptor(handle)
    if descriptor is None:
        return {}
    return {"plugin": {"prefix": descriptor.prefix, "name": descriptor.name}}


async def _check_uploaded_checksum(
    request: Request, service: Repositories, target: Repo, base: str, algorithm: str
) -> None:
    body = await read_body(request, MAX_CHECKSUM_BYTES)
    if split_checksum(base)[1] is not None:
        raise BadRequest(f"{base}.{algorithm}: checksums of checksum files are not kept")
    try:
        expected = read_checksum(body, algorithm)
    except InvalidUpload as exc:
        raise BadRequest(f"{base}.{algorithm}: {exc}") from None
    asset = await service.lookup(target, base)
    if asset is None:
        raise BadRequest(f"no file at {base} to check this {algorithm} checksum against: upload it first")
    actual = str(getattr(asset, algorithm))
    if actual != expected:
        raise BadRequest(
            f"{algorithm} checksum mismatch for {base}: uploaded {expected}, stored file has {actual}"
        )


async def _drain(request: Request, limit: int) -> None:
    """Read and drop a body the server does not keep, without holding it in memory."""
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body larger than {limit} bytes")


# -- deleting ------------------------------------------------------------------------------------
async def delete(request: Request) -> Response:
    repo, path, service = current_repository(request), current_path(request), repositories(request)
    principal = await access(request).principal(request)
    base, algorithm = split_checksum(path)
    if is_metadata(base) or algorithm is not None:
        access(request).require(principal, repo, "delete")
        raise MethodNotAllowed(f"{path} is generated by the server: delete the files it describes instead")
    if path == "" or path.endswith("/"):
        removed = await _delete_folder(request, repo, path, principal)
        if not removed:
            raise NotFound(f"{path} not found in {repo.name}")
        return Response(status_code=204)
    if await service.delete(repo, path, principal) is None:
        if await service.listing(repo, path + "/", principal):
            await _delete_folder(request, repo, path + "/", principal)
            return Response(status_code=204)
        raise NotFound(f"{path} not found in {repo.name}")
    return Response(status_code=204)


async def _delete_folder(request: Request, repo: Repo, prefix: str, principal: Principal) -> int:
    if not prefix:
        raise BadRequest("refusing to delete the whole repository through a path; delete the repository")
    access(request).require(principal, repo, "delete")
    service = repositories(request)
    removed = 0
    for entry in await service.listing(repo, prefix, principal):
        if entry.is_folder:
            removed += await _delete_folder(request, repo, prefix + entry.name + "/", principal)
        elif await service.delete(repo, prefix + entry.name, principal) is not None:
            removed += 1
    return removed


ROUTES: tuple[BaseRoute, ...] = (
    Route("/{path:path}", get, methods=["GET", "HEAD"]),
    Route("/{path:path}", put, methods=["PUT"]),
    Route("/{path:path}", delete, methods=["DELETE"]),
)
