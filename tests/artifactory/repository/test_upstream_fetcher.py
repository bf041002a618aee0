"""The proxy's own GETs (`artifactory.upstream.client.Fetcher`, on its own connections or through
httpx): redirects, credentials only on the upstream's origin, compressed bodies, failures as
UpstreamError."""

from __future__ import annotations

import asyncio
import gzip
import socket
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from artifactory.upstream.client import (
    MAX_DECODED_CHUNK,
    MAX_REDIRECTS,
    Fetcher,
    UpstreamClients,
    UpstreamError,
    ssl_context,
)
from artifactory.upstream.network import Pool


@contextmanager
def serving(
    routes: dict[str, tuple[int, dict[str, str], bytes]],
) -> Iterator[tuple[str, list[dict[str, str]]]]:
    """A loopback server answering `routes` (path -> status, headers, body), recording each
    request's headers (lower-case names) with its path under "path"."""
    seen: list[dict[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            seen.append({"path": self.path, **{k.lower(): v for k, v in self.headers.items()}})
            status, headers, body = routes.get(self.path, (404, {}, b"no"))
            time.sleep(float(headers.get("X-Sleep", 0)))
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value.replace("{base}", base))
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            if "X-Close" in headers:  # without saying so: the client finds out when it reuses it
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield base, seen
    finally:
        server.shutdown()
        server.server_close()


async def fetch(
    config: dict[str, object], url: str, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    clients = UpstreamClients()
    try:
        response = await clients.fetcher(1, config).get(url, headers or {})
        return response.status_code, await response.read(1024 * 1024)
    finally:
        await clients.close()


def test_credentials_follow_redirects_on_the_upstreams_origin_only():
    with serving({}) as (elsewhere, elsewhere_seen):
        routes = {
            "/a": (302, {"Location": "/b"}, b""),
            "/b": (301, {"Location": f"{elsewhere}/c"}, b"moved"),
        }
        with serving(routes) as (base, seen):
            config = {"url": base + "/", "username": "u", "password": "p"}
            status, _body = asyncio.run(fetch(config, base + "/a"))
    assert status == 404  # the last hop's answer
    assert [r["path"] for r in seen] == ["/a", "/b"]
    assert all(r["authorization"] == "Basic dTpw" for r in seen)
    assert [r["path"] for r in elsewhere_seen] == ["/c"] and "authorization" not in elsewhere_seen[0]


def test_a_link_to_another_host_gets_no_credentials():
    with serving({"/f": (200, {}, b"file")}) as (elsewhere, elsewhere_seen):
        with serving({}) as (base, _seen):
            config = {"url": base + "/", "username": "u", "password": "p"}
            assert asyncio.run(fetch(config, elsewhere + "/f")) == (200, b"file")
    assert "authorization" not in elsewhere_seen[0]


def test_a_gzip_body_is_decoded_and_the_request_headers_are_sent():
    body = gzip.compress(b"<html>index</html>")
    with serving({"/simple/": (200, {"Content-Encoding": "gzip"}, body)}) as (base, seen):
        answer = asyncio.run(fetch({"url": base + "/"}, base + "/simple/", {"Accept-Encoding": "gzip"}))
    assert answer == (200, b"<html>index</html>")
    assert seen[0]["accept-encoding"] == "gzip" and seen[0]["user-agent"].startswith("artifactory/")
    assert seen[0]["host"] == base.removeprefix("http://") and seen[0]["accept"] == "*/*"


def test_endless_redirects_and_an_unreachable_upstream_are_upstream_errors():
    with serving({"/loop": (302, {"Location": "/loop"}, b"")}) as (base, seen):
        with pytest.raises(UpstreamError, match="TooManyRedirects"):
            asyncio.run(fetch({"url": base + "/"}, base + "/loop"))
    assert len(seen) == MAX_REDIRECTS + 1
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}/"
    with pytest.raises(UpstreamError, match="^ConnectError: "):
        asyncio.run(fetch({"url": closed}, closed + "x"))


def test_a_path_with_spaces_and_non_ascii_is_percent_encoded():
    with serving({"/a%20b/%C3%A9.txt": (200, {}, b"ok")}) as (base, _seen):
        assert asyncio.run(fetch({"url": base + "/"}, base + "/a b/é.txt")) == (200, b"ok")


def test_a_slow_upstream_is_a_read_timeout():
    with serving({"/slow": (200, {"X-Sleep": "1"}, b"late")}) as (base, _seen):
        with pytest.raises(UpstreamError, match="^ReadTimeout: "):
            asyncio.run(fetch({"url": base + "/", "timeout_seconds": 0.2}, base + "/slow"))


def test_a_pooled_connection_the_upstream_closed_is_not_reused():
    """The server closes each connection after its answer (Connection: close is not said): the
    second GET must notice the idle connection is gone and open another."""
    with serving({"/a": (200, {"X-Close": "1"}, b"one"), "/b": (200, {}, b"two")}) as (base, seen):

        async def both() -> list[tuple[int, bytes]]:
            clients = UpstreamClients()
            try:
                fetcher = clients.fetcher(1, {"url": base + "/"})
                answers = []
                for path in ("/a", "/b"):
                    response = await fetcher.get(base + path, {})
                    answers.append((response.status_code, await response.read(1024)))
                    await asyncio.sleep(0.1)
                return answers
            finally:
                await clients.close()

        assert asyncio.run(both()) == [(200, b"one"), (200, b"two")]
    assert [r["path"] for r in seen] == ["/a", "/b"]


def test_a_redirect_or_a_link_to_a_url_that_cannot_be_read_is_an_upstream_error_that_frees_its_slot():
    """One connection slot, and credentials (which a redirect keeps only on the upstream's origin,
    so its target's port is read): each redirect to a URL that cannot be read must give the slot
    back, or the last request would wait for it (PoolTimeout)."""
    routes = {
        "/bracket": (302, {"Location": "http://["}, b""),
        "/port": (302, {"Location": "http://127.0.0.1:99999/x"}, b""),
        "/ok": (200, {}, b"ok"),
    }
    with serving(routes) as (base, _seen):

        async def run() -> bytes:
            pool = Pool(ssl_context(None), max_connections=1)
            fetcher = Fetcher(base + "/", pool, 1.0, "Basic dTpw", None)
            clients = UpstreamClients()
            challenged = clients.fetcher(1, {"url": base.replace("//", "//u:p@") + "/"})  # through httpx
            cases = [(fetcher, base + "/bracket"), (fetcher, base + "/port")]
            cases += [
                (each, link)
                for link in ("http://127.0.0.1:99999/x", "http://[/x")
                for each in (fetcher, challenged)
            ]
            try:
                for through, url in cases:
                    with pytest.raises(UpstreamError, match="^InvalidURL: "):
                        await through.get(url, {})
                return await (await fetcher.get(base + "/ok", {})).read(100)
            finally:
                await pool.aclose()
                await clients.close()

        assert asyncio.run(run()) == b"ok"


WITH_CREDENTIALS = pytest.mark.parametrize("credentials", ["", "u:p@"], ids=["own connections", "httpx"])


@WITH_CREDENTIALS
def test_a_compressed_body_comes_in_bounded_chunks_however_much_it_inflates(credentials: str):
    """8 MiB of zeros compress to 8 KiB, which arrive in one read: they must not become one chunk
    of 8 MiB (from a larger body, hundreds of MiB in memory before any limit of the reader's)."""
    zeros = bytes(8 * 1024 * 1024)
    raw = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    routes = {
        "/gzip": (200, {"Content-Encoding": "gzip"}, gzip.compress(zeros)),
        "/deflate": (200, {"Content-Encoding": "deflate"}, zlib.compress(zeros)),
        "/raw-deflate": (200, {"Content-Encoding": "deflate"}, raw.compress(zeros) + raw.flush()),
    }

    async def sizes(base: str) -> list[list[int]]:
        clients = UpstreamClients()
        try:
            fetcher = clients.fetcher(1, {"url": base + "/"})
            found = []
            for path in routes:
                response = await fetcher.get(base + path, {"Accept-Encoding": "gzip, deflate"})
                found.append([len(chunk) async for chunk in response.aiter_bytes()])
                await response.aclose()
            return found
        finally:
            await clients.close()

    with serving(routes) as (base, _seen):
        found = asyncio.run(sizes(base.replace("//", f"//{credentials}")))
    assert [sum(chunks) for chunks in found] == [len(zeros)] * 3
    assert max(max(chunks) for chunks in found) <= MAX_DECODED_CHUNK


@WITH_CREDENTIALS
def test_a_compressed_body_cut_short_is_an_upstream_error_not_a_shorter_body(credentials: str):
    """The answer's framing is whole (its Content-Length is the bytes sent), the gzip stream is not.
    An empty body is no stream at all, not one cut short."""
    whole = gzip.compress(bytes(range(256)) * 4096)
    routes = {
        "/cut": (200, {"Content-Encoding": "gzip"}, whole[: len(whole) // 2]),
        "/empty": (200, {"Content-Encoding": "gzip"}, b""),
    }
    with serving(routes) as (base, _seen):
        config = {"url": base.replace("//", f"//{credentials}") + "/"}
        with pytest.raises(UpstreamError, match="^DecodingError: .*cut short"):
            asyncio.run(fetch(config, base + "/cut"))
        assert asyncio.run(fetch(config, base + "/empty")) == (200, b"")
