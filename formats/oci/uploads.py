"""/v2/<name>/blobs/uploads/: upload sessions (POST, PATCH, GET, PUT, DELETE) and cross-repository mount.

Sessions are the engine's resumable uploads (database + blob store), so chunks of one upload may
reach different processes or nodes. A session's URL holds only its id, so a Location handed out
before a PATCH stays valid; its offset lives in the database and a chunk that does not start there
(replayed, out of order) gets 416.
"""

from __future__ import annotations

import re
from typing import Any

from artifactory_formats.oci.access import Ctx, fetch, may, open_ctx, push_target
from artifactory_formats.oci.auth import scope_for
from artifactory_formats.oci.blobs import OCTET_STREAM, digest_arg
from artifactory_formats.oci.coordinates import Digest, blob_path, parse_name
from artifactory_formats.oci.errors import OCIError, translate
from starlette.requests import Request
from starlette.responses import Response

from artifactory.plugin import (
    DigestMismatch,
    HTTPProblem,
    Repo,
    Upload,
    UploadOffsetMismatch,
    UploadUnknown,
    ascii_digits,
)

_RANGE = re.compile(r"^(?:bytes[= ])?(\d+)-(\d+)(?:/(?:\d+|\*))?$", re.ASCII)
_SESSION = re.compile(r"^[0-9a-f]{32}$")


def _range_header(offset: int) -> str:
    return f"0-{max(offset - 1, 0)}"


def _session_headers(ctx: Ctx, session_id: str, offset: int) -> dict[str, str]:
    return {
        "Location": ctx.url(f"blobs/uploads/{session_id}"),
        "Range": _range_header(offset),
        "Docker-Upload-UUID": session_id,
        "OCI-Chunk-Min-Length": "0",
    }


def _upload_problem(ctx: Ctx, session_id: str, problem: HTTPProblem) -> OCIError:
    if isinstance(problem, UploadOffsetMismatch):
        return OCIError(
            "BLOB_UPLOAD_INVALID",
            f"the chunk does not start at the upload's offset {problem.offset}",
            status=416,
            headers=_session_headers(ctx, session_id, problem.offset),
        )
    if isinstance(problem, UploadUnknown):
        return OCIError(
            "BLOB_UPLOAD_UNKNOWN", f"upload {session_id} not found", detail={"session": session_id}
        )
    return translate(problem)


async def _session(ctx: Ctx, target: Repo, session_id: str) -> int:
    """The session's offset, after checking it belongs to this image."""
    if not _SESSION.match(session_id):
        raise OCIError("BLOB_UPLOAD_UNKNOWN", f"upload {session_id} not found")
    try:
        state = await ctx.repos.upload_status(target, session_id)
    except HTTPProblem as problem:
        raise _upload_problem(ctx, session_id, problem) from None
    if state.path != ctx.image:
        raise OCIError("BLOB_UPLOAD_UNKNOWN", f"upload {session_id} is not for {ctx.name.full}")
    return state.offset


def _parse_range(request: Request) -> tuple[int, int] | None:
    header = request.headers.get("content-range")
    if not header:
        return None
    match = _RANGE.match(header.strip())
    if match is None:
        raise OCIError("BLOB_UPLOAD_INVALID", f"malformed Content-Range {header!r}", status=416)
    start, end = int(match[1]), int(match[2])
    length = request.headers.get("content-length")
    if end < start or (length and ascii_digits(length) and int(length) != end - start + 1):
        raise OCIError("BLOB_UPLOAD_INVALID", f"Content-Range {header!r} does not match the body", status=416)
    return start, end


async def _commit_blob(ctx: Ctx, target: Repo, staged: Any, digest: Digest) -> None:
    """Store verified, staged bytes at the blob's path (already there: the same bytes, drop them)."""
    repos = ctx.repos
    path = blob_path(ctx.image, digest)
    if await repos.lookup(target, path) is not None:
        await repos.discard(staged)
        return
    await repos.commit(target, staged, Upload(path=path, content_type=OCTET_STREAM), ctx.principal)


def _created(ctx: Ctx, digest: Digest) -> Response:
    return Response(
        status_code=201,
        headers={"Location": ctx.url(f"blobs/{digest}"), "Docker-Content-Digest": str(digest)},
    )


def _mount_scopes(request: Request) -> tuple[str, ...]:
    """A mount also reads its source: the challenge asks for that too (as distribution does)."""
    source = parse_name(request.query_params.get("from") or "")
    if not request.query_params.get("mount") or source is None:
        return ()
    return (scope_for(source.full, {"pull"}),)


