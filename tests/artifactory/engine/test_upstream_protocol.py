"""How the proxies' own connections (`artifactory.upstream.network`, under `Fetcher`) take answers
that break HTTP/1.1's framing or drag it out, from a loopback server that runs each test's own
handler on every connection: bytes past an answer's end, trailer fields, a reset that cuts a body
short, a switch of protocols, and a status line and headers dripped byte by byte."""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import uvloop

from artifactory.upstream.client import UpstreamClients, UpstreamError, ssl_context
from artifactory.upstream.network import Pool

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
TIMEOUTS = {"connect": 2.0, "read": 2.0, "pool": 2.0}
LOOPS = [pytest.param(asyncio.run, id="asyncio"), pytest.param(uvloop.run, id="uvloop")]


@contextmanager
def serving(handler: Callable[[socket.socket, int], None]) -> Iterator[tuple[int, list[int]]]:
    """A server on 127.0.0.1 that runs `handler(connection, its number)` in a thread of its own
    for each connection it accepts; yields its port and the numbers of the connections so far."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted: list[int] = []

    def handle(conn: socket.socket, number: int) -> None:
        with conn:
            try:
                handler(conn, number)
            except OSError:  # the client closed it first
                pass

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            accepted.append(len(accepted))
            threading.Thread(target=handle, args=(conn, accepted[-1]), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield listener.getsockname()[1], accepted
    finally:
        listener.close()


def requests(conn: socket.socket) -> Iterator[bytes]:
    """The heads of the requests that come on `conn`, until the client closes it."""
    buffer = b""
    while True:
        while b"\r\n\r\n" not in buffer:
            data = conn.recv(65536)
            if not data:
                return
            buffer += data
        head, buffer = buffer.split(b"\r\n\r\n", 1)
        yield head


async def fetch(pool: Pool, port: int) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    answer = await pool.get(("http", "127.0.0.1", port), b"h", b"/", [], TIMEOUTS)
    try:
        return answer.status, answer.headers, b"".join([chunk async for chunk in answer.chunks()])
    finally:
        await answer.aclose()


def fetch_times(port: int, times: int) -> list[tuple[int, list[tuple[bytes, bytes]], bytes]]:
    """`times` answers one after the other, through one pool."""

    async def run() -> list[tuple[int, list[tuple[bytes, bytes]], bytes]]:
        pool = Pool(ssl_context(None))
        try:
            return [await fetch(pool, port) for _ in range(times)]
        finally:
            await pool.aclose()

    return asyncio.run(run())


@pytest.mark.parametrize(
    ("sent", "status", "headers", "body"),
    [
        pytest.param(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
            b"HTTP/1.1 201 Created\r\nContent-Length: 5\r\nX-Injected: 1\r\n\r\nEVIL!",
            200,
            [(b"Content-Length", b"5")],
            b"hello",
            id="a second answer",
        ),
        pytest.param(
            b"HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody",
            204,
            [],
            b"",
            id="an answer after a 204",
        ),
        pytest.param(
            b'HTTP/1.1 304 Not Modified\r\nETag: "a"\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody',
            304,
            [(b"ETag", b'"a"')],
            b"",
            id="an answer after a 304",
        ),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloGARBAGE",
            200,
            [(b"Content-Length", b"5")],
            b"hello",
            id="garbage",
        ),
    ],
)
def test_bytes_past_an_answers_end_leave_it_whole_and_its_connection_is_not_reused(
    sent: bytes, status: int, headers: list[tuple[bytes, bytes]], body: bytes
):
    """The extra bytes come in the same read as the answer: llhttp would parse them as a second
    answer merged into the first (its status, its headers, its body) on a connection kept alive."""

    def handler(conn: socket.socket, number: int) -> None:
        for _request in requests(conn):
            conn.sendall(sent if number == 0 else OK)

    with serving(handler) as (port, accepted):
        assert fetch_times(port, 2) == [(status, headers, body), (200, [(b"Content-Length", b"2")], b"ok")]
    assert accepted == [0, 1]


def test_trailer_fields_are_not_the_answers_headers_and_do_not_spoil_its_connection():
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-Trailer: t\r\n\r\n"

    def handler(conn: socket.socket, number: int) -> None:
        for _request in requests(conn):
            conn.sendall(chunked)

    with serving(handler) as (port, accepted):
        answers = fetch_times(port, 2)
    assert answers == [(200, [(b"Transfer-Encoding", b"chunked")], b"ok")] * 2
    assert accepted == [0]


def test_trailer_fields_past_the_header_limit_fail_the_answer():
    """A megabyte of trailer fields after a body of two bytes: neither kept nor waited for to the end."""
    line = b"X-T: " + b"a" * 1000 + b"\r\n"

    def handler(conn: socket.socket, number: int) -> None:
        next(requests(conn))
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n")
        for _ in range(1000):
            conn.sendall(line)
        conn.sendall(b"\r\n")

    with serving(handler) as (port, _accepted):
        with pytest.raises(UpstreamError, match="^RemoteProtocolError: .*bytes of trailers"):
            fetch_times(port, 1)


@pytest.mark.parametrize("run", LOOPS)
def test_a_body_that_ends_with_the_connection_cut_by_a_reset_is_an_error_not_a_shorter_body(
    run: Callable[[Any], Any],
):
    def handler(conn: socket.socket, number: int) -> None:
        next(requests(conn))
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n<html>the first half")
        time.sleep(0.2)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close: RST

    async def body(port: int) -> bytes:
        pool = Pool(ssl_context(None))
        try:
            return (await fetch(pool, port))[2]
        finally:
            await pool.aclose()

    with serving(handler) as (port, _accepted):
        with pytest.raises(UpstreamError, match="^RemoteProtocolError: .*before the rest of the answer"):
            run(body(port))


def test_a_switch_of_protocols_is_a_protocol_error_of_that_answer_not_of_the_event_loop():
    def handler(conn: socket.socket, number: int) -> None:
        next(requests(conn))
        conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n")
        time.sleep(0.5)

    loop_errors: list[dict[str, Any]] = []

    async def run(port: int) -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _loop, context: loop_errors.append(context))
        pool = Pool(ssl_context(None))
        try:
            await fetch(pool, port)
        finally:
            await pool.aclose()

    with serving(handler) as (port, _accepted):
        with pytest.raises(UpstreamError, match="^RemoteProtocolError: the upstream switched protocols"):
            asyncio.run(run(port))
    assert loop_errors == []


def drip(conn: socket.socket, answer: bytes, pause: float) -> None:
    for byte in answer:
        conn.sendall(bytes([byte]))
        time.sleep(pause)


@pytest.mark.parametrize("credentials", ["", "u:p@"], ids=["own connections", "httpx"])
def test_a_status_line_and_headers_dripped_byte_by_byte_are_a_read_timeout(credentials: str):
    """Every byte comes well within the read timeout (0.5 s), the whole header block (7 s) does not."""
    slow = b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 24 + b"\r\nContent-Length: 2\r\n\r\nok"

    def handler(conn: socket.socket, number: int) -> None:
        next(requests(conn))
        drip(conn, slow, 0.1)

    async def get(base: str) -> None:
        clients = UpstreamClients()
        try:
            fetcher = clients.fetcher(1, {"url": base, "timeout_seconds": 0.5})
            await (await fetcher.get(base + "a", {})).read(100)
        finally:
            await clients.close()

    with serving(handler) as (port, _accepted):
        started = time.monotonic()
        with pytest.raises(UpstreamError, match="^ReadTimeout: "):
            asyncio.run(get(f"http://{credentials}127.0.0.1:{port}/"))
    assert time.monotonic() - started < 3


def test_redirects_each_within_the_timeout_are_a_read_timeout_once_together_they_are_not():
    """Each redirect's status line and headers take 0.3 s of a timeout of 0.5 s; twenty of them 6 s."""

    def handler(conn: socket.socket, number: int) -> None:
        for hop, _request in enumerate(requests(conn)):
            redirect = b"HTTP/1.1 302 Found\r\nLocation: /%d\r\nContent-Length: 0\r\n\r\n" % hop
            for start in range(0, len(redirect), 10):
                conn.sendall(redirect[start : start + 10])
                time.sleep(0.05)

    async def get(base: str) -> None:
        clients = UpstreamClients()
        try:
            await (await clients.fetcher(1, {"url": base, "timeout_seconds": 0.5}).get(base, {})).aclose()
        finally:
            await clients.close()

    with serving(handler) as (port, _accepted):
        with pytest.raises(UpstreamError, match="^ReadTimeout: "):
            asyncio.run(get(f"http://127.0.0.1:{port}/"))
