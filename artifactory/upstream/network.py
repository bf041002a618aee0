"""HTTP/1.1 connections for the proxies' own GETs: asyncio protocols whose answers httptools parses.

httptools is the C parser (llhttp) uvicorn reads our own requests with. Through `Fetcher`, a GET of
a 64 KiB file from nginx on loopback costs about 0.3 ms of CPU this way and a small page 0.2 ms,
against 0.65-0.85 ms through httpcore's pool and h11's pure-Python parser (measured in one process on
asyncio's own loop, on a loaded 2-core machine): a cold miss makes one or two such GETs, and a client
that resolves in parallel (uv) waits for all of them.

A `Pool` (one per upstream origin and CA bundle, shared by the proxies of that upstream) keeps its
idle connections per origin (at most `max_keepalive` in all, none older than
`keepalive_expiry` seconds) and at most `max_connections` in use; a request waits for one to free
up within the pool timeout. A connection carries one request at a time, and goes back to the pool
only once its answer arrived to its end, nothing came after it, and both sides keep it alive; an
idle one the upstream closed is known to be closed as soon as the event loop sees it go, and is
never reused. Failures are UpstreamError whose message starts with the kind of failure:
ConnectError, ConnectTimeout, WriteError, ReadTimeout, PoolTimeout, RemoteProtocolError,
LocalProtocolError.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import cast

import httptools

READ_LIMIT = 64 * 1024  # buffered answer bytes before the connection stops reading from the socket
# An answer's header block is held in memory until it is complete: an upstream that sends more
# (counted as the bytes received while the headers have not ended) is refused. So is one whose
# chunked body ends with more trailer fields than that (which are read, and dropped).
MAX_HEADER_BYTES = 64 * 1024
ILLEGAL = (b"\r", b"\n", b"\0")
Origin = tuple[str, str, int]


class UpstreamError(Exception):
    """The upstream could not be reached, broke the protocol, or was too slow. The message starts
    with the kind of failure (`ConnectError: ...`, `ReadTimeout: ...`), as httpx's errors read."""