async def start(request: Request, name: str) -> Response:
    ctx = await open_ctx(request, name, "write", also=_mount_scopes(request))
    target = push_target(ctx)
    mount = request.query_params.get("mount")
    if mount:
        mounted = await _mount(ctx, target, digest_arg(mount), request.query_params.get("from"))
        if mounted is not None:
            return mounted
    digest = request.query_params.get("digest")
    if digest:
        wanted = digest_arg(digest)
        upload = Upload(path=blob_path(ctx.image, wanted), expected={wanted.algorithm: wanted.hex})
        try:
            staged = await ctx.repos.stage(target, request.stream(), upload)
            await _commit_blob(ctx, target, staged, wanted)
        except DigestMismatch as problem:
            raise OCIError("DIGEST_INVALID", problem.message, detail={"digest": digest}) from None
        except HTTPProblem as problem:
            raise translate(problem) from None
        return _created(ctx, wanted)
    try:
        state = await ctx.repos.start_upload(target, ctx.image, {"name": ctx.name.full})
    except HTTPProblem as problem:
        raise translate(problem) from None
    return Response(status_code=202, headers=_session_headers(ctx, state.id, 0))


async def _mount(ctx: Ctx, target: Repo, digest: Digest, source: str | None) -> Response | None:
    """Link a blob the caller may read from another repository; None: fall back to a new session."""
    source_name = parse_name(source or "")
    if source_name is None or not may(ctx.request, ctx.principal, source_name, "read"):
        return None
    source_repo = ctx.repos.find(source_name.repository)
    if source_repo is None or source_repo.format != ctx.repo.format:
        return None
    path = blob_path(ctx.image, digest)
    if await ctx.repos.lookup(target, path) is not None:
        return _created(ctx, digest)
    try:
        found = await fetch(ctx, blob_path(source_name.image, digest), stream=False, repo=source_repo)
    except OCIError:
        return None
    if found is None or not hasattr(found, "sha256"):
        return None
    sha256 = str(found.sha256)
    upload = Upload(path=path, expected={digest.algorithm: digest.hex}, content_type=OCTET_STREAM)
    try:
        # The same blob becomes the target's asset: no bytes are read or written again.
        linked = await ctx.repos.link(target, sha256, upload, ctx.principal)
    except DigestMismatch:
        return None  # the source's bytes are not that digest: upload it instead
    except HTTPProblem as problem:
        raise translate(problem) from None
    if linked is None:
        return None
    return _created(ctx, digest)


async def patch(request: Request, name: str, session_id: str) -> Response:
    ctx = await open_ctx(request, name, "write")
    target = push_target(ctx)
    await _session(ctx, target, session_id)
    ranged = _parse_range(request)
    try:
        state = await ctx.repos.append_upload(
            target, session_id, request.stream(), ranged[0] if ranged else None
        )
    except HTTPProblem as problem:
        raise _upload_problem(ctx, session_id, problem) from None
    return Response(status_code=202, headers=_session_headers(ctx, session_id, state.offset))


async def status(request: Request, name: str, session_id: str) -> Response:
    ctx = await open_ctx(request, name, "write")
    target = push_target(ctx)
    offset = await _session(ctx, target, session_id)
    if offset < 0:  # a chunk is being written right now
        offset = 0
    return Response(status_code=204, headers=_session_headers(ctx, session_id, offset))


async def finish(request: Request, name: str, session_id: str) -> Response:
    ctx = await open_ctx(request, name, "write")
    target = push_target(ctx)
    digest = request.query_params.get("digest")
    if not digest:
        raise OCIError("DIGEST_INVALID", "closing an upload needs ?digest=")
    wanted = digest_arg(digest)
    await _session(ctx, target, session_id)
    ranged = _parse_range(request)
    try:
        if request.headers.get("content-length", "") != "0" or ranged is not None:
            await ctx.repos.append_upload(target, session_id, request.stream(), ranged[0] if ranged else None)
        _state, staged = await ctx.repos.finish_upload(target, session_id, {wanted.algorithm: wanted.hex})
    except HTTPProblem as problem:
        raise _upload_problem(ctx, session_id, problem) from None
    try:
        await _commit_blob(ctx, target, staged, wanted)
    except HTTPProblem as problem:
        raise translate(problem) from None
    return _created(ctx, wanted)


async def cancel(request: Request, name: str, session_id: str) -> Response:
    ctx = await open_ctx(request, name, "write")
    target = push_target(ctx)
    await _session(ctx, target, session_id)
    try:
        await ctx.repos.cancel_upload(target, session_id)
    except HTTPProblem as problem:
        raise _upload_problem(ctx, session_id, problem) from None
    return Response(status_code=204)
