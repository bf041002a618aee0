"""Maven routes: GET/HEAD of files, checksums, generated metadata and folder listings; PUT; DELETE."""

from __future__ import annotations

import dataclasses
import hashlib
import html
from typing import Any
from urllib.parse import quote

from artifactory_formats.maven import content
from artifactory_formats.maven.coordinates import (
    METADATA,
    Artifact,
    LayoutError,
    is_metadata,
    parse_artifact,
    split_checksum,
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
    Engine,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    Principal,
    Repo,
    StoredAsset,
    Upload,
    current_path,
    current_principal,
    current_repository,
    document_response,
    engine,
    repository_url,
    respond,
)

XML = "application/xml"
CHECKSUM_HEADERS = {"sha256": "x-checksum-sha256", "sha1": "x-checksum-sha1", "md5": "x-checksum-md5"}
MAX_IGNORED_BYTES = 16 * 1024 * 1024
# A listing loads nothing (no script, style, frame or form); its links still navigate.
LISTING_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
}


# -- reading -------------------------------------------------------------------------------------
async def get(request: Request) -> Response:
    repo, path, eng = current_repository(request), current_path(request), engine(request)
    principal = await current_principal(request)
    if path == "" or path.endswith("/"):
        return await listing(request, path)
    base, algorithm = split_checksum(path)
    if algorithm is not None:
        return await checksum(request, base, algorithm)
    if is_metadata(path):
        document = await content.metadata_document(eng, repo, path, principal)
        if document is None:
            raise NotFound(f"{path} not found in {repo.name}")
        return document_response(request, document[0], XML, document[1])
    found = await content.fetch(eng, repo, path, principal, stream=request.method == "GET")
    if found is None:
        if await eng.listing(repo, path + "/", principal):
            return RedirectResponse(f"{request.scope['root_path']}/{_encoded(path)}/", status_code=301)
        raise NotFound(f"{path} not found in {repo.name}")
    return respond(request, found)


async def checksum(request: Request, base: str, algorithm: str) -> Response:
    """Checksums are never stored: they come from the digests of the file (or document) itself."""
    repo, eng = current_repository(request), engine(request)
    principal = await current_principal(request)
    digest = None
    if is_metadata(base):
        document = await content.metadata_document(eng, repo, base, principal)
        if document is not None:
            digest = hashlib.new(algorithm, document[0]).hexdigest()
    elif split_checksum(base)[1] is None:
        found = await content.fetch(eng, repo, base, principal, stream=False)
        if isinstance(found, StoredAsset):
            digest = str(getattr(found, algorithm))
    if digest is None:
        raise NotFound(f"{base}.{algorithm} not found in {repo.name}")
    body = digest.encode()
    return document_response(request, body, "text/plain", hashlib.sha256(body).hexdigest())


async def listing(request: Request, prefix: str) -> Response:
    repo, eng = current_repository(request), engine(request)
    principal = await current_principal(request)
    entries = await content.listing(eng, repo, prefix, principal)
    names = {entry.name for entry in entries}
    generated = []
    if prefix and METADATA not in names:
        path = prefix + METADATA
        document = await content.metadata_document(eng, repo, path, principal, cached_only=True)
        if document is not None:
            generated.append((METADATA, len(document[0])))
    if not entries and not generated and prefix:
        raise NotFound(f"{prefix} not found in {repo.name}")
    title = html.escape(f"{repo.name}/{prefix}")
    lines = ['<li><a href="../">../</a></li>'] if prefix else []
    files = [(e.name, e.asset.size) for e in entries if not e.is_folder and e.asset is not None]
    for entry in entries:
        if entry.is_folder:
            lines.append(_link(entry.name, folder=True))
    for name, size in sorted(files + generated):
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
    repo, path, eng = current_repository(request), current_path(request), engine(request)
    principal = await current_principal(request)
    target = eng.write_target(repo)
    eng.require(principal, target, "write")
    if path == "" or path.endswith("/"):
        raise BadRequest("cannot upload to a folder path")
    base, algorithm = split_checksum(path)
    if is_metadata(base):
        # The server generates maven-metadata.xml and its checksums; clients' copies are not kept.
        await _drain(request, MAX_IGNORED_BYTES)
        return Response(status_code=201)
    if algorithm is not None:
        await _check_uploaded_checksum(request, eng, target, base, algorithm)
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
        asset = await _put_inspected(request, eng, repo, artifact, upload, principal)
    else:
        asset = await eng.put(repo, request.stream(), upload, principal)
    await content.apply_retention(eng, eng.repository(target.name), artifact)
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
    request: Request, eng: Engine, repo: Repo, artifact: Artifact, upload: Upload, principal: Principal
) -> StoredAsset:
    """POMs and main jars are read before they become visible: a POM must be safe XML describing the
    coordinates of its path; a plugin jar's descriptor gives the group's plugin prefix."""
    staged = await eng.stage(repo, request.stream(), upload)
    try:
        facts = await eng.db_call(_inspect, eng, staged, artifact)
    except InvalidUpload as exc:
        await eng.discard(staged)
        raise BadRequest(f"{artifact.path}: {exc}") from None
    except BaseException:
        await eng.discard(staged)
        raise
    attributes = {"maven": {**artifact.describe(), **facts}}
    return await eng.commit(repo, staged, dataclasses.replace(upload, attributes=attributes), principal)