class Connection(asyncio.Protocol):
    """One connection; `begin` sends a request and resets the parser for its answer, which the
    protocol callbacks fill in (headers, buffered body chunks, completion) as bytes arrive."""

    def __init__(self, origin: Origin) -> None:
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self._header_bytes = 0
        self._trailer_bytes = 0
        self.headers_done = False
        self.complete = False
        self.keep_alive = False
        self.error: UpstreamError | None = None
        self._parser: httptools.HttpResponseParser | None = None
        self._informational = False
        self._buffer: deque[bytes] = deque()
        self._buffered = 0
        self._paused = False
        self._waiter: asyncio.Future[None] | None = None

    # -- asyncio's protocol ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no asyncio.Transport

    def data_received(self, data: bytes) -> None:
        if self._parser is None or self.complete:  # bytes nobody asked for: the connection is spoilt
            self._close()
            return
        headers_done, buffered = self.headers_done, self._buffered
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:  # a 101: the connection now speaks another protocol
            self._fail("the upstream switched protocols, which was not asked for")
        except httptools.HttpParserError as exc:
            if self.complete:  # bytes past the answer's end (`on_message_begin`): the answer stands
                self._close()
            else:
                self._fail(f"the upstream's answer is malformed: {exc}")
        else:
            if not self.headers_done:  # the parser holds a header's bytes until it is complete
                self._header_bytes += len(data)
                if self._header_bytes > MAX_HEADER_BYTES:
                    self._fail(f"the upstream's answer has more than {MAX_HEADER_BYTES} bytes of headers")
            elif headers_done and self._buffered == buffered:
                # A read after the headers that brought no body: a chunk's size line, or the last
                # chunk's trailer fields (a read that also brings body bytes is not counted: the
                # bound is at most one read looser, and never trips on a body of many small chunks).
                self._trailer_bytes += len(data)
                if self._trailer_bytes > MAX_HEADER_BYTES:
                    self._fail(f"the upstream's answer has more than {MAX_HEADER_BYTES} bytes of trailers")
        self._wake()

    def eof_received(self) -> bool:
        return False  # close the transport: connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._parser is not None and not self.complete and self.error is None:
            if self.headers_done and exc is None and self._until_closed():
                self.complete = True  # a body that ends with the connection (closed, not reset)
            else:
                reason = f": {exc}" if exc else ""
                what = "the rest of the answer" if self.headers_done else "an answer"
                self.error = UpstreamError(
                    f"RemoteProtocolError: the upstream closed the connection before {what}{reason}"
                )
        self._wake()

    # -- httptools' callbacks ----------------------------------------------------------------
    def on_message_begin(self) -> None:
        if self.complete:  # a second answer to one request: stop the parser before it merges the two
            raise ValueError("bytes past the end of the answer")

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self.headers_done:  # trailer fields (after a chunked body) are not the answer's headers
            self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        assert self._parser is not None
        status = self._parser.get_status_code()
        if 100 <= status < 200:  # 100 Continue, 103 Early Hints: the answer is still to come
            self._informational = True
            self.headers = []
            return
        self.status = status
        self.headers_done = True

    def on_chunk_header(self) -> None:
        self._trailer_bytes = 0  # counted from the last chunk's size line on

    def on_body(self, body: bytes) -> None:
        self._buffer.append(body)
        self._buffered += len(body)
        if self._buffered > READ_LIMIT and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()

    def on_message_complete(self) -> None:
        if self._informational:
            self._informational = False
            return
        assert self._parser is not None
        self.keep_alive = self._parser.should_keep_alive()
        self.complete = True

    # -- the request's side ------------------------------------------------------------------
    def begin(self, request: bytes) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self.status, self.headers, self._header_bytes, self._trailer_bytes = 0, [], 0, 0
        self.headers_done = self.complete = self.keep_alive = False
        self._informational = False
        self.error = None
        assert self.transport is not None
        try:
            if self.closed or self.transport.is_closing():
                raise ConnectionResetError("the connection is closed")
            self.transport.write(request)
        except (OSError, RuntimeError) as exc:  # uvloop raises where asyncio's loop only logs
            self._close()
            raise UpstreamError(f"WriteError: the request could not be sent: {exc}") from None

    async def wait(self, timeout: float | None) -> None:
        """Until the protocol has news (bytes, the end, a failure) or `timeout` passes."""
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(timeout):
                await self._waiter
        except TimeoutError:
            self._close()
            raise UpstreamError(f"ReadTimeout: no answer from the upstream within {timeout} s") from None
        finally:
            self._waiter = None

    def take(self) -> bytes:
        """The body bytes received so far (none: b"")."""
        if not self._buffer:
            return b""
        chunk = self._buffer.popleft() if len(self._buffer) == 1 else b"".join(self._buffer)
        self._buffer.clear()
        self._buffered = 0
        if self._paused and self.transport is not None and not self.closed:
            self._paused = False
            self.transport.resume_reading()
        return chunk

    def reusable(self) -> bool:
        return self.complete and self.keep_alive and not self.closed and self.error is None

    def park(self) -> None:
        """Idle between requests: the body its last reader left unread is dropped, and reading
        resumes if that body had paused it, so that the next answer (or the upstream's close, while
        the connection is idle) is seen."""
        self.idle_since = time.monotonic()
        self._parser = None
        self._buffer.clear()
        self._buffered = 0
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()

    def _until_closed(self) -> bool:
        """Whether the answer's body is delimited by the connection's end (neither a length nor
        chunks, and a status that has a body)."""
        if self.status in (204, 304):
            return False
        names = {name.lower() for name, _value in self.headers}
        return b"content-length" not in names and b"transfer-encoding" not in names

    def _fail(self, reason: str) -> None:
        self.error = UpstreamError(f"RemoteProtocolError: {reason}")
        self._close()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class Answer:
    """An upstream's answer whose body has not been read: `chunks()` yields it as it arrives,
    `aclose()` hands the connection back to its pool (or closes it, if the body has not arrived to
    its end). Always call `aclose()`; calling it twice is harmless."""

    def __init__(self, pool: Pool, connection: Connection, read_timeout: float | None) -> None:
        self.status = connection.status
        self.headers = connection.headers
        self._pool = pool
        self._connection: Connection | None = connection
        self._timeout = read_timeout

    async def chunks(self) -> AsyncIterator[bytes]:
        connection = self._connection
        while connection is not None:
            chunk = connection.take()
            if chunk:
                yield chunk
            elif connection.error is not None:  # even once complete: trailers past the limit
                error = connection.error
                await self.aclose()
                raise error
            elif connection.complete:
                break
            else:
                await connection.wait(self._timeout)
        await self.aclose()

    async def aclose(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            self._pool.release(connection)


class Pool:
    """The connections of the proxies of one upstream (see the module's docstring)."""

    def __init__(
        self,
        ssl_context: ssl.SSLContext,
        max_connections: int = 64,
        max_keepalive: int = 16,
        keepalive_expiry: float = 5.0,
    ) -> None:
        self._ssl = ssl_context
        self._slots = asyncio.Semaphore(max_connections)
        self._max_keepalive = max_keepalive
        self._expiry = keepalive_expiry
        self._idle: dict[Origin, list[Connection]] = {}
        self._idle_count = 0
        self._closed = False

    async def get(
        self,
        origin: Origin,
        host_header: bytes,
        target: bytes,
        headers: Sequence[tuple[bytes, bytes]],
        timeouts: Mapping[str, float],
        deadline: float | None = None,
    ) -> Answer:
        """GET `target` from `origin` (scheme, host, port): the answer once its headers arrived.
        The read timeout bounds each wait for the upstream's next bytes; `deadline` (the event
        loop's clock), if given, bounds the connection, the request and the whole status line and
        headers, which an upstream that drips them would otherwise stretch for as long as it likes."""
        request = _request(host_header, target, headers)
        try:
            async with asyncio.timeout(timeouts.get("pool")):
                await self._slots.acquire()
        except TimeoutError:
            raise UpstreamError("PoolTimeout: every connection to the upstream is busy") from None
        try:
            async with asyncio.timeout_at(deadline):
                connection = await self._headers(origin, request, timeouts)
        except TimeoutError:
            self._slots.release()
            raise UpstreamError("ReadTimeout: the upstream's answer did not begin by its deadline") from None
        except BaseException:
            self._slots.release()
            raise
        return Answer(self, connection, timeouts.get("read"))

    def release(self, connection: Connection) -> None:
        """A connection back from its answer: kept idle when it can carry another request."""
        self._slots.release()
        self._expire()
        if connection.reusable() and not self._closed and self._idle_count < self._max_keepalive:
            connection.park()
            self._idle.setdefault(connection.origin, []).append(connection)
            self._idle_count += 1
        else:
            connection._close()

    async def aclose(self) -> None:
        self._closed = True
        for connections in self._idle.values():
            for connection in connections:
                connection._close()
        self._idle.clear()
        self._idle_count = 0

    async def _headers(self, origin: Origin, request: bytes, timeouts: Mapping[str, float]) -> Connection:
        """A connection that sent `request` and received its answer's headers."""
        connection = self._idle_connection(origin) or await self._connect(origin, timeouts)
        connection.begin(request)
        try:
            while not connection.headers_done:
                if connection.error is not None:
                    raise connection.error
                await connection.wait(timeouts.get("read"))
        except BaseException:
            connection._close()
            raise
        return connection

    def _idle_connection(self, origin: Origin) -> Connection | None:
        self._expire()
        idle = self._idle.get(origin)
        if not idle:
            return None
        self._idle_count -= 1
        return idle.pop()  # the most recently used: the least likely to have closed

    def _expire(self) -> None:
        """Close the idle connections, of every origin, that the upstream closed or that outlived
        `keepalive_expiry`: one to an origin nobody asks again (a redirect's target, a host an
        index links to) would otherwise hold its place among the `max_keepalive` for good."""
        now = time.monotonic()
        for origin, idle in list(self._idle.items()):
            expired = [c for c in idle if c.closed or now - c.idle_since >= self._expiry]
            for connection in expired:
                idle.remove(connection)
                connection._close()
            self._idle_count -= len(expired)
            if not idle:
                del self._idle[origin]

    async def _connect(self, origin: Origin, timeouts: Mapping[str, float]) -> Connection:
        scheme, host, port = origin
        timeout = timeouts.get("connect")
        connection = Connection(origin)
        loop = asyncio.get_running_loop()
        tls = self._ssl if scheme == "https" else None
        try:
            async with asyncio.timeout(timeout):
                await loop.create_connection(
                    lambda: connection, host, port, ssl=tls, server_hostname=host if tls else None
                )
        except TimeoutError:
            raise UpstreamError(f"ConnectTimeout: no connection to {host}:{port} in {timeout} s") from None
        except OSError as exc:  # ssl.SSLError included: an untrusted certificate, a wrong name
            raise UpstreamError(f"ConnectError: {exc or type(exc).__name__}") from None
        return connection


def _request(host: bytes, target: bytes, headers: Sequence[tuple[bytes, bytes]]) -> bytes:
    lines = [b"GET " + target + b" HTTP/1.1", b"Host: " + host]
    lines += [name + b": " + value for name, value in headers]
    if any(illegal in line for line in lines for illegal in ILLEGAL):
        raise UpstreamError("LocalProtocolError: a request line or header with CR, LF or NUL")
    return b"\r\n".join(lines) + b"\r\n\r\n"
