"""The one responder for computed documents (index pages, packuments, metadata, tag lists).

A rendered document is kept with its ETag, once a client has asked for it compressed its gzip form,
and the header list of each answer it has given (200, 200 gzip, 304, per Vary and extra headers), so
a hot document costs neither a hash, a compression nor building headers per request: the response
is the prepared status, header list and body. Conditional GET (If-None-Match) answers 304; documents
are never cached stale by clients (`no-cache`: they may keep a copy but must revalidate, which the
ETag makes cheap).
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from artifactory.formats import Rendered
from artifactory.http.responses import etag_matches

GZIP_MIN_BYTES = 1024
HeaderList = list[tuple[bytes, bytes]]
# What an answer's header list depends on besides the document: 200, 200 gzipped or 304; the Vary
# value; the caller's extra headers.
_Answer = tuple[int, bool, str, tuple[tuple[str, str], ...]]


@dataclass(eq=False)
class RenderedDocument:
    body: bytes
    media_type: str
    etag: str
    headers: Mapping[str, str] = field(default_factory=dict)
    _gzipped: bytes | None = field(default=None, repr=False)
    _answers: dict[_Answer, HeaderList] = field(default_factory=dict, repr=False)

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

    def wants_gzip(self, accept_encoding: str | None) -> bool:
        """Whether an answer to a client sending this Accept-Encoding is compressed."""
        return len(self.body) >= GZIP_MIN_BYTES and "gzip" in (accept_encoding or "")

    def gzip_pending(self, accept_encoding: str | None) -> bool:
        """Whether answering this client compresses the body first (it is not compressed yet)."""
        return self._gzipped is None and self.wants_gzip(accept_encoding)

    def response(
        self,
        if_none_match: str | None,
        accept_encoding: str | None,
        head: bool = False,
        vary: str = "Accept-Encoding",
        extra: Mapping[str, str] | None = None,
    ) -> Response:
        """The answer to a request with these headers: 304 when its If-None-Match names this ETag,
        else the body (gzipped when the client accepts it; none for HEAD), with headers prepared
        once per kind of answer."""
        more = tuple(extra.items()) if extra else ()
        if if_none_match and etag_matches(if_none_match, self.etag):
            return PreparedResponse(304, self._header_list(304, False, vary, more), b"")
        zipped = self.wants_gzip(accept_encoding)
        body = b"" if head else self.gzipped() if zipped else self.body
        return PreparedResponse(200, self._header_list(200, zipped, vary, more), body)

    def _header_list(
        self, status: int, zipped: bool, vary: str, extra: tuple[tuple[str, str], ...]
    ) -> HeaderList:
        answer = (status, zipped, vary, extra)
        found = self._answers.get(answer)
        if found is None:
            fields = {"etag": f'"{self.etag}"', "vary": vary, "cache-control": "no-cache"}
            fields.update((name.lower(), value) for name, value in (*self.headers.items(), *extra))
            if status != 304:
                body = self.gzipped() if zipped else self.body
                media_type = self.media_type
                if media_type.startswith("text/") and "charset=" not in media_type.lower():
                    media_type += "; charset=utf-8"
                fields.setdefault("content-type", media_type)
                fields["content-length"] = str(len(body))
                if zipped:
                    fields["content-encoding"] = "gzip"
            found = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in fields.items()]
            self._answers[answer] = found
        return found


class PreparedResponse(Response):
    """A response whose status, header list and body were prepared before (a cached document):
    nothing is encoded per request. The header list is the request's own copy."""

    def __init__(self, status_code: int, raw_headers: HeaderList, body: bytes) -> None:
        self.status_code = status_code
        self.background = None
        self.body = body
        self.raw_headers = list(raw_headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        await send({"type": "http.response.body", "body": self.body})


def respond_document(
    request: Request,
    document: RenderedDocument,
    vary: str = "Accept-Encoding",
    headers: Mapping[str, str] | None = None,
) -> Response:
    found = request.headers
    return document.response(
        found.get("if-none-match"), found.get("accept-encoding"), request.method == "HEAD", vary, headers
    )


def request_headers(scope: Scope, *names: bytes) -> list[str | None]:
    """The first value of each of `names` (lowercase) among the request's headers, in one pass (a
    Starlette `Headers.get` scans them all for each name)."""
    found: list[str | None] = [None] * len(names)
    for name, value in scope["headers"]:
        if name in names:
            at = names.index(name)
            if found[at] is None:
                found[at] = value.decode("latin-1")
    return found
