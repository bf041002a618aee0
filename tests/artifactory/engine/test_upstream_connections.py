"""The proxies' own HTTP/1.1 connections (`artifactory.upstream.network`, under `Fetcher`), against a
loopback server that writes exactly the bytes each test gives: every way an answer's body may end,
answers cut short, informational answers, connection reuse, and requests that would smuggle a header."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import uvloop

from artifactory.upstream.client import UpstreamClients, UpstreamError, ssl_context
from artifactory.upstream.network import Pool

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@contextmanager
def raw_server(
    answers: list[bytes], close_after: bool = False, requests: list[bytes] | None = None
) -> Iterator[tuple[str, list[int]]]:
    """A server that answers the n-th request it reads (on any connection) with answers[n] as they
    are, closing the connection after each when `close_after`; yields its URL and, per request, the
    number of the connection it came on (and appends each request's head to `requests`)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    connections: list[int] = []
    served = 0

    def handle(conn: socket.socket, number: int) -> None:
        try:
            serve(conn, number)
        except OSError:  # the client closed it (an answer it did not read to its end)
            pass

    def serve(conn: socket.socket, number: int) -> None:
        nonlocal served
        with conn:
            buffer = b""
            while served < len(answers):
                while b"\r\n\r\n" not in buffer:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buffer += data
                head, buffer = buffer.split(b"\r\n\r\n", 1)
                if requests is not None:
                    requests.append(head)
                answer = answers[served]
                served += 1
                connections.append(number)
                conn.sendall(answer)
                if close_after:
                    return

    def accept() -> None:
        number = 0
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=handle, args=(conn, number), daemon=True).start()
            number += 1

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", connections
    finally:
        listener.close()


async def _get_all(
    base: str, paths: list[str], headers: dict[str, str] | None = None
) -> list[tuple[int, bytes]]:
    clients = UpstreamClients()
    try:
        fetcher = clients.fetcher(1, {"url": base + "/", "timeout_seconds": 5})
        answers = []
        for path in paths:
            response = await fetcher.get(base + path, headers or {})
            answers.append((response.status_code, await response.read(1 << 20)))
        return answers
    finally:
        await clients.close()


def get_all(base: str, paths: list[str], headers: dict[str, str] | None = None) -> list[tuple[int, bytes]]:
    return asyncio.run(_get_all(base, paths, headers))


def test_answers_with_a_length_and_in_chunks_are_read_whole_on_one_kept_alive_connection():
    answers = [
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n",
        b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno",
    ]
    with raw_server(answers) as (base, connections):
        assert get_all(base, ["/a", "/b", "/c"]) == [(200, b"hello"), (200, b"abcdefg"), (404, b"no")]
    assert connections == [0, 0, 0]


