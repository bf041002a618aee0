"""/v2/<name>/blobs/<digest>: GET and HEAD (with Range), DELETE."""

from __future__ import annotations

from artifactory_formats.oci.access import Ctx, deletion_allowed, fetch, open_ctx
from artifactory_formats.oci.coordinates import Digest, InvalidDigest, blob_path, parse_digest
from artifactory_formats.oci.errors import OCIError, translate
from starlette.requests import Request
from starlette.responses import Response

from artifactory.plugin import HTTPProblem, StoredAsset, respond

OCTET_STREAM = "application/octet-stream"


def digest_arg(value: str) -> Digest:
    try:
        return parse_digest(value)
    except InvalidDigest as exc:
        raise OCIError("DIGEST_INVALID", str(exc), detail={"digest": value}) from None


def unknown(ctx: Ctx, digest: Digest | str) -> OCIError:
    return OCIError(
        "BLOB_UNKNOWN", f"blob {digest} not found in {ctx.name.full}", detail={"digest": str(digest)}
    )


async def get(request: Request, name: str, digest: str) -> Response:
    """A blob by digest. A proxy verifies what it fetches against the digest while it streams
    (`OciFormat.expected_digests`) and aborts a transfer that does not match, so the digest header is
    sent only for stored bytes, as their own digest; a blob still arriving is sent without it."""
    ctx = await open_ctx(request, name, "read")
    wanted = digest_arg(digest)
    content = await fetch(ctx, blob_path(ctx.image, wanted), stream=request.method == "GET")
    if content is None:
        raise unknown(ctx, wanted)
    headers = {}
    if isinstance(content, StoredAsset):
        actual = content.sha256 if wanted.algorithm == "sha256" else content.sha512
        headers["Docker-Content-Digest"] = f"{wanted.algorithm}:{actual}"
    return respond(request, content, immutable=True, media_type=OCTET_STREAM, headers=headers)


async def delete(request: Request, name: str, digest: str) -> Response:
    ctx = await open_ctx(request, name, "delete")
    deletion_allowed(ctx)
    wanted = digest_arg(digest)
    try:
        deleted = await ctx.repos.delete(ctx.repo, blob_path(ctx.image, wanted), ctx.principal)
    except HTTPProblem as problem:
        raise translate(problem) from None
    if deleted is None:
        raise unknown(ctx, wanted)
    return Response(status_code=202)
