"""The one responder for computed documents (index pages, packuments, metadata, tag lists).

A rendered document is kept with its ETag and, once a client has asked for it compressed, its gzip
form, so a hot document costs neither a hash nor a compression per request. Conditional GET
(If-None-Match) answers 304; documents are never cached stale by clients (`no-cache`: they may
keep a copy but must revalidate, which the ETag makes cheap).
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.responses import Response

from artifactory.formats import Rendered
from artifactory.http.responses import etag_matches

GZIP_MIN_BYTES = 1024


@dataclass
class RenderedDocument:
    body: bytes
    media_type: str
    etag: str
    headers: Mapping[str, str] = field(default_factory=dict)
    _gzipped: bytes | None = None

    @classmethod
    def of(cls, rendered: Rendered, etag: str | None = None) -> RenderedDocument:
        return cls(
            body=rendered.body,
            media_type=rendered.media_type,
            etag=etag or hashlib.sha256(rendered.body).hexdigest(),
            headers=dict(rendered.headers),
        )

    def gzipped(self) -> bytes:
        if self._gzipped is None:
            self._gzipped = gzip.compress(self.body, compresslevel=6)
        return self._gzipped


def respond_document(
    request: Request,
    document: RenderedDocument,
    vary: str = "Accept-Encoding",
    headers: Mapping[str, str] | None = None,
) -> Response:
    quoted = f'"{document.etag}"'
    base = {"ETag": quoted, "Vary": vary, "Cache-Control": "no-cache", **document.headers, **(headers or {})}
    if etag_matches(request.headers.get("if-none-match"), quoted):
        return Response(status_code=304, headers=base)
    body = document.body
    if len(body) >= GZIP_MIN_BYTES and "gzip" in request.headers.get("accept-encoding", ""):
        body = document.gzipped()
        base["Content-Encoding"] = "gzip"
    return Response(body, media_type=document.media_type, headers=base)
