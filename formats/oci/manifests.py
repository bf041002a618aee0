"""/v2/<name>/manifests/<reference>: GET, HEAD, PUT, DELETE.

A manifest is stored byte for byte at its digest path, with its media type as content type and what
the referrers API and GC need as attributes; a tag is a second asset holding the same bytes.
"""

from __future__ import annotations

import hashlib
import hmac

from artifactory_formats.oci.access import (
    Ctx,
    deletion_allowed,
    fetch,
    open_ctx,
    push_target,
)
from artifactory_formats.oci.coordinates import (
    TAG,
    Digest,
    InvalidDigest,
    blob_path,
    is_digest_reference,
    manifest_path,
    parse_digest,
)
from artifactory_formats.oci.errors import OCIError, translate
from artifactory_formats.oci.metadata import MANIFEST_TYPES, Manifest, load_json, parse_manifest
from starlette.requests import Request
from starlette.responses import Response

from artifactory.plugin import (
    Coordinates,
    HTTPProblem,
    StoredAsset,
    Upload,
    read_body,
    respond,
)

DEFAULT_MAX_MANIFEST_BYTES = 4 * 1024 * 1024


def parse_reference(reference: str) -> Digest | str:
    if is_digest_reference(reference):
        try:
            return parse_digest(reference)
        except InvalidDigest as exc:
            raise OCIError("DIGEST_INVALID", str(exc), detail={"digest": reference}) from None
    if not TAG.match(reference):
        raise OCIError("MANIFEST_UNKNOWN", f"invalid tag {reference!r}", detail={"tag": reference})
    return reference


def digest_of(body: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, body).hexdigest()}"


async def get(request: Request, name: str, reference: str) -> Response:
    """A manifest by tag or digest. By digest, a proxy has verified the bytes against the digest
    before caching them (`OciFormat.expected_digests`); the header states the bytes' own digest."""
    ctx = await open_ctx(request, name, "read")
    ref = parse_reference(reference)
    content = await fetch(ctx, manifest_path(ctx.image, ref), stream=False)
    if not isinstance(content, StoredAsset):
        raise OCIError(
            "MANIFEST_UNKNOWN", f"manifest {reference} not found in {name}", detail={"reference": reference}
        )
    media_type = content.content_type.split(";", 1)[0].strip()
    if media_type not in MANIFEST_TYPES:
        media_type = await _declared_type(ctx, content) or media_type
    headers = {"Docker-Content-Digest": f"sha256:{content.sha256}"}
    return respond(
        request, content, immutable=isinstance(ref, Digest), media_type=media_type, headers=headers
    )


async def _declared_type(ctx: Ctx, content: StoredAsset) -> str | None:
    """The mediaType a manifest declares inside (an upstream that served it as octet-stream)."""
    if content.size > DEFAULT_MAX_MANIFEST_BYTES:
        return None
    body = await ctx.repos.read(content, DEFAULT_MAX_MANIFEST_BYTES)
    try:
        document = load_json(body)
    except (ValueError, UnicodeDecodeError):
        return None
    declared = document.get("mediaType") if isinstance(document, dict) else None
    return declared if isinstance(declared, str) else None


async def put(request: Request, name: str, reference: str) -> Response:
    ctx = await open_ctx(request, name, "write")
    target = push_target(ctx)
    if is_digest_reference(reference):
        ref: Digest | str = parse_reference(reference)
    elif TAG.match(reference):
        ref = reference
    else:
        raise OCIError("MANIFEST_INVALID", f"invalid tag {reference!r}", detail={"tag": reference})
    limit = int(target.config.get("max_manifest_bytes") or DEFAULT_MAX_MANIFEST_BYTES)
    body = await read_body(request, limit)  # 413 SIZE_INVALID beyond
    manifest = parse_manifest(body, request.headers.get("content-type"))
    digest = digest_of(body)
    if isinstance(ref, Digest) and not hmac.compare_digest(digest_of(body, ref.algorithm), str(ref)):
        raise OCIError("DIGEST_INVALID", f"the manifest's digest is not {ref}", detail={"digest": str(ref)})
    if isinstance(ref, Digest) and ref.algorithm != "sha256":
        raise OCIError(
            "DIGEST_INVALID", "manifests are addressed by sha256 digests", detail={"digest": str(ref)}
        )
    await _check_references(ctx, manifest)
    try:
        await _store(ctx, body, manifest, digest, ref if isinstance(ref, str) else None)
    except HTTPProblem as problem:
        raise translate(problem) from None
    headers = {"Location": ctx.url(f"manifests/{digest}"), "Docker-Content-Digest": digest}
    if manifest.subject is not None:
        headers["OCI-Subject"] = str(manifest.subject)
    return Response(status_code=201, headers=headers)


async def _check_references(ctx: Ctx, manifest: Manifest) -> None:
    paths = [blob_path(ctx.image, d) for d in manifest.blobs]
    paths += [manifest_path(ctx.image, d) for d in manifest.children]

    for path in dict.fromkeys(paths):
        if await ctx.repos.lookup(ctx.repo, path) is None:
            unknown = path.rsplit("/", 1)[-1]
            raise OCIError(
                "MANIFEST_BLOB_UNKNOWN",
                f"the manifest references {unknown}, which is not in {ctx.name.full}",
                detail={"digest": unknown},
            )


async def _store(ctx: Ctx, body: bytes, manifest: Manifest, digest: str, tag: str | None) -> None:
    repos, hex_digest = ctx.repos, digest.split(":", 1)[1]
    attributes = manifest.attributes(digest, len(body))
    by_digest = manifest_path(ctx.image, digest)
    existing = await repos.lookup(ctx.repo, by_digest)
    if existing is None or existing.sha256 != hex_digest:
        upload = Upload(
            path=by_digest,
            content_type=manifest.media_type,
            component=Coordinates(name=ctx.image, version=digest),
            attributes=attributes,
        )
        await repos.put_bytes(ctx.repo, body, upload, ctx.principal)
    if tag is None:
        return
    by_tag = manifest_path(ctx.image, tag)
    current = await repos.lookup(ctx.repo, by_tag)
    if current is not None and current.sha256 == hex_digest:
        return
    upload = Upload(
        path=by_tag,
        content_type=manifest.media_type,
        component=Coordinates(name=ctx.image, version=tag),
        attributes={"oci": {**attributes["oci"], "tag": tag}},
    )
    await repos.put_bytes(ctx.repo, body, upload, ctx.principal)


async def delete(request: Request, name: str, reference: str) -> Response:
    ctx = await open_ctx(request, name, "delete")
    deletion_allowed(ctx)
    ref = parse_reference(reference)
    path = manifest_path(ctx.image, ref)
    try:  # a group's manifests are its members': the engine refuses (405 UNSUPPORTED)
        found = await ctx.repos.delete(ctx.repo, path, ctx.principal)
        if found is None:
            raise OCIError(
                "MANIFEST_UNKNOWN",
                f"manifest {reference} not found in {name}",
                detail={"reference": reference},
            )
        if isinstance(ref, Digest):  # the tags that point at it go with it
            for entry in await ctx.repos.listing(ctx.repo, manifest_path(ctx.image, ""), ctx.principal):
                if entry.asset is not None and ":" not in entry.name and entry.asset.sha256 == found.sha256:
                    await ctx.repos.delete(ctx.repo, entry.asset.path, ctx.principal)
    except HTTPProblem as problem:
        raise translate(problem) from None
    return Response(status_code=202)
