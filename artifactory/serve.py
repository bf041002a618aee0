"""Turning engine content into an HTTP response: the one place blob headers are decided.

Every stored file is served with its digests (ETag is the sha256), Last-Modified, conditional GET and
single byte ranges, `X-Content-Type-Options: nosniff` and, unless the repository allows inline
display, `Content-Disposition: attachment`, so stored files never become a cross-site-scripting vector.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response

from artifactory.http.responses import (
    BlobResponse,
    StreamingBodyResponse,
    http_date,
    not_modified,
    parse_range,
)
from artifactory.repository.model import Content, Document, StoredAsset, Streaming

if TYPE_CHECKING:
    from artifactory.blobstore.store import BlobStore

IMMUTABLE = "public, max-age=31536000, immutable"
# Request headers that make a GET conditional or partial. Most requests carry none of them and skip
# those checks, found with one look at the raw headers (lowercase, as ASGI servers hand them over).
CONDITIONAL = frozenset({b"if-none-match", b"if-modified-since", b"if-range", b"range"})


@functools.lru_cache(maxsize=4096)
def _attachment(path: str) -> str:
    """The Content-Disposition of a file served as an attachment (kept: the same files are asked
    for again and again, and the filter below walks every character)."""
    filename = path.rstrip("/").rsplit("/", 1)[-1]
    safe = "".join(c for c in filename if c.isascii() and c.isprintable() and c not in '"\\;') or "download"
    return f'attachment; filename="{safe}"'


def respond(
    request: Request,
    content: Content,
    *,
    inline: bool = False,
    immutable: bool = False,
    media_type: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    base = {
        "X-Content-Type-Options": "nosniff",
        "Content-Disposition": "inline" if inline else _attachment(content.path),
        "Content-Type": media_type or content.content_type,
    }
    if immutable:
        base["Cache-Control"] = IMMUTABLE
    if headers:
        base.update(headers)
    if isinstance(content, Streaming):
        if content.size is not None:
            base["Content-Length"] = str(content.size)
        for name in ("etag", "last-modified"):
            if name in content.upstream_headers:
                base[name.title()] = content.upstream_headers[name]
        return StreamingBodyResponse(200, base, content.chunks)
    etag = f'"{content.sha256}"'
    base["ETag"] = etag
    base["Last-Modified"] = http_date(content.updated_at)
    if isinstance(content, StoredAsset):
        base["X-Checksum-Sha256"] = content.sha256
        base["X-Checksum-Sha1"] = content.sha1
        base["X-Checksum-Md5"] = content.md5
    conditional = not CONDITIONAL.isdisjoint(dict(request.scope["headers"]))
    if conditional and not_modified(request, etag, content.updated_at):
        return Response(status_code=304, headers={k: v for k, v in base.items() if k != "Content-Type"})
    if isinstance(content, Document):
        return document_response(request, content, base, conditional)
    if request.method == "GET":
        request.scope["artifactory.state"].engine.downloads.record(content.asset_id)
    return blob_response(request, content, base, conditional)


def document_response(
    request: Request, document: Document, headers: dict[str, str], conditional: bool = True
) -> Response:
    """A file held in memory (a proxied file answered as soon as it was checked, before it is
    stored), with the same single byte ranges a stored file is served with."""
    return _body_response(request, document.body, headers, conditional)


def _body_response(request: Request, body: bytes, headers: dict[str, str], conditional: bool) -> Response:
    ranged = _range(request, headers, len(body), conditional)
    if ranged == "unsatisfiable":
        return _unsatisfiable(len(body))
    if isinstance(ranged, tuple):
        start, end = ranged
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{len(body)}"
        return Response(body[start:end], status_code=206, headers=headers)
    return Response(body, headers=headers)


def _range(
    request: Request, headers: dict[str, str], size: int, conditional: bool
) -> tuple[int, int] | str | None:
    """The byte range asked for (None: the whole body), honouring If-Range; says Accept-Ranges."""
    headers["Accept-Ranges"] = "bytes"
    if not conditional:
        return None
    if_range = request.headers.get("if-range")
    if if_range is None or if_range.strip() in (headers["ETag"], headers["Last-Modified"]):
        return parse_range(request.headers.get("range"), size)
    return None


def _unsatisfiable(size: int) -> Response:
    return Response(status_code=416, headers={"Content-Range": f"bytes */{size}", "Accept-Ranges": "bytes"})


def blob_response(
    request: Request, asset: StoredAsset, headers: dict[str, str], conditional: bool = True
) -> Response:
    state = request.scope["artifactory.state"]
    # Fetched and verified, its commit (and the bytes' flush to disk) still under way: from memory.
    pending = state.engine.proxy.pending(asset.sha256)
    if pending is not None:
        return _body_response(request, pending, headers, conditional)
    if asset.inline is not None:  # a small blob whose row keeps its bytes, read with the asset
        return _body_response(request, asset.inline, headers, conditional)
    size = asset.size
    ranged = _range(request, headers, size, conditional)
    if ranged == "unsatisfiable":
        return _unsatisfiable(size)
    store = state.blobs
    path = store.local_path(asset.sha256)
    # An asset read without its blob's row bytes (a listing's): those are looked for if no file is.
    fallback = functools.partial(state.engine.inline_bytes, asset.sha256)
    if isinstance(ranged, tuple):
        start, end = ranged
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        headers["Content-Length"] = str(end - start)
        chunks = None if path is not None else _chunks(store, asset.sha256, start, end)
        return BlobResponse(206, headers, chunks, path, start, end, False, fallback)
    headers["Content-Length"] = str(size)
    chunks = None if path is not None else _chunks(store, asset.sha256, 0, None)
    return BlobResponse(200, headers, chunks, path, 0, size, True, fallback)


def _chunks(store: BlobStore, sha256: str, start: int, end: int | None) -> Iterator[bytes]:
    """The blob's bytes from a store without local files; a missing one raises when first read
    (as a file's absence is found when it is opened), so that BlobResponse tries its fallback."""
    try:
        return store.read(sha256, start, end)
    except KeyError as exc:
        return _missing(exc)


def _missing(exc: KeyError) -> Iterator[bytes]:
    raise exc
    yield b""  # a generator: raises when first read