def _inspect(eng: Engine, staged: Any, artifact: Artifact) -> dict[str, Any]:
    with eng.open_staged(staged) as handle:
        if artifact.is_pom:
            pom = read_pom(handle.read(MAX_POM_BYTES + 1))
            check_pom(pom, artifact)
            return {"packaging": pom.packaging}
        descriptor = read_plugin_descriptor(handle)
        if descriptor is None:
            return {}
        return {"plugin": {"prefix": descriptor.prefix, "name": descriptor.name}}


async def _check_uploaded_checksum(
    request: Request, eng: Engine, target: Repo, base: str, algorithm: str
) -> None:
    body = await _read_body(request, MAX_CHECKSUM_BYTES)
    if split_checksum(base)[1] is not None:
        raise BadRequest(f"{base}.{algorithm}: checksums of checksum files are not kept")
    try:
        expected = read_checksum(body, algorithm)
    except InvalidUpload as exc:
        raise BadRequest(f"{base}.{algorithm}: {exc}") from None
    asset = await eng.db_call(eng.lookup, target, base)
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


async def _read_body(request: Request, limit: int) -> bytes:
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge(f"body larger than {limit} bytes")
    return bytes(body)


# -- deleting ------------------------------------------------------------------------------------
async def delete(request: Request) -> Response:
    repo, path, eng = current_repository(request), current_path(request), engine(request)
    principal = await current_principal(request)
    base, algorithm = split_checksum(path)
    if is_metadata(base) or algorithm is not None:
        eng.require(principal, repo, "delete")
        raise MethodNotAllowed(f"{path} is generated by the server: delete the files it describes instead")
    if path == "" or path.endswith("/"):
        removed = await _delete_folder(eng, repo, path, principal)
        if not removed:
            raise NotFound(f"{path} not found in {repo.name}")
        return Response(status_code=204)
    if await eng.delete(repo, path, principal) is None:
        if await eng.listing(repo, path + "/", principal):
            await _delete_folder(eng, repo, path + "/", principal)
            return Response(status_code=204)
        raise NotFound(f"{path} not found in {repo.name}")
    return Response(status_code=204)


async def _delete_folder(eng: Engine, repo: Repo, prefix: str, principal: Principal) -> int:
    if not prefix:
        raise BadRequest("refusing to delete the whole repository through a path; delete the repository")
    eng.require(principal, repo, "delete")
    removed = 0
    for entry in await eng.listing(repo, prefix, principal):
        if entry.is_folder:
            removed += await _delete_folder(eng, repo, prefix + entry.name + "/", principal)
        elif await eng.delete(repo, prefix + entry.name, principal) is not None:
            removed += 1
    return removed


ROUTES: tuple[BaseRoute, ...] = (
    Route("/{path:path}", get, methods=["GET", "HEAD"]),
    Route("/{path:path}", put, methods=["PUT"]),
    Route("/{path:path}", delete, methods=["DELETE"]),
)
