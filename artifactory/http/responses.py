"""Responses shared by every format: blobs (conditional, ranged, zero-copy where possible) and
computed metadata documents (ETag, 304, gzip). Blobs are never compressed."""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from datetime import datetime
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path

from anyio import to_thread
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from artifactory.lru import Lru

log = logging.getLogger(__name__)
INLINE_READ_LIMIT = 256 * 1024


def etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    if header.strip() == "*":
        return True
    bare = etag.strip('"')
    return any(candidate.strip().removeprefix("W/").strip('"') == bare for candidate in header.split(","))


def not_modified(request: Request, etag: str, last_modified: datetime | None) -> bool:
    """RFC 9110 conditional GET: If-None-Match wins over If-Modified-Since."""
    if request.method not in ("GET", "HEAD"):
        return False
    inm = request.headers.get("if-none-match")
    if inm is not None:
        return etag_matches(inm, etag)
    ims = request.headers.get("if-modified-since")
    if ims and last_modified is not None:
        try:
            since = parsedate_to_datetime(ims)
        except (TypeError, ValueError):
            return False
        return last_modified.replace(microsecond=0) <= since
    return False


@functools.lru_cache(maxsize=4096)
def http_date(moment: datetime) -> str:
    """An HTTP date (kept: a stored file's Last-Modified is formatted on every GET of it)."""
    return format_datetime(moment, usegmt=True)


def parse_range(header: str | None, size: int) -> tuple[int, int] | None | str:
    """One byte range [start, end) from a Range header; None: serve it all; "unsatisfiable": 416."""
    if not header or not header.startswith("bytes="):
        return None
    spec = header[6:].strip()
    if "," in spec:
        return None  # several ranges: answering with the whole representation is allowed
    first, sep, last = spec.partition("-")
    if not sep:
        return None
    try:
        if first == "":
            suffix = int(last)
            if suffix <= 0:
                return "unsatisfiable"
            return (max(0, size - suffix), size) if size else "unsatisfiable"
        start = int(first)
        end = int(last) + 1 if last else size
    except ValueError:
        return None
    if start < 0 or start >= size or end <= start:
        return "unsatisfiable"
    return start, min(end, size)


class BlobResponse(Response):
    """Streams [start, end) of a blob: pathsend/inline read for local files, else chunks in a thread."""

    def __init__(
        self,
        status_code: int,
        headers: Mapping[str, str],
        chunks: Iterator[bytes] | None,
        path: Path | None,
        start: int,
        end: int,
        full: bool,
        fallback: Callable[[], Awaitable[bytes | None]] | None = None,
    ) -> None:
        """`fallback`: where the bytes are read from when the blob store has none (a small blob
        whose bytes its database row keeps, `Blob.data`)."""
        self.status_code = status_code
        self.background = None
        self.body = b""
        self.init_headers(headers)
        self._chunks = chunks
        self._path = path
        self._start = start
        self._end = end
        self._full = full
        self._fallback = fallback

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The bytes are opened (or their first chunk read) before the status goes out: a blob that
        # cannot be read is a 500, never a 200 with a Content-Length and no body.
        empty = scope["method"] == "HEAD" or self._end <= self._start
        length = self._end - self._start
        body: bytes | None = None
        fd: int | None = None
        first: object = None
        sentinel = object()
        try:
            if self._path is not None:
                if empty or (self._full and "http.response.pathsend" in scope.get("extensions", {})):
                    if not os.path.isfile(self._path):  # a stat: cheaper than a thread hop
                        raise FileNotFoundError(str(self._path))
                elif length <= INLINE_READ_LIMIT:
                    body = small_blob(self._path, self._start, length, self._full)
                else:
                    fd = os.open(self._path, os.O_RDONLY)
            elif not empty:
                assert self._chunks is not None
                first = await to_thread.run_sync(next, self._chunks, sentinel)
        except (OSError, KeyError) as exc:
            kept = await self._fallback() if self._fallback is not None else None
            if kept is None or len(kept) < self._end:
                log.error("stored bytes cannot be read: %s", exc)
                await _unreadable(send)
                return
            body = b"" if empty else kept[self._start : self._end]
            self._path = self._chunks = None
        try:
            await send(
                {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
            )
            if empty:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            elif body is not None:
                await send({"type": "http.response.body", "body": body, "more_body": False})
            elif fd is not None:
                await _send_file(send, fd, self._start, length)
            elif self._path is not None:
                await send({"type": "http.response.pathsend", "path": str(self._path)})
            else:
                assert self._chunks is not None
                chunk = first
                while chunk is not sentinel:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                    chunk = await to_thread.run_sync(next, self._chunks, sentinel)
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            if fd is not None:
                os.close(fd)


async def _unreadable(send: Send) -> None:
    body = b'{"error": "the stored bytes of this file cannot be read"}'
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 500, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


SMALL_BLOB_LIMIT = 64 * 1024
SMALL_BLOB_CACHE_BYTES = 32 * 1024 * 1024
_small_blobs: Lru[str, bytes] = Lru(1_000_000, max_weight=SMALL_BLOB_CACHE_BYTES, weigh=len)


def small_blob(path: Path, start: int, length: int, full: bool) -> bytes:
    """Bytes of a small local blob. Whole small blobs are kept in memory: a blob's path is its
    content address, so a cached copy can never be stale."""
    key = str(path)
    cached = _small_blobs.get(key)
    if cached is not None:
        return cached if full else cached[start : start + length]
    with open(path, "rb") as handle:
        if not full:
            handle.seek(start)
            return handle.read(length)
        body = handle.read(length)
    if length <= SMALL_BLOB_LIMIT:
        _small_blobs.put(key, body)
    return body


async def _send_file(send: Send, fd: int, start: int, length: int) -> None:
    offset = start
    remaining = length
    while remaining > 0:
        chunk = await to_thread.run_sync(os.pread, fd, min(1024 * 1024, remaining), offset)
        if not chunk:
            # Fewer bytes than the Content-Length promised: cut the connection, never end cleanly.
            raise OSError(f"blob ended {remaining} bytes early")
        offset += len(chunk)
        remaining -= len(chunk)
        await send({"type": "http.response.body", "body": chunk, "more_body": remaining > 0})


class StreamingBodyResponse(Response):
    """Streams an async iterator of chunks (a proxied file as it arrives) with known headers."""

    def __init__(self, status_code: int, headers: Mapping[str, str], chunks: AsyncIterator[bytes]) -> None:
        self.status_code = status_code
        self.background = None
        # Headers before body: Starlette would otherwise add "content-length: 0" for the empty body,
        # and a file of unknown length (a chunked upstream answer) would reach the client empty.
        self.init_headers(headers)
        self.body = b""
        self._chunks = chunks

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        if scope["method"] != "HEAD":
            async for chunk in self._chunks:
                if chunk:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