def test_a_body_without_length_ends_with_the_connection_and_the_next_request_opens_another():
    answers = [b"HTTP/1.0 200 OK\r\n\r\nuntil the end", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"]
    with raw_server(answers, close_after=True) as (base, connections):
        assert get_all(base, ["/a", "/b"]) == [(200, b"until the end"), (200, b"ok")]
    assert connections == [0, 1]


def test_an_answer_cut_short_is_an_upstream_error_never_a_shorter_body():
    cut = [b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part of it"]
    with raw_server(cut, close_after=True) as (base, _connections):
        with pytest.raises(UpstreamError, match="^RemoteProtocolError: "):
            get_all(base, ["/a"])
    chunks = [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\n"]
    with raw_server(chunks, close_after=True) as (base, _connections):
        with pytest.raises(UpstreamError, match="^RemoteProtocolError: "):
            get_all(base, ["/a"])


def test_a_malformed_answer_is_a_protocol_error():
    with raw_server([b"HTTP/1.1 200 OK\r\nbroken header line\r\n\r\n"]) as (base, _connections):
        with pytest.raises(UpstreamError, match="^RemoteProtocolError: "):
            get_all(base, ["/a"])


def test_informational_answers_before_the_answer_are_skipped():
    answers = [
        b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: 1\r\n\r\nok"
    ]
    with raw_server(answers) as (base, _connections):

        async def headers() -> dict[str, str]:
            clients = UpstreamClients()
            try:
                response = await clients.fetcher(1, {"url": base + "/"}).get(base + "/a", {})
                assert await response.read(100) == b"ok"
                return response.headers
            finally:
                await clients.close()

        found = asyncio.run(headers())
    assert found["x-a"] == "1" and "link" not in found


def test_an_answer_left_unread_never_reaches_the_next_request():
    """A small answer arrives whole with its headers (its connection may serve the next request,
    without its bytes); a large one cannot have (its connection is closed, not reused)."""
    large = 2 * 1024 * 1024
    answers = [
        b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nfirst!",
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\ntwo",
        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % large + b"x" * large,
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nthree",
    ]
    with raw_server(answers) as (base, connections):

        async def run() -> list[bytes]:
            clients = UpstreamClients()
            try:
                fetcher = clients.fetcher(1, {"url": base + "/"})
                bodies = []
                for unread, read in (("/a", "/b"), ("/c", "/d")):
                    await (await fetcher.get(base + unread, {})).aclose()  # its body never read
                    bodies.append(await (await fetcher.get(base + read, {})).read(100))
                return bodies
            finally:
                await clients.close()

        assert asyncio.run(run()) == [b"two", b"three"]
    assert connections[2] != connections[3]


@pytest.mark.parametrize("run", [asyncio.run, uvloop.run], ids=["asyncio", "uvloop"])
def test_an_answer_closed_unread_once_its_large_body_arrived_leaves_its_connection_reading(run):
    """Its 70 KiB body (more than READ_LIMIT) paused the connection's reading; it is whole, so the
    connection is kept alive, and must read again: else the next request on it would never see
    its answer (a ReadTimeout)."""
    large = 70 * 1024
    answers = [b"HTTP/1.1 404 Not Found\r\nContent-Length: %d\r\n\r\n" % large + b"x" * large, OK]
    with raw_server(answers) as (base, connections):

        async def next_body() -> bytes:
            clients = UpstreamClients()
            try:
                fetcher = clients.fetcher(1, {"url": base + "/", "timeout_seconds": 2})
                missing = await fetcher.get(base + "/missing", {})
                await asyncio.sleep(0.5)  # its whole body arrives
                await missing.aclose()
                return await (await fetcher.get(base + "/next", {})).read(100)
            finally:
                await clients.close()

        assert run(next_body()) == b"ok"
    assert connections == [0, 0]


@pytest.mark.parametrize(("closes", "expiry"), [(True, 5.0), (False, 0.5)], ids=["closed", "expired"])
def test_idle_connections_elsewhere_that_closed_or_expired_give_up_their_kept_alive_places(
    closes: bool, expiry: float
):
    """One place for a kept-alive connection, taken by one to another origin (a redirect's
    target) that its server then closes, or that outlives `keepalive_expiry`: the upstream's own
    connection must get the place, not be closed after every answer."""
    with (
        raw_server([OK] * 2, close_after=closes) as (other, _other),
        raw_server([OK] * 3) as (base, connections),
    ):

        async def run() -> None:
            pool = Pool(ssl_context(None), max_keepalive=1, keepalive_expiry=expiry)
            try:
                for url, wait in ((other, 0.8), (base, 0), (base, 0), (base, 0)):
                    origin = ("http", "127.0.0.1", int(url.rsplit(":", 1)[1]))
                    answer = await pool.get(origin, b"h", b"/", [], {"connect": 2, "read": 2, "pool": 2})
                    assert b"".join([chunk async for chunk in answer.chunks()]) == b"ok"
                    await asyncio.sleep(wait)
            finally:
                await pool.aclose()

        asyncio.run(run())
    assert connections == [0, 0, 0]


def test_a_header_value_holding_a_line_break_is_refused_before_anything_is_sent():
    with raw_server([b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"]) as (base, connections):
        with pytest.raises(UpstreamError, match="^LocalProtocolError: "):
            get_all(base, ["/a"], {"If-None-Match": '"x"\r\nX-Smuggled: 1'})
    assert connections == []


def test_failed_and_cancelled_requests_give_their_connection_slot_back():
    """One slot: a request cancelled while it waits for an answer, then one whose answer is cut
    short, must each free it, or the next request would wait for a slot (PoolTimeout) instead of
    being sent (here: a ReadTimeout, as the server never answers)."""
    silent = socket.socket()  # accepts connections (the kernel's backlog) and never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    origin = ("http", "127.0.0.1", silent.getsockname()[1])
    timeouts = {"connect": 1.0, "read": 0.2, "pool": 0.2}

    async def run() -> None:
        pool = Pool(ssl_context(None), max_connections=1)
        try:
            waiting = asyncio.ensure_future(pool.get(origin, b"h", b"/", [], {**timeouts, "read": 30.0}))
            await asyncio.sleep(0.1)
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
            for _ in range(2):
                with pytest.raises(UpstreamError, match="^ReadTimeout: "):
                    await pool.get(origin, b"h", b"/", [], timeouts)
        finally:
            await pool.aclose()

    try:
        asyncio.run(run())
    finally:
        silent.close()
    cut = [b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort"] * 3 + [
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    ]
    with raw_server(cut, close_after=True) as (base, _connections):

        async def after_failures() -> bytes:
            pool = Pool(ssl_context(None), max_connections=1)
            origin = ("http", "127.0.0.1", int(base.rsplit(":", 1)[1]))
            try:
                for _ in range(3):
                    answer = await pool.get(origin, b"h", b"/", [], timeouts)
                    with pytest.raises(UpstreamError, match="^RemoteProtocolError: "):
                        async for _chunk in answer.chunks():
                            pass
                answer = await pool.get(origin, b"h", b"/", [], timeouts)
                return b"".join([chunk async for chunk in answer.chunks()])
            finally:
                await pool.aclose()

        assert asyncio.run(after_failures()) == b"ok"


def test_an_answer_whose_headers_never_end_is_refused_not_held_in_memory():
    endless = b"HTTP/1.1 200 OK\r\nX-Filler: " + b"a" * (4 * 1024 * 1024)
    with raw_server([endless]) as (base, _connections):
        with pytest.raises(UpstreamError, match="^RemoteProtocolError: .*bytes of headers"):
            get_all(base, ["/a"])


def test_proxies_of_one_upstream_share_its_kept_alive_connections_and_not_their_credentials():
    """A second proxy of the same upstream (or the same proxy reconfigured) reuses the connection the
    first one kept alive; each request still carries its own proxy's credentials, or none."""
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    seen: list[bytes] = []

    async def run(base: str) -> None:
        clients = UpstreamClients()
        try:
            first = clients.fetcher(1, {"url": base + "/a/", "username": "alice", "password": "pw"})
            second = clients.fetcher(2, {"url": base + "/b/"})
            for fetcher, path in ((first, "/a/x"), (second, "/b/y"), (first, "/a/z")):
                response = await fetcher.get(base + path, {})
                assert (response.status_code, await response.read(100)) == (200, b"ok")
            reconfigured = clients.fetcher(2, {"url": base + "/b/", "timeout_seconds": 7})
            assert reconfigured is not second and reconfigured.pool is second.pool is first.pool
            response = await reconfigured.get(base + "/b/w", {})
            await response.read(100)
        finally:
            await clients.close()

    with raw_server([ok] * 4, requests=seen) as (base, connections):
        asyncio.run(run(base))
    assert connections == [0, 0, 0, 0]
    authorized = [b"authorization: basic" in request.lower() for request in seen]
    assert authorized == [True, False, True, False]


def test_proxies_of_other_hosts_ports_or_schemes_keep_their_own_connections():
    """(Proxies that trust other CAs do too: `test_proxy`'s TLS tests.)"""
    clients = UpstreamClients()
    plain = clients.fetcher(1, {"url": "https://one.example.test/"})
    assert clients.fetcher(2, {"url": "https://ONE.example.test:443/other/"}).pool is plain.pool
    assert clients.fetcher(3, {"url": "https://two.example.test/"}).pool is not plain.pool
    assert clients.fetcher(4, {"url": "http://one.example.test/"}).pool is not plain.pool
    assert clients.fetcher(5, {"url": "https://one.example.test:8443/"}).pool is not plain.pool
    asyncio.run(clients.close())
