"""Small request and response helpers shared by the npm handlers."""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from artifactory.plugin import BadRequest, PayloadTooLarge, Repo, loads
from artifactory.plugin import read_body as read_bounded

# The largest package document (`npm publish` body, JSON with the tarball in base64) a repository
# accepts unless its `max_document_bytes` says otherwise; docs/npm.md documents it.
MAX_DOCUMENT_BYTES = 64 * 1024 * 1024


async def read_body(request: Request, limit: int) -> bytes:
    """The request body (gunzipped if the client compressed it), refused past `limit` bytes."""
    body = await read_bounded(request, limit)
    if request.headers.get("content-encoding", "").lower() == "gzip":
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            plain = inflater.decompress(body, limit + 1)
        except zlib.error:
            raise BadRequest("the request body is not valid gzip") from None
        if len(plain) > limit or inflater.unconsumed_tail:
            raise PayloadTooLarge(f"the request body is larger than {limit} bytes")
        return plain
    return body


async def read_json(request: Request, limit: int) -> Any:
    """The request body as JSON, bounded in size, nesting and number of values (else 400 or 413)."""
    return loads(await read_body(request, limit), allow_nul=True)


def max_document_bytes(repo: Repo) -> int:
    return int(repo.config.get("max_document_bytes") or MAX_DOCUMENT_BYTES)


def ok(status: int = 200, **fields: Any) -> JSONResponse:
    return JSONResponse({"ok": True, **fields}, status_code=status)


async def one_chunk(data: bytes) -> AsyncIterator[bytes]:
    yield data
